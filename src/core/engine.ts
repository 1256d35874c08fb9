import { setMaxListeners } from 'node:events';
import PQueue from 'p-queue';
import type { App } from '../app.js';
import { validateEntity } from '../entities.js';
import type { Entity } from '../entities.js';
import { classify, describeError, PoisonRecordError } from '../errors.js';
import type { FailureClass } from '../errors.js';
import { decodeRecord, positionOf } from '../events.js';
import type { ChangeEvent, StreamPosition } from '../events.js';
import type { Clock, DeadLetter, Logger, Sink } from '../ports.js';
import type { Route } from '../routes.js';
import { backoffDelay } from './backoff.js';
import { Dispatcher } from './dispatcher.js';
import { laneOf, laneOfRaw } from './lanes.js';

/**
 * What became of one record.
 * - `delivered`: every sink it was routed to acknowledged it.
 * - `dead-lettered`: at least one sink failed it for good and the dead-letter queue took it; the rest acknowledged it.
 * - `unrouted`: no route matched it.
 * - `skipped`: it was done in an earlier delivery of the same records.
 * - `blocked`: it failed and could not be dead-lettered (none configured, or the DLQ failed), or an
 *   earlier record of its lane is blocked.
 * - `unfinished`: not started, or its retries stopped, because the deadline came or the run was aborted.
 */
export type RecordStatus = 'delivered' | 'dead-lettered' | 'unrouted' | 'skipped' | 'blocked' | 'unfinished';

const DONE: ReadonlySet<RecordStatus> = new Set(['delivered', 'dead-lettered', 'unrouted', 'skipped']);

/** True when the record needs no more work: the checkpoint may pass it. */
export const isDone = (status: RecordStatus): boolean => DONE.has(status);

/** The result of {@link Engine.process}. */
export interface BatchOutcome {
  /** One status per input record, by index. */
  readonly statuses: readonly RecordStatus[];
  /** Index of the first record not done (the contiguous watermark); `statuses.length` when all are. */
  readonly watermark: number;
  readonly counts: Readonly<Record<RecordStatus, number>>;
  /** Sink requests retried because of a failure (entries, not requests). */
  readonly retries: number;
}

/** Options of one {@link Engine.process} call. */
export interface ProcessOptions {
  /** For records without `eventSourceARN` (GetRecords shape). */
  readonly streamArn?: string;
  readonly shardId?: string;
  /** Sequence numbers already done in an earlier delivery; these records are not sent again. */
  readonly alreadyDone?: ReadonlySet<string>;
  /** Epoch ms after which no new work starts (no new record, no retry); the rest is `unfinished`. */
  readonly deadline?: number;
  /** Aborts in-flight requests; what they carried becomes `unfinished`. */
  readonly signal?: AbortSignal;
}

/** Dependencies of the engine: all injectable, so tests control time and randomness. */
export interface EngineOptions {
  readonly app: App;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Source of jitter in [0, 1). @default Math.random */
  readonly random?: () => number;
}

interface Target {
  readonly route: Route;
  readonly payload: unknown;
}

type Delivery = 'delivered' | 'dead-lettered' | 'blocked' | 'unfinished';

interface Prepared {
  readonly raw: unknown;
  readonly event: ChangeEvent | undefined;
  readonly error: unknown;
  readonly position: StreamPosition;
}

const jsonSize = (payload: unknown): number => Buffer.byteLength(JSON.stringify(payload) ?? '', 'utf8');

const rank: Record<Delivery, number> = { delivered: 0, 'dead-lettered': 1, unfinished: 2, blocked: 3 };

/** One batch's run: lanes, dispatchers, statuses. */
class Run {
  readonly statuses: RecordStatus[];
  retries = 0;
  readonly #engine: Engine;
  readonly #o: ProcessOptions;
  readonly #signal: AbortSignal;
  readonly #dispatchers = new Map<Sink<unknown>, Dispatcher<unknown>>();
  #dlq: Dispatcher<DeadLetter> | undefined;

  constructor(engine: Engine, count: number, options: ProcessOptions) {
    this.#engine = engine;
    this.#o = options;
    this.#signal = options.signal ?? new AbortController().signal;
    // Every lane waiting on a backoff listens to the signal; that is many listeners by design.
    setMaxListeners(0, this.#signal);
    this.statuses = new Array<RecordStatus>(count).fill('unfinished');
  }

  get #stopping(): boolean {
    return this.#signal.aborted || (this.#o.deadline !== undefined && this.#engine.clock.now() >= this.#o.deadline);
  }

  async runLane(records: readonly Prepared[], indexes: readonly number[]): Promise<void> {
    for (let n = 0; n < indexes.length; n++) {
      const i = indexes[n] as number;
      const record = records[i] as Prepared;
      if (this.#o.alreadyDone?.has(record.position.sequenceNumber)) {
        this.statuses[i] = 'skipped';
        continue;
      }
      if (this.#stopping) return; // the rest stays 'unfinished'
      let status: RecordStatus;
      try {
        status = await this.#handle(record);
      } catch (error) {
        // A bug, not a record's fault: keep the lane's order by stopping it here.
        this.#engine.logger.error({ err: error, position: record.position }, 'unexpected error in lane; lane stopped');
        status = 'blocked';
      }
      this.statuses[i] = status;
      if (status === 'blocked') {
        for (let m = n + 1; m < indexes.length; m++) this.statuses[indexes[m] as number] = 'blocked';
        return;
      }
      if (status === 'unfinished') return;
    }
  }

  async #handle(record: Prepared): Promise<RecordStatus> {
    if (record.error !== undefined || !record.event) return this.#deadLetter(record, undefined, record.error, 1, this.#engine.clock.now());
    let event = record.event;
    const started = this.#engine.clock.now();
    let targets: Target[];
    try {
      const entity = event.entity === undefined ? undefined : this.#engine.entityByName.get(event.entity);
      if (entity?.schema) event = await validateEntity(event, entity);
      targets = this.#engine.targetsOf(event);
    } catch (error) {
      return this.#deadLetter(record, undefined, error, 1, started);
    }
    if (targets.length === 0) return 'unrouted';
    if (targets.length === 1) return this.#deliver(record, targets[0] as Target);
    const results = await Promise.all(targets.map((t) => this.#deliver(record, t)));
    return results.reduce((worst, r) => (rank[r] > rank[worst] ? r : worst), 'delivered' as Delivery);
  }

  #dispatcher(sink: Sink<unknown>): Dispatcher<unknown> {
    let d = this.#dispatchers.get(sink);
    if (!d) {
      d = new Dispatcher<unknown>({
        name: sink.name,
        maxRecords: sink.limits.maxRecords,
        maxBytes: sink.limits.maxBytes,
        sizeOf: sink.sizeOf ? (e) => (sink.sizeOf as (e: unknown) => number)(e) : jsonSize,
        send: async (entries, signal) => (await sink.send(entries, signal)).failed,
        signal: this.#signal,
      });
      this.#dispatchers.set(sink, d);
    }
    return d;
  }

  /** Sends to one sink with retries; hands the record to the DLQ when that fails for good. */
  async #deliver(record: Prepared, target: Target): Promise<Delivery> {
    const { clock, app } = this.#engine;
    const dispatcher = this.#dispatcher(target.route.sink);
    const first = clock.now();
    for (let attempt = 1; ; attempt++) {
      const error = await dispatcher.submit(target.payload);
      if (error === undefined) return 'delivered';
      if (this.#signal.aborted) return 'unfinished';
      const failure = classify(error);
      if (failure === 'PERMANENT' || attempt >= app.retry.maxAttempts) {
        return this.#deadLetter(record, target.route.sink.name, error, attempt, first, failure);
      }
      const retrying = await this.#backoff(attempt, failure, { err: describeError(error), sink: target.route.sink.name, position: record.position });
      if (!retrying) return 'unfinished';
      this.retries++;
    }
  }

  /** Sleeps the backoff before the next attempt; false when the deadline or an abort comes first. */
  async #backoff(attempt: number, failure: FailureClass, log: object): Promise<boolean> {
    const { clock, app, random, logger } = this.#engine;
    const delayMs = backoffDelay(attempt, failure, app.retry, random);
    if (this.#o.deadline !== undefined && clock.now() + delayMs >= this.#o.deadline) {
      logger.warn({ ...log, failure, attempt, delayMs }, 'delivery failed; no time left to retry before the deadline');
      return false;
    }
    logger.warn({ ...log, failure, attempt, delayMs }, 'delivery failed; retrying');
    try {
      await clock.sleep(delayMs, this.#signal);
    } catch {
      return false;
    }
    return !this.#stopping;
  }

  async #deadLetter(record: Prepared, sink: string | undefined, error: unknown, attempts: number, first: number, failure = classify(error)): Promise<Delivery> {
    const { app, logger, clock } = this.#engine;
    const described = describeError(error);
    const log = { err: described, failure, attempts, sink, position: record.position };
    if (!app.deadLetter) {
      logger.error(log, 'delivery failed and no dead-letter queue is configured; lane blocked');
      return 'blocked';
    }
    const letter: DeadLetter = {
      record: record.raw,
      sink,
      error: { ...described, class: failure },
      attempts,
      firstAttemptAt: first,
      lastAttemptAt: clock.now(),
      position: record.position,
    };
    this.#dlq ??= new Dispatcher<DeadLetter>({
      name: app.deadLetter.name,
      maxRecords: 10,
      maxBytes: Infinity,
      sizeOf: () => 0,
      send: async (letters, signal) => {
        await (app.deadLetter as NonNullable<App['deadLetter']>).send(letters, signal);
        return [];
      },
      signal: this.#signal,
    });
    for (let attempt = 1; ; attempt++) {
      const dlqError = await this.#dlq.submit(letter);
      if (dlqError === undefined) {
        logger.warn(log, 'record dead-lettered');
        return 'dead-lettered';
      }
      const dlqFailure = classify(dlqError);
      const retrying = dlqFailure !== 'PERMANENT' && attempt < app.retry.maxAttempts && (await this.#backoff(attempt, dlqFailure, { ...log, dlqErr: describeError(dlqError) }));
      if (!retrying) {
        logger.error({ ...log, dlqErr: describeError(dlqError), dlqAttempts: attempt }, 'dead-letter queue failed; lane blocked');
        return this.#signal.aborted ? 'unfinished' : 'blocked';
      }
    }
  }
}

/**
 * The core every shape runs: decodes a batch of raw stream records (one shard's, in stream order),
 * routes them, and delivers them with per-key order, cross-key concurrency, micro-batching,
 * retries and dead-letter hand-off. It holds no state between batches; the caller checkpoints at
 * {@link BatchOutcome.watermark}.
 */
export class Engine {
  readonly app: App;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly random: () => number;
  readonly entityByName: ReadonlyMap<string, Entity<unknown>>;

  constructor(options: EngineOptions) {
    this.app = options.app;
    this.logger = options.logger;
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.entityByName = new Map(options.app.entities.map((e) => [e.name, e]));
  }

  /** The routes an event matches, each with the payload its sink gets. Throws {@link PoisonRecordError}. */
  targetsOf(event: ChangeEvent): Target[] {
    const targets: Target[] = [];
    for (const route of this.app.routes) {
      if (route.entity !== '*' && route.entity !== event.entity) continue;
      if (route.kinds && !route.kinds.includes(event.kind)) continue;
      let payload: unknown = event;
      try {
        if (!route.predicates.every((p) => p(event))) continue;
        if (route.transform) payload = route.transform(event);
      } catch (error) {
        throw new PoisonRecordError(`Route ${route.description} threw on this record: ${describeError(error).message}`, { cause: error });
      }
      if (payload !== undefined) targets.push({ route, payload });
    }
    return targets;
  }

  /**
   * Processes one batch. Never rejects because of a record: every failure ends as a status.
   *
   * @example
   * const outcome = await engine.process(event.Records, { deadline: Date.now() + 10_000 });
   * checkpoint(outcome.watermark);
   */
  async process(records: readonly unknown[], options: ProcessOptions = {}): Promise<BatchOutcome> {
    const run = new Run(this, records.length, options);
    const lanes = new Map<string, number[]>();
    const prepared = records.map((raw, i): Prepared => {
      let event: ChangeEvent | undefined;
      let error: unknown;
      let lane: string | undefined;
      try {
        event = decodeRecord(raw, { streamArn: options.streamArn, shardId: options.shardId, numbers: this.app.numbers, entityOf: this.app.entityOf });
        lane = laneOf(this.app, event);
      } catch (e) {
        error = e;
        lane = laneOfRaw(this.app, raw);
      }
      lane ??= `\u0000unkeyed#${i}`;
      const members = lanes.get(lane);
      if (members) members.push(i);
      else lanes.set(lane, [i]);
      return { raw, event, error, position: event ? event.meta : positionOf(raw, options) };
    });

    const queue = new PQueue({ concurrency: this.app.concurrency });
    for (const indexes of lanes.values()) void queue.add(() => run.runLane(prepared, indexes));
    await queue.onIdle();

    const counts: Record<RecordStatus, number> = { delivered: 0, 'dead-lettered': 0, unrouted: 0, skipped: 0, blocked: 0, unfinished: 0 };
    let watermark = -1;
    run.statuses.forEach((s, i) => {
      counts[s]++;
      if (watermark < 0 && !isDone(s)) watermark = i;
    });
    return { statuses: run.statuses, watermark: watermark < 0 ? records.length : watermark, counts, retries: run.retries };
  }
}
