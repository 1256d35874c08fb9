import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine } from '../core/engine.js';
import type { EngineObserver } from '../core/engine.js';
import { ConfigError, describeError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { Clock, Logger } from '../ports.js';
import type { Lease, LeaseStore, ShardDescription, StreamsApi } from './ports.js';
import { ShardReader } from './shard-reader.js';
import type { ReaderHost, ReaderState } from './shard-reader.js';

/** Options of {@link Worker}. Everything but `app`, `streamArn`, `streams` and `leases` has a default. */
export interface WorkerOptions {
  readonly app: App;
  /** The table's stream (DescribeTable's `LatestStreamArn`). */
  readonly streamArn: string;
  readonly streams: StreamsApi;
  readonly leases: LeaseStore;
  /** Unique per process. @default `<hostname>:<pid>:<random>` */
  readonly workerId?: string;
  /** @default createLogger() */
  readonly logger?: Logger;
  /** @default the system clock */
  readonly clock?: Clock;
  /**
   * A lease whose counter has not moved for this long, on this worker's clock, is expired and may
   * be taken. The holder renews at a third of it and stops reading a shard it could not renew.
   * @default 10000
   */
  readonly leaseDurationMs?: number;
  /** How often the lease table is read to take free or expired leases and balance. @default min(1000, leaseDurationMs / 3) */
  readonly coordinationIntervalMs?: number;
  /** Pause after an empty read of a shard. @default 1000 */
  readonly pollIntervalMs?: number;
  /** Records per GetRecords call (the service's limit is 1,000). @default 1000 */
  readonly maxRecordsPerRead?: number;
  /**
   * Most records one engine call (one delivery) carries, and so at most in flight per shard: the
   * reader gathers consecutive GetRecords pages of a shard up to it, like the `BatchSize` of
   * Lambda's event source mapping. Up to 10,000. An S3 export object holds at most one engine
   * call's records, so raise it with `batchWindowMs` for fewer, larger objects (docs/s3-export.md).
   * @default maxRecordsPerRead (one page per delivery)
   */
  readonly batchSize?: number;
  /**
   * How long, from the first record of a batch, the reader keeps gathering pages before it
   * delivers a batch smaller than `batchSize`, like Lambda's `MaximumBatchingWindowInSeconds`: a
   * full page is followed by the next read 200 ms later at the earliest (5 calls a second per
   * shard, as the service allows), a short one by the next after `pollIntervalMs`. Up to 300,000.
   * Every sink of the app waits with the batch: it adds up to this much latency.
   * @default 0 (deliver each page as it comes)
   */
  readonly batchWindowMs?: number;
  /** Checkpoint writes per shard at most this often (and at a shard's end and at shutdown). @default 5000 */
  readonly checkpointIntervalMs?: number;
  /** How often DescribeStream looks for new shards. @default 30000 */
  readonly discoveryIntervalMs?: number;
  /** Where shards found at the very first start begin: the oldest record kept, or new records only. @default 'TRIM_HORIZON' */
  readonly initialPosition?: 'TRIM_HORIZON' | 'LATEST';
  /**
   * What to do when records after a checkpoint were trimmed (past the 24 h retention): `'fail'`
   * stops that shard and says so loudly; `'skip'` continues from the oldest record kept and logs
   * the lost range.
   * @default 'fail'
   */
  readonly onTrimmedData?: 'fail' | 'skip';
  /** On shutdown, how long in-flight deliveries may finish before they are aborted. @default 10000 */
  readonly drainTimeoutMs?: number;
  /** Sequence numbers done above the checkpoint kept per lease (skipped when re-read). @default 1000 */
  readonly maxDoneAbove?: number;
  /** Metrics hooks of the engine. @default none */
  readonly observer?: EngineObserver;
}

/** One shard as `status()` reports it. */
export interface ShardStatus {
  readonly shardId: string;
  readonly owner: string | undefined;
  readonly checkpoint: string;
  readonly parents: readonly string[];
  /** This worker's reader, when it holds the lease. */
  readonly state: ReaderState | undefined;
  readonly lastReadAt: number | undefined;
  readonly lastCheckpointAt: number | undefined;
  readonly iteratorAgeMs: number | undefined;
}

/** Counters since start, per shard; the metrics endpoint exports them. */
export interface WorkerCounters {
  records: number;
  delivered: number;
  deadLettered: number;
  trimmedGaps: number;
  iteratorRenewals: number;
  leasesTaken: number;
  leasesLost: number;
  leasesReleased: number;
}

interface Held {
  lease: Lease;
  reader: ShardReader;
  lastRenewAt: number;
  /** Serialises renewals and checkpoints: both are conditional on the counter. */
  lock: Promise<unknown>;
}

interface Observation {
  counter: number;
  owner: string | undefined;
  /** This worker's clock when it first saw this counter. */
  since: number;
}

const positive = (field: string, value: number | undefined, fallback: number): number => {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new ConfigError(field, `must be a number > 0, got \`${String(value)}\`.`);
  return v;
};

const batching = (options: WorkerOptions): { batchSize: number; batchWindowMs: number } => {
  const { batchSize, batchWindowMs = 0 } = options;
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000)) {
    throw new ConfigError('batchSize', `must be an integer from 1 to 10000 (records per delivery, like Lambda's BatchSize), got \`${String(batchSize)}\`.`);
  }
  if (!Number.isInteger(batchWindowMs) || batchWindowMs < 0 || batchWindowMs > 300_000) {
    throw new ConfigError('batchWindowMs', `must be an integer from 0 to 300000 (ms to gather pages before a delivery; 0 delivers each page), got \`${String(batchWindowMs)}\`.`);
  }
  return { batchSize: batchSize ?? Math.min(1000, Math.floor(options.maxRecordsPerRead ?? 1000)), batchWindowMs };
};

/**
 * The long-lived shape: reads a table's stream itself, shares its shards with any number of peer
 * processes through a lease table, and runs the same engine as the Lambda shape.
 *
 * @example
 * const worker = new Worker({ app, streamArn, streams: dynamoDbStreamsApi({}), leases: dynamoDbLeaseStore({ tableName: 'dynamo-cdc-leases' }) });
 * await worker.start();
 * process.once('SIGTERM', () => void worker.stop());
 */
export class Worker {
  readonly workerId: string;
  readonly counters: WorkerCounters = { records: 0, delivered: 0, deadLettered: 0, trimmedGaps: 0, iteratorRenewals: 0, leasesTaken: 0, leasesLost: 0, leasesReleased: 0 };
  readonly #o: Required<Omit<WorkerOptions, 'logger' | 'clock' | 'workerId' | 'observer'>> & { coordinationIntervalMs: number };
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #engine: Engine;
  readonly #held = new Map<string, Held>();
  readonly #seen = new Map<string, Observation>();
  #leases: Lease[] = [];
  #shards: Map<string, ShardDescription> | undefined;
  #lastDiscovery = -Infinity;
  #discoverSoon = true;
  #firstStart = false;
  #stopping = false;
  readonly #stopSignal = new AbortController();
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  /** Lives on between shard readers so the status keeps the last read of a shard that moved. */
  #lastCoordinationAt: number | undefined;

  constructor(options: WorkerOptions) {
    if (!options.streamArn || typeof options.streamArn !== 'string') {
      throw new ConfigError('streamArn', `must be the table's stream ARN (DescribeTable's LatestStreamArn), got \`${String(options.streamArn)}\`. Pass --stream-arn or set STREAM_ARN.`);
    }
    const leaseDurationMs = positive('leaseDurationMs', options.leaseDurationMs, 10_000);
    this.#o = {
      app: options.app,
      streamArn: options.streamArn,
      streams: options.streams,
      leases: options.leases,
      leaseDurationMs,
      coordinationIntervalMs: positive('coordinationIntervalMs', options.coordinationIntervalMs, Math.min(1000, leaseDurationMs / 3)),
      pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs, 1000),
      maxRecordsPerRead: Math.min(1000, Math.floor(positive('maxRecordsPerRead', options.maxRecordsPerRead, 1000))),
      ...batching(options),
      checkpointIntervalMs: positive('checkpointIntervalMs', options.checkpointIntervalMs, 5000),
      discoveryIntervalMs: positive('discoveryIntervalMs', options.discoveryIntervalMs, 30_000),
      initialPosition: options.initialPosition ?? 'TRIM_HORIZON',
      onTrimmedData: options.onTrimmedData ?? 'fail',
      drainTimeoutMs: positive('drainTimeoutMs', options.drainTimeoutMs, 10_000),
      maxDoneAbove: positive('maxDoneAbove', options.maxDoneAbove, 1000),
    };
    if (this.#o.initialPosition !== 'TRIM_HORIZON' && this.#o.initialPosition !== 'LATEST') {
      throw new ConfigError('initialPosition', `must be 'TRIM_HORIZON' or 'LATEST', got \`${String(this.#o.initialPosition)}\`.`);
    }
    if (this.#o.onTrimmedData !== 'fail' && this.#o.onTrimmedData !== 'skip') {
      throw new ConfigError('onTrimmedData', `must be 'fail' or 'skip', got \`${String(this.#o.onTrimmedData)}\`.`);
    }
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? createLogger()).child({ workerId: this.workerId });
    this.#engine = new Engine({ app: options.app, logger: this.#log, clock: this.#clock, ...(options.observer ? { observer: options.observer } : {}) });
  }

  /** Starts coordinating and reading; resolves after the first coordination round. */
  async start(): Promise<void> {
    if (this.#loop) throw new Error('worker already started');
    this.#firstStart = (await this.#o.leases.list(this.#o.streamArn)).length === 0;
    this.#log.info({ streamArn: this.#o.streamArn, firstStart: this.#firstStart }, 'worker starting');
    await this.#coordinate();
    this.#loop = this.#run();
  }

  /**
   * Graceful shutdown: stop reading, let in-flight deliveries finish within `drainTimeoutMs`,
   * checkpoint, and release every lease so a peer takes over at once.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  /** Per shard: owner, checkpoint, lineage, and this worker's reader state and liveness. */
  status(): ShardStatus[] {
    return this.#leases.map((lease) => {
      const held = this.#held.get(lease.shardId);
      return {
        shardId: lease.shardId,
        owner: held ? this.workerId : lease.owner,
        checkpoint: held?.reader.checkpoint ?? lease.checkpoint,
        parents: lease.parents,
        state: held?.reader.state,
        lastReadAt: held?.reader.lastReadAt,
        lastCheckpointAt: held?.reader.lastCheckpointAt,
        iteratorAgeMs: held?.reader.iteratorAgeMs,
      };
    });
  }

  /** Shards this worker reads now. */
  get ownedShards(): string[] {
    return [...this.#held.keys()];
  }

  /**
   * Live when the coordinator ran within two intervals and every shard it reads has read within
   * `staleAfterMs` (default: three poll intervals, at least 10 s) — measured from successful reads
   * and checkpoints, not only from iterator age.
   */
  isLive(staleAfterMs = Math.max(10_000, 3 * this.#o.pollIntervalMs)): boolean {
    const now = this.#clock.now();
    if (this.#stopping) return false;
    if (this.#lastCoordinationAt === undefined || now - this.#lastCoordinationAt > 2 * this.#o.coordinationIntervalMs + 5000) return false;
    for (const { reader } of this.#held.values()) {
      if (reader.state === 'failed') return false;
      const last = Math.max(reader.lastReadAt ?? -Infinity, reader.lastCheckpointAt ?? -Infinity);
      if (reader.state !== 'ended' && reader.state !== 'starting' && now - last > staleAfterMs) return false;
    }
    return true;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      await this.#clock.sleep(this.#o.coordinationIntervalMs, this.#stopSignal.signal).catch(() => {});
      if (this.#stopping) break;
      try {
        await this.#coordinate();
      } catch (error) {
        this.#log.warn({ err: describeError(error) }, 'coordination round failed; trying again next round');
      }
    }
  }

  async #coordinate(): Promise<void> {
    const now = this.#clock.now();
    await this.#renew(now);
    if (this.#stopping) return;
    if (this.#discoverSoon || now - this.#lastDiscovery >= this.#o.discoveryIntervalMs) await this.#discover();
    const leases = await this.#o.leases.list(this.#o.streamArn);
    this.#leases = leases;
    this.#observe(leases);
    // A held lease that moved in the table was taken: stop at once rather than at the next renewal.
    for (const lease of leases) {
      const held = this.#held.get(lease.shardId);
      if (held && lease.counter > held.lease.counter && lease.owner !== this.workerId) this.#lose(held, 'lease taken by another worker');
    }
    await this.#takeAndBalance(leases);
    this.#lastCoordinationAt = this.#clock.now();
  }

  /** Renews held leases due for it; a lease that cannot be renewed is lost and its reader stops. */
  async #renew(now: number): Promise<void> {
    const due = [...this.#held.values()].filter((h) => now - h.lastRenewAt >= this.#o.leaseDurationMs / 3);
    await Promise.all(
      due.map((held) =>
        this.#withLock(held, async () => {
          let renewed: Lease | undefined;
          try {
            renewed = await this.#o.leases.renew(held.lease);
          } catch (error) {
            // Not lost yet: keep reading until the lease would expire for peers.
            if (this.#clock.now() - held.lastRenewAt >= this.#o.leaseDurationMs * 0.8) this.#lose(held, 'lease could not be renewed in time');
            this.#log.warn({ err: describeError(error), shardId: held.lease.shardId }, 'lease renewal failed');
            return;
          }
          if (!renewed) return this.#lose(held, 'lease taken by another worker');
          held.lease = renewed;
          held.lastRenewAt = now;
        }),
      ),
    );
  }

  #lose(held: Held, why: string): void {
    if (this.#held.get(held.lease.shardId) !== held) return;
    this.#held.delete(held.lease.shardId);
    this.counters.leasesLost++;
    held.reader.abort();
    this.#log.warn({ shardId: held.lease.shardId }, `${why}; shard reader stopped`);
  }

  /** Creates leases for shards that have none. Children of a closed shard get it as parent. */
  async #discover(): Promise<void> {
    const shards = await this.#o.streams.describeShards(this.#o.streamArn, this.#stopSignal.signal);
    this.#shards = new Map(shards.map((s) => [s.shardId, s]));
    this.#lastDiscovery = this.#clock.now();
    this.#discoverSoon = false;
    const known = new Set(this.#leases.map((l) => l.shardId));
    for (const shard of shards) {
      if (known.has(shard.shardId)) continue;
      const checkpoint = this.#firstStart && this.#o.initialPosition === 'LATEST' ? (shard.endingSequenceNumber ? 'SHARD_END' : 'LATEST') : 'TRIM_HORIZON';
      const created = await this.#o.leases.create({ streamArn: this.#o.streamArn, shardId: shard.shardId, parents: shard.parentShardId ? [shard.parentShardId] : [], checkpoint });
      if (created) this.#log.info({ shardId: shard.shardId, parent: shard.parentShardId, checkpoint }, 'lease created for shard');
    }
    this.#firstStart = false;
    // A finished shard that has left the stream (24 h after it closed) needs no lease: its
    // children see it gone from both the stream and the table and may start.
    for (const lease of this.#leases) {
      if (lease.checkpoint === 'SHARD_END' && !this.#shards.has(lease.shardId)) {
        await this.#o.leases.remove(lease).catch((error: unknown) => this.#log.warn({ err: describeError(error), shardId: lease.shardId }, 'removing a finished lease failed'));
      }
    }
  }

  #observe(leases: readonly Lease[]): void {
    const now = this.#clock.now();
    const present = new Set<string>();
    for (const lease of leases) {
      present.add(lease.shardId);
      const seen = this.#seen.get(lease.shardId);
      if (!seen || seen.counter !== lease.counter || seen.owner !== lease.owner) this.#seen.set(lease.shardId, { counter: lease.counter, owner: lease.owner, since: now });
    }
    for (const shardId of this.#seen.keys()) if (!present.has(shardId)) this.#seen.delete(shardId);
  }

  #expired(lease: Lease): boolean {
    const seen = this.#seen.get(lease.shardId);
    return !!seen && this.#clock.now() - seen.since >= this.#o.leaseDurationMs;
  }

  /** A shard may be read once every parent reached SHARD_END, or is gone from the stream and the lease table. */
  #ready(lease: Lease, byShard: ReadonlyMap<string, Lease>): boolean {
    return lease.parents.every((parent) => {
      const parentLease = byShard.get(parent);
      if (parentLease) return parentLease.checkpoint === 'SHARD_END';
      return this.#shards !== undefined && !this.#shards.has(parent);
    });
  }

  async #takeAndBalance(leases: readonly Lease[]): Promise<void> {
    if (this.#stopping) return;
    const byShard = new Map(leases.map((l) => [l.shardId, l]));
    const open = leases.filter((l) => l.checkpoint !== 'SHARD_END' && this.#ready(l, byShard));
    const liveOwners = new Set<string>([this.workerId]);
    for (const l of open) if (l.owner && l.owner !== this.workerId && !this.#expired(l)) liveOwners.add(l.owner);
    const target = Math.ceil(open.length / liveOwners.size);
    let mine = this.#held.size;
    // A lease under this worker's own id that it does not hold is a previous incarnation's (a
    // restart with a fixed workerId): it expires like any other, or nobody would ever take it.
    const free = open.filter((l) => !this.#held.has(l.shardId) && (!l.owner || this.#expired(l)));
    // Free leases first (released or never owned), then expired ones.
    free.sort((a, b) => Number(Boolean(a.owner)) - Number(Boolean(b.owner)));
    for (const lease of free) {
      if (mine >= target) break;
      if (await this.#take(lease, lease.owner ? 'expired' : 'free')) mine++;
    }
    if (mine >= target || free.length > 0) return;
    // Balance: take one lease from the busiest peer when it holds more than its share.
    const counts = new Map<string, Lease[]>();
    for (const l of open) if (l.owner && l.owner !== this.workerId && !this.#expired(l)) counts.set(l.owner, [...(counts.get(l.owner) ?? []), l]);
    const [busiest] = [...counts.entries()].sort((a, b) => b[1].length - a[1].length);
    if (busiest && busiest[1].length > target && busiest[1].length - 1 >= mine + 1) await this.#take(busiest[1][0] as Lease, 'balance');
  }

  async #take(lease: Lease, why: 'free' | 'expired' | 'balance'): Promise<boolean> {
    const taken = await this.#o.leases.take(lease, this.workerId);
    if (!taken) return false;
    this.counters.leasesTaken++;
    this.#log.info({ shardId: lease.shardId, from: lease.owner, why, checkpoint: taken.checkpoint }, 'lease taken');
    const host: ReaderHost = {
      engine: this.#engine,
      streams: this.#o.streams,
      logger: this.#log,
      clock: this.#clock,
      streamArn: this.#o.streamArn,
      pollIntervalMs: this.#o.pollIntervalMs,
      maxRecordsPerRead: this.#o.maxRecordsPerRead,
      batchSize: this.#o.batchSize,
      batchWindowMs: this.#o.batchWindowMs,
      checkpointIntervalMs: this.#o.checkpointIntervalMs,
      maxDoneAbove: this.#o.maxDoneAbove,
      onTrimmedData: this.#o.onTrimmedData,
      leaseFresh: () => true,
      checkpoint: (shardId, checkpoint, doneAbove) => this.#checkpoint(shardId, checkpoint, doneAbove),
      shardEnded: (shardId) => void this.#shardEnded(shardId),
      count: (event, _shardId, n = 1) => {
        this.counters[event] += n;
      },
    };
    const held: Held = { lease: taken, reader: undefined as unknown as ShardReader, lastRenewAt: this.#clock.now(), lock: Promise.resolve() };
    this.#held.set(lease.shardId, held);
    // A lease taken from a live peer: give the peer a coordination round or two to notice and
    // stop before reading, so the two never deliver the same shard at once.
    held.reader = new ShardReader(host, taken, why === 'balance' ? 2 * this.#o.coordinationIntervalMs : 0);
    return true;
  }

  #withLock<T>(held: Held, fn: () => Promise<T>): Promise<T> {
    const next = held.lock.then(fn, fn);
    held.lock = next.catch(() => {});
    return next;
  }

  async #checkpoint(shardId: string, checkpoint: string, doneAbove: readonly string[]): Promise<boolean> {
    const held = this.#held.get(shardId);
    if (!held) return false;
    return this.#withLock(held, async () => {
      const ok = await this.#o.leases.checkpoint(held.lease, checkpoint, doneAbove);
      if (ok) held.lease = { ...held.lease, checkpoint, doneAbove };
      else this.#lose(held, 'checkpoint refused: lease taken by another worker');
      return ok;
    });
  }

  /** A shard finished: release its lease and look for its children now. */
  async #shardEnded(shardId: string): Promise<void> {
    const held = this.#held.get(shardId);
    this.#discoverSoon = true;
    try {
      const children = await this.#o.streams.childShards(this.#o.streamArn, shardId, this.#stopSignal.signal);
      for (const child of children) {
        await this.#o.leases.create({ streamArn: this.#o.streamArn, shardId: child.shardId, parents: child.parentShardId ? [child.parentShardId] : [shardId], checkpoint: 'TRIM_HORIZON' });
      }
    } catch (error) {
      this.#log.warn({ err: describeError(error), shardId }, 'looking up child shards failed; the next discovery finds them');
    }
    if (held) await this.#release(held);
  }

  async #release(held: Held): Promise<void> {
    if (this.#held.get(held.lease.shardId) !== held) return;
    this.#held.delete(held.lease.shardId);
    await this.#withLock(held, async () => {
      try {
        if (await this.#o.leases.release(held.lease)) {
          this.counters.leasesReleased++;
          this.#log.info({ shardId: held.lease.shardId }, 'lease released');
        }
      } catch (error) {
        this.#log.warn({ err: describeError(error), shardId: held.lease.shardId }, 'lease release failed; it expires instead');
      }
    });
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.abort();
    this.#log.info({ shards: this.ownedShards }, 'worker stopping: draining shards');
    const helds = [...this.#held.values()];
    for (const h of helds) h.reader.stop();
    const drained = Promise.all(helds.map((h) => h.reader.finished));
    const timer = new AbortController();
    const timedOut = await Promise.race([
      drained.then(() => false),
      this.#clock.sleep(this.#o.drainTimeoutMs, timer.signal).then(
        () => true,
        () => false,
      ),
    ]);
    timer.abort();
    if (timedOut) {
      this.#log.warn({ drainTimeoutMs: this.#o.drainTimeoutMs }, 'drain timed out; aborting in-flight deliveries');
      for (const h of helds) h.reader.abort();
      await drained;
    }
    await Promise.all(helds.map((h) => this.#release(h)));
    await this.#loop;
    this.#log.info({}, 'worker stopped; leases released');
  }
}
