import { setMaxListeners } from 'node:events';
import type { App } from '../app.js';
import { validateEntity } from '../entities.js';
import type { Entity } from '../entities.js';
import { classify, describeError, PoisonRecordError } from '../errors.js';
import type { FailureClass } from '../errors.js';
import { decodeRecord, positionOf, sequenceOf } from '../events.js';
import type { ChangeEvent, DecodeOptions, RawStreamRecord, StreamPosition } from '../events.js';
import type { Clock, DeadLetter, Logger, Sink } from '../ports.js';
import type { Route } from '../routes.js';
import { toJson } from '../serialize.js';
import { backoffDelay } from './backoff.js';
import { Dispatcher } from './dispatcher.js';
import { Lane } from './lane.js';
import type { LaneHost } from './lane.js';
import { lacksPartitionKey, laneOfEvent, laneOfRaw } from './lanes.js';

/**
 * What became of one record.
 * - `delivered`: every sink it was routed to acknowledged it.
 * - `dead-lettered`: at least one sink failed it for good and the dead-letter queue took it; the rest acknowledged it.
 * - `unrouted`: no route matched it.
 * - `skipped`: it was done in an earlier delivery of the same records.
 * - `replicated`: a global table's replication wrote it (in another region); `globalTable` leaves it out.
 * - `blocked`: it failed and could not be dead-lettered (none configured, or the DLQ failed), or an
 *   earlier record of its lane is blocked.
 * - `unfinished`: not started, or its retries stopped, because the deadline came or the run was aborted.
 */
export type RecordStatus = 'delivered' | 'dead-lettered' | 'unrouted' | 'skipped' | 'replicated' | 'blocked' | 'unfinished';

const DONE: ReadonlySet<RecordStatus> = new Set(['delivered', 'dead-lettered', 'unrouted', 'skipped', 'replicated']);

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
  /**
   * For each record not done (by index), the sinks (by `Sink.name`) that have acknowledged it, in
   * this call or before it (`ProcessOptions.acknowledged`). Only records with at least one. A sink
   * counts only when every target of the record to a sink of that name was acknowledged; a target
   * handed to the dead-letter queue does not count (a later delivery sends it to that sink again).
   */
  readonly acknowledged: ReadonlyMap<number, ReadonlySet<string>>;
}

/** Options of one {@link Engine.process} call. */
export interface ProcessOptions {
  /** For records without `eventSourceARN` (GetRecords shape). */
  readonly streamArn?: string;
  readonly shardId?: string;
  /** Sequence numbers already done in an earlier delivery; these records are not sent again. */
  readonly alreadyDone?: ReadonlySet<string>;
  /**
   * Per sequence number, the sinks (by `Sink.name`) that acknowledged the record in an earlier
   * delivery: it is sent again only to the other sinks it is routed to (a record every sink of
   * which acknowledged it is `skipped`).
   */
  readonly acknowledged?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Epoch ms after which no new work starts (no new record, no retry); the rest is `unfinished`. */
  readonly deadline?: number;
  /** Aborts in-flight requests; what they carried becomes `unfinished`. */
  readonly signal?: AbortSignal;
}

/**
 * Hooks for metrics. Called synchronously on the hot path: keep them to counter increments. A hook
 * that throws is logged once per hook kind (with `err`) and otherwise ignored: it never fails, delays
 * or changes the status of a record.
 */
export interface EngineObserver {
  /** `count` entries acknowledged by `sink`. */
  delivered?(sink: string, count: number): void;
  /** A record handed to the dead-letter queue; `sink` is absent when it failed before routing. */
  deadLettered?(sink: string | undefined): void;
  /** An entry to `sink` retried after a failure of the given class. */
  retried?(sink: string, failure: FailureClass): void;
  /** A batch finished. */
  batch?(outcome: BatchOutcome, durationMs: number): void;
}

/** Dependencies of the engine: all injectable, so tests control time and randomness. */
export interface EngineOptions {
  readonly app: App;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Source of jitter in [0, 1). @default Math.random */
  readonly random?: () => number;
  /** Metrics hooks. @default none */
  readonly observer?: EngineObserver;
}

interface Target {
  readonly route: Route;
  readonly payload: unknown;
}

type Delivery = 'delivered' | 'dead-lettered' | 'blocked' | 'unfinished';

/**
 * What finding the lanes learnt about a record, kept only for the few records that need it: the
 * event when the ordering function had to decode it, or the error that decoding or the function
 * threw. Other records are decoded only when their lane reaches them, so decoded images live for
 * one delivery rather than for the whole batch.
 */
interface Early {
  readonly event?: ChangeEvent;
  readonly error?: unknown;
}

const jsonSize = (payload: unknown): number => Buffer.byteLength(toJson(payload), 'utf8');

const rank: Record<Delivery, number> = { delivered: 0, 'dead-lettered': 1, unfinished: 2, blocked: 3 };

type Done<S> = (status: S) => void;

/** Most rounds of requests sent before their turn ends, per turn of the event loop (see `Run.#sendWaiting`). */
const MAX_EARLY_PER_TURN = 32;

/** Most records one run carries; bounds the decoded events a lane holds at once. */
const MAX_RUN = 1000;

/** The records of one lane, by index: a number for a lane of one record, which most lanes of many batches are. */
type LaneIndexes = number | number[];

interface RunItem {
  readonly index: number;
  readonly raw: unknown;
  readonly event: ChangeEvent;
  readonly targets: readonly Target[];
  /** Size of each target's payload, by target. */
  readonly sizes: readonly number[];
  /** Its status when `targets` is empty: `unrouted`, or all its sinks acknowledged it already. */
  readonly none: RecordStatus;
}

/**
 * One batch's run: lanes, dispatchers, statuses. The happy path is callback-driven (one pending
 * entry per record, one promise per request) so that scheduling stays small next to decoding;
 * the rare paths (schema checks, retries, dead letters) are plain async code.
 */
class Run implements LaneHost<RunItem[]> {
  readonly statuses: RecordStatus[];
  retries = 0;
  readonly #engine: Engine;
  readonly #o: ProcessOptions;
  readonly #signal: AbortSignal;
  readonly #dispatchers = new Map<Sink<unknown>, Dispatcher<unknown>>();
  readonly #records: readonly unknown[];
  readonly #decodeOptions: DecodeOptions;
  readonly #early: ReadonlyMap<number, Early>;
  /** Events decoded while looking ahead for a run and not sent in it; taken by `#handle`. */
  readonly #decoded = new Map<number, ChangeEvent>();
  /**
   * Sink names that acknowledged a record in this call, by index, kept only for records that were
   * not done when a sink acknowledged them (a run another sink failed, a record another target
   * failed): their next attempt goes only to the other sinks, and the outcome reports them.
   */
  readonly #acked = new Map<number, Set<string>>();
  #dlq: Dispatcher<DeadLetter> | undefined;

  constructor(engine: Engine, records: readonly unknown[], early: ReadonlyMap<number, Early>, options: ProcessOptions) {
    this.#engine = engine;
    this.#records = records;
    this.#early = early;
    this.#o = options;
    this.#decodeOptions = engine.decodeOptions(options);
    this.#signal = options.signal ?? new AbortController().signal;
    // Every lane waiting on a backoff listens to the signal; that is many listeners by design.
    setMaxListeners(0, this.#signal);
    this.statuses = new Array<RecordStatus>(records.length).fill('unfinished');
  }

  get stopping(): boolean {
    return this.#signal.aborted || (this.#o.deadline !== undefined && this.#engine.clock.now() >= this.#o.deadline);
  }

  /** Lanes started and not finished, and those of them waiting on a delivery. */
  #active = 0;
  #waiting = 0;
  /** The lanes not started yet, in the order they start, and how many those are. */
  #lanes: Iterator<LaneIndexes> = [][Symbol.iterator]();
  #queued = 0;
  /** True while `#pump` starts lanes: a lane that ends at once must not start another from inside it. */
  #pumping = false;
  /** Set when a check for requests nothing more can join is queued (see {@link #nothingMoreComing}). */
  #checkQueued = false;
  #finished: () => void = () => {};
  /** Rounds of requests sent early (by `#sendWaiting`) since the event loop last turned. */
  #sentEarly = 0;
  readonly #turnEnded = (): void => {
    this.#sentEarly = 0;
  };

  /**
   * Runs every lane, at most `concurrency` at once, and resolves when all have ended. No promise
   * or queue entry per lane: a batch can hold one lane per record, and a lane tells the run when
   * it ends (`laneEnded`), which starts the next one.
   */
  runLanes(lanes: Iterator<LaneIndexes>, count: number): Promise<void> {
    this.#lanes = lanes;
    this.#queued = count;
    return new Promise<void>((resolve) => {
      this.#finished = resolve;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    const concurrency = this.#engine.app.concurrency;
    try {
      while (this.#active < concurrency && this.#queued > 0) {
        const next = this.#lanes.next();
        if (next.done === true) {
          this.#queued = 0;
          break;
        }
        this.#queued--;
        this.#active++;
        // A lane of one record is kept as its index until it starts (batches with one change per
        // item are common). Lane.run never throws: what goes wrong inside it ends the lane, blocked.
        const indexes = next.value;
        new Lane<RunItem[]>(this, typeof indexes === 'number' ? [indexes] : indexes).run();
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#active === 0 && this.#queued === 0) this.#finished();
    else this.#nothingMoreComing();
  }

  /**
   * When every running lane waits and no lane is about to start, nothing can join a request that
   * waits for the turn to end (or out `maxWaitMs`) until some request completes: send it now
   * rather than idle. The check runs in a microtask, so that the lanes a completed request
   * releases (all settled in one loop) have added their next records first. A lane waiting on
   * another destination could have added more later; that costs a smaller request, never a stall.
   */
  #nothingMoreComing(): void {
    if (this.#pumping || this.#waiting < this.#active || this.#checkQueued) return;
    this.#checkQueued = true;
    queueMicrotask(this.#sendWaiting);
  }

  readonly #sendWaiting = (): void => {
    this.#checkQueued = false;
    if (this.#pumping || this.#waiting < this.#active) return;
    // Lanes about to start in free slots may still join.
    if (this.#queued > 0 && this.#active < this.#engine.app.concurrency) return;
    // With a sink that answers at once, requests sent this way could chain in microtasks for the
    // whole batch and keep timers (a worker's lease renewal) waiting: after a few, the requests
    // wait for the turn to end again, which lets the event loop run.
    if (this.#sentEarly >= MAX_EARLY_PER_TURN) return;
    if (this.#sentEarly++ === 0) setImmediate(this.#turnEnded);
    try {
      for (const d of this.#dispatchers.values()) d.flushWaiting();
      this.#dlq?.flushWaiting();
    } catch (error) {
      this.#engine.internalError(error);
    }
  };

  laneWaits(): void {
    this.#waiting++;
    this.#nothingMoreComing();
  }

  laneResumes(): void {
    this.#waiting--;
  }

  laneEnded(): void {
    this.#active--;
    this.#pump();
  }

  alreadyDone(index: number): boolean {
    if (this.#o.alreadyDone === undefined) return false;
    const seq = sequenceOf(this.#records[index]);
    // Records without a sequence number cannot be told apart, so none of them is ever skipped.
    return seq !== '' && this.#o.alreadyDone.has(seq);
  }

  internalError(error: unknown): void {
    this.#engine.internalError(error);
  }

  handle(index: number, done: Done<RecordStatus>): void {
    const raw = this.#records[index];
    let event: ChangeEvent;
    try {
      // Both maps are empty for most batches: no lookup per record then.
      const early = this.#early.size === 0 ? undefined : this.#early.get(index);
      if (early?.error !== undefined) throw early.error;
      event = early?.event ?? (this.#decoded.size === 0 ? undefined : this.#takeDecoded(index)) ?? this.#engine.decode(raw, this.#decodeOptions);
      if (this.#engine.app.replicated?.(event)) return done('replicated');
      const entity = event.entity === undefined ? undefined : this.#engine.entityByName.get(event.entity);
      if (entity?.schema) {
        validateEntity(event, entity).then(
          (valid) => this.#route(index, raw, valid, done),
          (error: unknown) => this.#then(this.#deadLetter(raw, positionOf(raw, this.#o), undefined, error, 1, this.#engine.clock.now()), done, done),
        ).catch(this.#failed(done));
        return;
      }
    } catch (error) {
      this.#then(this.#deadLetter(raw, positionOf(raw, this.#o), undefined, error, 1, this.#engine.clock.now()), done, done);
      return;
    }
    this.#route(index, raw, event, done);
  }

  /**
   * The rejection handler of a record's promise chain: something the engine calls (a logger, a
   * clock) threw where a status was due. What became of the record is unknown, so it is not done:
   * `blocked`, which a later delivery retries.
   */
  #failed(done: Done<'blocked'>): (error: unknown) => void {
    return (error) => {
      this.#engine.internalError(error);
      done('blocked');
    };
  }

  /**
   * Continues a record's chain (the rare paths: retries, dead letters). A rejection, or a `next`
   * that throws, ends the record `blocked`; a second call that may cause is ignored by the lane,
   * which has moved on, and can only make an aggregated status worse, never done.
   */
  #then<T>(promise: Promise<T>, next: (value: T) => void, done: Done<'blocked'>): void {
    const failed = this.#failed(done);
    promise.then(next, failed).catch(failed);
  }

  #takeDecoded(index: number): ChangeEvent | undefined {
    const event = this.#decoded.get(index);
    if (event) this.#decoded.delete(index);
    return event;
  }

  /**
   * A run: consecutive records of a lane, from `n` on, that all go only to destinations keeping
   * the order of a request (SQS FIFO, OpenSearch bulk, an S3 object), and that fit one request per
   * destination. They travel together, which the ordering contract allows inside such a request.
   * `undefined` when fewer than two records qualify; the records looked at stay decoded for later.
   */
  collectRun(indexes: readonly number[], n: number): RunItem[] | undefined {
    if (!this.#engine.runsPossible) return undefined;
    const items: RunItem[] = [];
    const totals = new Map<Sink<unknown>, { count: number; bytes: number }>();
    for (let m = n; m < indexes.length && items.length < MAX_RUN; m++) {
      const index = indexes[m] as number;
      const raw = this.#records[index];
      if (this.alreadyDone(index)) break;
      const early = this.#early.get(index);
      if (early?.error !== undefined) break;
      let event: ChangeEvent;
      let routed: Target[];
      try {
        event = early?.event ?? this.#decoded.get(index) ?? this.#engine.decode(raw, this.#decodeOptions);
        this.#decoded.set(index, event);
        if (this.#engine.app.replicated?.(event)) break; // settled on its own
        if (event.entity !== undefined && this.#engine.entityByName.get(event.entity)?.schema) break;
        routed = this.#engine.targetsOf(event);
      } catch {
        break; // handled on its own, where its failure is dead-lettered
      }
      const targets = this.#unacknowledged(index, raw, routed);
      if (targets.length === 0 ? items.length === 0 : !targets.every((t) => t.route.sink.preservesOrderWithinRequest)) break;
      const sizes: number[] = [];
      let fits = true;
      for (const t of targets) {
        const d = this.#dispatcher(t.route.sink);
        let size: number;
        try {
          size = d.sizeOf(t.payload);
        } catch {
          fits = false;
          break;
        }
        const total = totals.get(t.route.sink) ?? { count: 0, bytes: 0 };
        if (!d.fits(total.count + 1, total.bytes + size)) {
          fits = false;
          break;
        }
        sizes.push(size);
      }
      if (!fits) break;
      targets.forEach((t, j) => {
        const total = totals.get(t.route.sink) ?? { count: 0, bytes: 0 };
        totals.set(t.route.sink, { count: total.count + 1, bytes: total.bytes + (sizes[j] as number) });
      });
      items.push({ index, raw, event, targets, sizes, none: targets.length === 0 ? this.#noneLeft(index, raw, routed) : 'delivered' });
    }
    if (items.length < 2) return undefined;
    for (const item of items) this.#decoded.delete(item.index);
    return items;
  }

  /**
   * Sends a run as one request per destination. When a destination fails an entry, every entry
   * after it in that request is sent to it again later (it may have landed, but out of order with
   * the retry), so the run settles up to its first record not acknowledged everywhere: that record
   * retries or is dead-lettered as a single record would; the lane resumes after it. The
   * destinations that acknowledged a record are remembered, so neither the retry nor the lane's
   * next pass sends it to them again (they would see an older change after a newer one).
   */
  deliverRun(items: readonly RunItem[], done: (statuses: readonly RecordStatus[]) => void): void {
    const first = this.#engine.clock.now();
    const groups = new Map<Sink<unknown>, { payloads: unknown[]; sizes: number[]; owners: number[] }>();
    items.forEach((item, k) =>
      item.targets.forEach((t, j) => {
        const g = groups.get(t.route.sink) ?? { payloads: [], sizes: [], owners: [] };
        g.payloads.push(t.payload);
        g.sizes.push(item.sizes[j] as number);
        g.owners.push(k);
        groups.set(t.route.sink, g);
      }),
    );
    const failures = new Map<Sink<unknown>, { owner: number; error: unknown }>();
    let open = groups.size;
    const settled = (): void => {
      const plain = (item: RunItem): RecordStatus => (item.targets.length === 0 ? item.none : 'delivered');
      let k = items.length;
      for (const f of failures.values()) k = Math.min(k, f.owner);
      if (k === items.length) return done(items.map(plain));
      // A destination acknowledged the records before the first one it failed.
      for (let m = k; m < items.length; m++) {
        const rest = items[m] as RunItem;
        this.#acknowledge(rest.index, rest.targets, (j) => (failures.get((rest.targets[j] as Target).route.sink)?.owner ?? Infinity) > m);
      }
      const before = items.slice(0, k).map(plain);
      const item = items[k] as RunItem;
      const failed = item.targets.filter((t) => failures.get(t.route.sink)?.owner === k);
      const results = new Array<Delivery>(failed.length);
      let pending = failed.length;
      let worst: Delivery = 'delivered';
      failed.forEach((t, j) => {
        const one = (result: Delivery): void => {
          results[j] = result;
          if (rank[result] > rank[worst]) worst = result;
          if (--pending > 0) return;
          if (worst !== 'delivered') this.#acknowledge(item.index, failed, (i) => results[i] === 'delivered');
          done([...before, worst]);
        };
        const error = (failures.get(t.route.sink) as { error: unknown }).error;
        this.#then(
          this.#afterFailure(item.raw, item.event.meta, t, error, 1, first),
          (next) => {
            if (next === 'retry') this.#deliver(item.raw, item.event.meta, t, one, 2, first);
            else one(next);
          },
          one,
        );
      });
    };
    for (const [sink, g] of groups) {
      this.#dispatcher(sink).submitGroup(g.payloads, g.sizes, (errors) => {
        const at = errors.findIndex((e) => e !== undefined);
        // The failed record's entries and those after it are sent again later, and counted then.
        this.#engine.observeDelivered(sink.name, at < 0 ? errors.length : g.owners.indexOf(g.owners[at] as number));
        if (at >= 0) failures.set(sink, { owner: g.owners[at] as number, error: errors[at] });
        if (--open === 0) settled();
      });
    }
  }

  #route(index: number, raw: unknown, event: ChangeEvent, done: Done<RecordStatus>): void {
    let routed: Target[];
    try {
      routed = this.#engine.targetsOf(event);
    } catch (error) {
      this.#then(this.#deadLetter(raw, event.meta, undefined, error, 1, this.#engine.clock.now()), done, done);
      return;
    }
    if (routed.length === 0) return done('unrouted');
    const targets = this.#unacknowledged(index, raw, routed);
    if (targets.length === 0) return done(this.#noneLeft(index, raw, routed));
    if (targets.length === 1) return this.#deliver(raw, event.meta, targets[0] as Target, done);
    let open = targets.length;
    let worst: Delivery = 'delivered';
    const results = new Array<Delivery>(targets.length);
    targets.forEach((t, j) => {
      this.#deliver(raw, event.meta, t, (result) => {
        results[j] = result;
        if (rank[result] > rank[worst]) worst = result;
        if (--open > 0) return;
        if (worst !== 'delivered') this.#acknowledge(index, targets, (i) => results[i] === 'delivered');
        done(worst);
      });
    });
  }

  /** Sink names that acknowledged the record in an earlier delivery (`ProcessOptions.acknowledged`). */
  #ackedBefore(raw: unknown): ReadonlySet<string> | undefined {
    if (this.#o.acknowledged === undefined) return undefined;
    const seq = sequenceOf(raw);
    return seq === '' ? undefined : this.#o.acknowledged.get(seq);
  }

  /** The targets whose sink has not acknowledged the record yet; `targets` itself when none has. */
  #unacknowledged(index: number, raw: unknown, targets: Target[]): Target[] {
    const here = this.#acked.size === 0 ? undefined : this.#acked.get(index);
    const before = this.#ackedBefore(raw);
    if (here === undefined && before === undefined) return targets;
    return targets.filter((t) => !here?.has(t.route.sink.name) && !before?.has(t.route.sink.name));
  }

  /** Status of a routed record every sink of which acknowledged it: `skipped` when all did so before this call. */
  #noneLeft(index: number, raw: unknown, routed: readonly Target[]): RecordStatus {
    if (routed.length === 0) return 'unrouted';
    const before = this.#ackedBefore(raw);
    return routed.every((t) => before?.has(t.route.sink.name)) ? 'skipped' : 'delivered';
  }

  /**
   * Remembers the sinks that acknowledged a record not done yet. A sink name counts only when
   * every target of the record to a sink of that name was acknowledged (`acked(j)` for target j).
   */
  #acknowledge(index: number, targets: readonly Target[], acked: (j: number) => boolean): void {
    let names: Set<string> | undefined;
    targets.forEach((t, j) => {
      if (acked(j)) (names ??= new Set()).add(t.route.sink.name);
    });
    if (names === undefined) return;
    const found: Set<string> = names;
    targets.forEach((t, j) => {
      if (!acked(j)) found.delete(t.route.sink.name);
    });
    if (found.size === 0) return;
    const known = this.#acked.get(index);
    if (known === undefined) this.#acked.set(index, found);
    else for (const name of found) known.add(name);
  }

  /** The sinks that acknowledged a record, in this call or before it; `undefined` when none did. */
  acknowledgedOf(index: number): ReadonlySet<string> | undefined {
    const here = this.#acked.get(index);
    const before = this.#ackedBefore(this.#records[index]);
    if (here === undefined) return before !== undefined && before.size > 0 ? before : undefined;
    if (before !== undefined) for (const name of before) here.add(name);
    return here;
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
        maxWaitMs: sink.limits.maxWaitMs ?? 0,
        clock: this.#engine.clock,
        deadline: this.#o.deadline,
        onCallbackError: this.#engine.internalError,
      });
      this.#dispatchers.set(sink, d);
    }
    return d;
  }

  /** Sends to one sink with retries; hands the record to the DLQ when that fails for good. */
  #deliver(raw: unknown, position: StreamPosition, target: Target, done: Done<Delivery>, attempt = 1, first = this.#engine.clock.now()): void {
    this.#dispatcher(target.route.sink).submit(target.payload, (error) => {
      if (error === undefined) {
        this.#engine.observeDelivered(target.route.sink.name, 1);
        return done('delivered');
      }
      this.#then(
        this.#afterFailure(raw, position, target, error, attempt, first),
        (next) => {
          if (next === 'retry') this.#deliver(raw, position, target, done, attempt + 1, first);
          else done(next);
        },
        done,
      );
    });
  }

  async #afterFailure(raw: unknown, position: StreamPosition, target: Target, error: unknown, attempt: number, first: number): Promise<Delivery | 'retry'> {
    if (this.#signal.aborted) return 'unfinished';
    const failure = classify(error);
    if (failure === 'PERMANENT' || attempt >= this.#engine.app.retry.maxAttempts) {
      return this.#deadLetter(raw, position, target.route.sink.name, error, attempt, first, failure);
    }
    if (!(await this.#backoff(attempt, failure, { err: describeError(error), sink: target.route.sink.name, position }))) return 'unfinished';
    this.retries++;
    this.#engine.observeRetried(target.route.sink.name, failure);
    return 'retry';
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
    return !this.stopping;
  }

  async #deadLetter(raw: unknown, position: StreamPosition, sink: string | undefined, error: unknown, attempts: number, first: number, failure = classify(error)): Promise<Delivery> {
    const { app, logger, clock } = this.#engine;
    const described = describeError(error);
    const log = { err: described, failure, attempts, sink, position };
    if (!app.deadLetter) {
      logger.error(log, 'delivery failed and no dead-letter queue is configured; lane blocked');
      return 'blocked';
    }
    const letter: DeadLetter = {
      record: raw,
      sink,
      error: { ...described, class: failure },
      attempts,
      firstAttemptAt: first,
      lastAttemptAt: clock.now(),
      // The stream position only, whatever richer object (an event's meta) was passed in.
      position: { streamArn: position.streamArn, shardId: position.shardId, sequenceNumber: position.sequenceNumber, eventID: position.eventID },
    };
    const queue = app.deadLetter;
    const dlq = (this.#dlq ??= new Dispatcher<DeadLetter>({
      name: queue.name,
      maxRecords: 10,
      maxBytes: Infinity,
      sizeOf: () => 0,
      send: async (letters, signal) => (await queue.send(letters, signal))?.failed ?? [],
      signal: this.#signal,
      onCallbackError: this.#engine.internalError,
    }));
    for (let attempt = 1; ; attempt++) {
      const dlqError = await new Promise<unknown>((resolve) => dlq.submit(letter, resolve));
      if (dlqError === undefined) {
        logger.warn(log, 'record dead-lettered');
        this.#engine.observeDeadLettered(sink);
        return 'dead-lettered';
      }
      const dlqFailure = classify(dlqError);
      if (dlqFailure === 'PERMANENT' || attempt >= app.retry.maxAttempts || this.#signal.aborted) {
        logger.error({ ...log, dlqErr: describeError(dlqError), dlqAttempts: attempt }, 'dead-letter queue failed; lane blocked');
        return this.#signal.aborted ? 'unfinished' : 'blocked';
      }
      // The deadline, not the queue, ended the retries: the next delivery tries again.
      if (!(await this.#backoff(attempt, dlqFailure, { ...log, dlqErr: describeError(dlqError) }))) return 'unfinished';
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
  readonly observer: EngineObserver | undefined;
  readonly entityByName: ReadonlyMap<string, Entity<unknown>>;
  /** Some route leads to a destination that keeps the order of a request, so lanes may send runs. */
  readonly runsPossible: boolean;
  #warnedPartitionKey = false;
  /** Observer hooks that threw already: each is logged once. */
  readonly #brokenHooks = new Set<keyof EngineObserver>();

  constructor(options: EngineOptions) {
    this.app = options.app;
    this.logger = options.logger;
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.observer = options.observer;
    this.entityByName = new Map(options.app.entities.map((e) => [e.name, e]));
    this.runsPossible = options.app.routes.some((r) => r.sink.preservesOrderWithinRequest);
  }

  /** Calls {@link EngineObserver.delivered}; a hook that throws is logged once and ignored. */
  observeDelivered(sink: string, count: number): void {
    if (this.observer?.delivered === undefined) return;
    try {
      this.observer.delivered(sink, count);
    } catch (error) {
      this.#hookThrew('delivered', error);
    }
  }

  /** Calls {@link EngineObserver.retried}; a hook that throws is logged once and ignored. */
  observeRetried(sink: string, failure: FailureClass): void {
    if (this.observer?.retried === undefined) return;
    try {
      this.observer.retried(sink, failure);
    } catch (error) {
      this.#hookThrew('retried', error);
    }
  }

  /** Calls {@link EngineObserver.deadLettered}; a hook that throws is logged once and ignored. */
  observeDeadLettered(sink: string | undefined): void {
    if (this.observer?.deadLettered === undefined) return;
    try {
      this.observer.deadLettered(sink);
    } catch (error) {
      this.#hookThrew('deadLettered', error);
    }
  }

  #observeBatch(outcome: BatchOutcome, durationMs: number): void {
    if (this.observer?.batch === undefined) return;
    try {
      this.observer.batch(outcome, durationMs);
    } catch (error) {
      this.#hookThrew('batch', error);
    }
  }

  // Once per kind: a broken counter throws on every record, and a log line per record would drown the rest.
  #hookThrew(hook: keyof EngineObserver, error: unknown): void {
    if (this.#brokenHooks.has(hook)) return;
    this.#brokenHooks.add(hook);
    this.#logQuietly({ hook, err: describeError(error) }, 'an observer hook threw; its metrics are incomplete and it is ignored (logged once per hook)');
  }

  /** Logs an error the engine caught in its own machinery (a callback or a collaborator that threw). */
  readonly internalError = (error: unknown): void => {
    this.#logQuietly({ err: describeError(error) }, 'unexpected error inside the engine; the records it touched are not done and will be delivered again');
  };

  #logQuietly(obj: object, msg: string): void {
    try {
      this.logger.error(obj, msg);
    } catch {
      // The logger is what failed; there is nowhere left to report to.
    }
  }

  /** Decodes one record with its batch's {@link decodeOptions}; a subclass may add to the event (replay does). */
  decode(raw: unknown, options: DecodeOptions): ChangeEvent {
    return decodeRecord(raw, options);
  }

  /** The decoder's options for one batch: made once, not once per record. */
  decodeOptions(options: ProcessOptions): DecodeOptions {
    return { streamArn: options.streamArn, shardId: options.shardId, numbers: this.app.numbers, entityOf: this.app.entityOf };
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
    const started = this.clock.now();
    const lanes = new Map<string, LaneIndexes>();
    const unkeyed: number[] = [];
    const early = new Map<number, Early>();
    const ordering = this.app.ordering;
    const decodeOptions = this.decodeOptions(options);
    for (let i = 0; i < records.length; i++) {
      const raw = records[i];
      let lane: string | undefined;
      if (typeof ordering === 'function') {
        try {
          const event = this.decode(raw, decodeOptions);
          early.set(i, { event });
          lane = laneOfEvent(ordering, event);
        } catch (error) {
          early.set(i, { error });
        }
      } else {
        lane = laneOfRaw(this.app, raw);
        if (i === 0 && !this.#warnedPartitionKey && lacksPartitionKey(this.app, raw)) {
          this.#warnedPartitionKey = true;
          const names = Object.keys((raw as RawStreamRecord).dynamodb?.Keys ?? {}).join(', ');
          this.logger.error(
            { partitionKey: this.app.partitionKey, keyAttributes: names },
            "ordering is 'partitionKey' but the records' keys have no such attribute; ordering by the whole item instead. Set partitionKey to the table's partition key attribute",
          );
        }
      }
      if (lane === undefined) {
        unkeyed.push(i); // no usable key: a lane of its own, where it is dead-lettered
        continue;
      }
      const members = lanes.get(lane);
      if (members === undefined) lanes.set(lane, i);
      else if (typeof members === 'number') lanes.set(lane, [members, i]);
      else members.push(i);
    }
    const run = new Run(this, records, early, options);
    await run.runLanes(unkeyed.length === 0 ? lanes.values() : [...lanes.values(), ...unkeyed][Symbol.iterator](), lanes.size + unkeyed.length);

    const counts: Record<RecordStatus, number> = { delivered: 0, 'dead-lettered': 0, unrouted: 0, skipped: 0, replicated: 0, blocked: 0, unfinished: 0 };
    let watermark = -1;
    const acknowledged = new Map<number, ReadonlySet<string>>();
    run.statuses.forEach((s, i) => {
      counts[s]++;
      if (isDone(s)) return;
      if (watermark < 0) watermark = i;
      const sinks = run.acknowledgedOf(i);
      if (sinks) acknowledged.set(i, sinks);
    });
    const outcome = { statuses: run.statuses, watermark: watermark < 0 ? records.length : watermark, counts, retries: run.retries, acknowledged };
    this.#observeBatch(outcome, this.clock.now() - started);
    return outcome;
  }
}
