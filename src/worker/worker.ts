import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine } from '../core/engine.js';
import type { EngineObserver } from '../core/engine.js';
import { ConfigError, describeError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { Clock, Logger } from '../ports.js';
import { HeartbeatObserver, planRound } from './balancer.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { FleetState, Lease, LeaseStore, StreamsApi } from './ports.js';
import { ShardDiscovery } from './shard-discovery.js';
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
   * A worker whose heartbeat has not moved for this long, on a peer's clock, is expired and its
   * leases may be taken. Each worker sends one heartbeat every sixth of it (not one write per
   * lease); a worker whose heartbeat has not succeeded for half of it starts no delivery, and its
   * in-flight deliveries are aborted and its leases dropped (time fencing, see docs/lease-table.md).
   * Failover after a crash takes one to two lease durations.
   * @default 10000
   */
  readonly leaseDurationMs?: number;
  /**
   * How often the fleet item (heartbeats and a change marker, one small read) is read to expire
   * silent peers, and the lease list read again when the marker moved, to take free leases and
   * balance. @default min(1000, leaseDurationMs / 3)
   */
  readonly coordinationIntervalMs?: number;
  /** The lease list is read at least this often even when the change marker did not move. @default 6 * leaseDurationMs */
  readonly fullListIntervalMs?: number;
  /** Pause after an empty read of a shard, and between reads once it is caught up (a page short of full). @default 1000 */
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
  /**
   * How often the fleet asks DescribeStream for new shards: each worker asks every this many ms
   * times the number of registered workers, so the fleet as a whole asks about this often.
   * @default 30000
   */
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
 * It is three small parts on loops of their own, and the shard readers: the {@link LeaseKeeper}
 * keeps this worker's leases with one heartbeat on a timer nothing else can delay and fences deliveries by time;
 * {@link ShardDiscovery} gives every shard a lease; the coordinator reads the fleet item (heartbeats
 * and a change marker) every round, expires silent peers, and when the marker moved lists the lease
 * table, notices leases taken away, takes free leases and hands back those above its fair share
 * (see {@link planRound}).
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
  /** The fleet as last read (consistently, after the lease list). */
  #fleet: FleetState = { beats: new Map(), version: -1 };
  #listedVersion = -1;
  #listedAt = -Infinity;
  /** Shards being handed back to balance: their readers drain before the release. */
  readonly #handingBack = new Set<string>();
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #engine: Engine;
  readonly #keeper: LeaseKeeper;
  readonly #discovery: ShardDiscovery;
  readonly #observer: HeartbeatObserver;
  /** The reader of each shard this worker holds; the keeper holds the leases themselves. */
  readonly #readers = new Map<string, ShardReader>();
  /** Per shard, the `finished` of its reader stopped because the lease was lost, until it has finished. */
  readonly #retired = new Map<string, Promise<void>>();
  /** Shards whose take is on its way. */
  readonly #taking = new Set<string>();
  #leases: Lease[] = [];
  #started = false;
  #stopping = false;
  readonly #stopSignal = new AbortController();
  #loops: Promise<unknown> = Promise.resolve();
  #stopped: Promise<void> | undefined;
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
      fullListIntervalMs: positive('fullListIntervalMs', options.fullListIntervalMs, 6 * leaseDurationMs),
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
    this.#keeper = new LeaseKeeper({
      store: this.#o.leases,
      clock: this.#clock,
      logger: this.#log,
      streamArn: this.#o.streamArn,
      workerId: this.workerId,
      leaseDurationMs,
      onLost: (shardId, why) => this.#stopReader(shardId, why),
      quiet: (shardId) => this.#retired.get(shardId) ?? Promise.resolve(),
      onStrayReleased: () => {
        this.counters.leasesReleased++;
        void this.#touch();
      },
    });
    this.#discovery = new ShardDiscovery({
      streamArn: this.#o.streamArn,
      streams: this.#o.streams,
      store: this.#o.leases,
      clock: this.#clock,
      logger: this.#log,
      intervalMs: () => this.#o.discoveryIntervalMs * Math.max(1, this.#fleet.beats.size),
      initialPosition: this.#o.initialPosition,
      signal: this.#stopSignal.signal,
      onCreated: () => void this.#touch(),
    });
    this.#observer = new HeartbeatObserver(this.#clock, leaseDurationMs);
  }

  /** Starts coordinating and reading; resolves after the first discovery and coordination round. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('worker already started');
    this.#started = true;
    const leases = await this.#o.leases.list(this.#o.streamArn);
    this.#discovery.firstStart = leases.length === 0;
    this.#log.info({ streamArn: this.#o.streamArn, firstStart: this.#discovery.firstStart }, 'worker starting');
    this.#keeper.start();
    try {
      await this.#keeper.settled();
      await this.#discovery.discover(leases);
      await this.#coordinate();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#loops = Promise.all([this.#runCoordinator(), this.#discovery.run(() => this.#leases)]);
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
      const reader = this.#readers.get(lease.shardId);
      return {
        shardId: lease.shardId,
        owner: reader ? this.workerId : lease.owner,
        checkpoint: reader?.checkpoint ?? lease.checkpoint,
        parents: lease.parents,
        state: reader?.state,
        lastReadAt: reader?.lastReadAt,
        lastCheckpointAt: reader?.lastCheckpointAt,
        iteratorAgeMs: reader?.iteratorAgeMs,
      };
    });
  }

  /** Shards this worker reads now. */
  get ownedShards(): string[] {
    return [...this.#readers.keys()];
  }

  /**
   * Live when the coordinator ran within two intervals, shard discovery succeeded within two of
   * its intervals (each plus 5 s), and every shard it reads has read within `staleAfterMs`
   * (default: three poll intervals, at least 10 s) — measured from successful reads and
   * checkpoints, not only from iterator age.
   */
  isLive(staleAfterMs = Math.max(10_000, 3 * this.#o.pollIntervalMs)): boolean {
    const now = this.#clock.now();
    if (this.#stopping) return false;
    if (this.#lastCoordinationAt === undefined || now - this.#lastCoordinationAt > 2 * this.#o.coordinationIntervalMs + 5000) return false;
    const discovered = this.#discovery.lastSuccessAt;
    if (discovered === undefined || now - discovered > 2 * this.#discovery.intervalMs() + 5000) return false;
    for (const reader of this.#readers.values()) {
      if (reader.state === 'failed') return false;
      const last = Math.max(reader.lastReadAt ?? -Infinity, reader.lastCheckpointAt ?? -Infinity);
      if (reader.state !== 'ended' && reader.state !== 'starting' && now - last > staleAfterMs) return false;
    }
    return true;
  }

  /** The coordinator's loop: list, notice leases taken away, take and balance. Renewals are not here. */
  async #runCoordinator(): Promise<void> {
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

  /**
   * One round: read the fleet item (cheap); expire peers whose heartbeat went quiet; when the
   * change marker moved (or the last full read is old), read the lease list, then the fleet again
   * consistently, and take free leases or hand back leases above this worker's fair share.
   */
  async #coordinate(): Promise<void> {
    const { leases: store, streamArn } = this.#o;
    let fleet = await store.fleet(streamArn, false);
    this.#observer.observe(fleet);
    let changed = false;
    for (const [workerId, token] of fleet.beats) {
      if (workerId === this.workerId || !this.#observer.expired(workerId, token)) continue;
      if (await store.unregister(streamArn, workerId, token)) {
        this.#log.warn({ peer: workerId }, 'peer expired: its heartbeat did not move for a lease duration');
        changed = true;
      }
    }
    const now = this.#clock.now();
    if (changed || fleet.version !== this.#listedVersion || now - this.#listedAt >= this.#o.fullListIntervalMs) {
      // The marker as read before the list: a change that lands while the list is read moves it
      // past this, so the next round lists again. (The version read after the list may already
      // count a release the list missed; remembering that one would hide it until the next full read.)
      const versionBeforeList = changed ? -1 : fleet.version;
      const leases = await store.list(streamArn);
      // Read after the list, consistently: a lease whose owner is not registered now was left by
      // a worker that expired or left before this read, so it stopped delivering it (see docs).
      fleet = await store.fleet(streamArn, true);
      this.#observer.observe(fleet);
      this.#fleet = fleet;
      this.#listedVersion = versionBeforeList;
      this.#listedAt = now;
      this.#leases = leases;
      this.#noticeMoved(leases);
      await this.#takeAndBalance(leases, fleet);
    }
    this.#lastCoordinationAt = this.#clock.now();
  }

  /** A held lease that moved in the table was taken: stop at once rather than at the next write. Leases an earlier process with this id left are released. */
  #noticeMoved(leases: readonly Lease[]): void {
    for (const lease of leases) {
      const held = this.#keeper.lease(lease.shardId);
      if (held && lease.counter > held.counter && lease.owner !== this.workerId) {
        this.#keeper.forget(lease.shardId);
        this.#stopReader(lease.shardId, 'lease taken by another worker');
      } else if (!held && lease.owner === this.workerId && this.#keeper.registered && !this.#taking.has(lease.shardId) && !this.#readers.has(lease.shardId) && !this.#retired.has(lease.shardId)) {
        this.#keeper.releaseForeign(lease, this.#keeper.joinedAt);
      }
    }
  }

  async #takeAndBalance(leases: readonly Lease[], fleet: FleetState): Promise<void> {
    const byShard = new Map(leases.map((l) => [l.shardId, l]));
    const open = leases.filter((l) => l.checkpoint !== 'SHARD_END' && this.#discovery.ready(l, byShard));
    // Only open shards count: a reader of a shard that just ended releases it anyway.
    const openIds = new Set(open.map((l) => l.shardId));
    const held = new Set([...this.#readers.keys()].filter((s) => openIds.has(s) && !this.#handingBack.has(s)));
    const plan = planRound({ workerId: this.workerId, open, members: new Set(fleet.beats.keys()), held });
    let moved = false;
    for (const shardId of [...held].slice(plan.target)) {
      if (this.#stopping) break;
      void this.#handBack(shardId);
    }
    for (const lease of plan.take) {
      if (this.#stopping || held.size >= plan.target) break;
      if (await this.#take(lease)) {
        held.add(lease.shardId);
        moved = true;
      }
    }
    if (moved) await this.#touch();
  }

  /** Moves the fleet's change marker, so peers read the lease list at their next round. */
  async #touch(): Promise<void> {
    await this.#o.leases.touch(this.#o.streamArn).catch((error: unknown) => this.#log.warn({ err: describeError(error) }, 'moving the change marker failed; peers see the change at their next full read'));
  }

  /** Balancing: the reader drains and checkpoints, then the lease is released for a peer below its share. */
  async #handBack(shardId: string): Promise<void> {
    const reader = this.#readers.get(shardId);
    if (!reader || this.#handingBack.has(shardId)) return;
    this.#handingBack.add(shardId);
    try {
      reader.stop();
      await reader.finished;
      if (this.#readers.get(shardId) !== reader) return;
      if (await this.#release(shardId)) {
        this.#log.info({ shardId }, 'lease handed back to balance');
        await this.#touch();
      }
    } finally {
      this.#handingBack.delete(shardId);
    }
  }

  /** True when taken and read from now on. */
  async #take(lease: Lease): Promise<boolean> {
    // Freshness counts from the heartbeat; the lease is free or its owner expired, so it is read at once.
    const sentAt = this.#clock.now();
    this.#taking.add(lease.shardId);
    const taken = await this.#o.leases.take(lease, this.workerId).finally(() => this.#taking.delete(lease.shardId));
    if (!taken) return false;
    this.counters.leasesTaken++;
    if (this.#stopping) {
      // stop() came while the take was in flight: hand the lease straight back, start no reader.
      await this.#o.leases.release(taken).then(
        (released) => {
          if (released) this.counters.leasesReleased++;
          this.#log.info({ shardId: lease.shardId }, 'lease taken while stopping; released');
        },
        (error: unknown) => this.#log.warn({ err: describeError(error), shardId: lease.shardId }, 'lease taken while stopping could not be released; it expires instead'),
      );
      return false;
    }
    // A take answered past the fence is not fresh: the keeper releases it instead (see add()).
    if (!this.#keeper.add(taken, sentAt)) return false;
    this.#log.info({ shardId: lease.shardId, from: lease.owner, why: lease.owner ? 'expired' : 'free', checkpoint: taken.checkpoint }, 'lease taken');
    this.#readers.set(lease.shardId, new ShardReader(this.#readerHost(), taken, 0));
    return true;
  }

  #readerHost(): ReaderHost {
    return {
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
      leaseFresh: (shardId) => this.#keeper.fresh(shardId),
      checkpoint: (shardId, checkpoint, doneAbove) => this.#keeper.checkpoint(shardId, checkpoint, doneAbove),
      shardEnded: (shardId) => void this.#shardEnded(shardId),
      count: (event, _shardId, n = 1) => {
        this.counters[event] += n;
      },
    };
  }

  /** The lease is lost (the keeper dropped it, or a peer took it): abort its reader's delivery and stop it. */
  #stopReader(shardId: string, why: string): void {
    const reader = this.#readers.get(shardId);
    if (!reader) return;
    this.#readers.delete(shardId);
    this.counters.leasesLost++;
    reader.abort();
    const finished = reader.finished;
    this.#retired.set(shardId, finished);
    void finished.then(() => {
      if (this.#retired.get(shardId) === finished) this.#retired.delete(shardId);
    });
    this.#log.warn({ shardId }, `${why}; shard reader stopped`);
  }

  /** A shard finished: leases for its children now, then release its own. */
  async #shardEnded(shardId: string): Promise<void> {
    await this.#discovery.addChildrenOf(shardId);
    if (await this.#release(shardId)) await this.#touch();
  }

  /** True when released, or when this worker did not hold it. */
  async #release(shardId: string): Promise<boolean> {
    if (!this.#readers.delete(shardId)) return true;
    if (!(await this.#keeper.release(shardId))) return false;
    this.counters.leasesReleased++;
    this.#log.info({ shardId }, 'lease released');
    return true;
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.abort();
    this.#log.info({ shards: this.ownedShards }, 'worker stopping: draining shards');
    const readers = [...this.#readers.values()];
    for (const reader of readers) reader.stop();
    // The keeper goes on beating while readers drain. A coordination round in flight (a take, say)
    // ends meanwhile; a lease it takes now is released at once.
    const drained = Promise.all([...readers.map((r) => r.finished), this.#loops]);
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
      for (const reader of readers) reader.abort();
      await Promise.all(readers.map((r) => r.finished));
    }
    const shards = [...this.#readers.keys()];
    const released = await Promise.all(shards.map((shardId) => this.#release(shardId)));
    await this.#keeper.stop();
    // Only what was released is said to be: a lease whose release failed, or that a call still on
    // its way may leave to this worker (a take, or a lease dropped at the fence), expires.
    const unreleased = [...new Set([...shards.filter((_, i) => !released[i]), ...this.#keeper.unsettled(), ...this.#taking])].sort();
    // With nothing left behind, the heartbeat goes too, so peers rebalance at once.
    if (unreleased.length === 0 && (await this.#keeper.leave())) this.#log.info({}, 'worker left the fleet');
    if (unreleased.length === 0) this.#log.info({}, 'worker stopped; leases released');
    else this.#log.warn({ unreleased }, 'worker stopped; leases not released: each expires a lease duration after its last write, or is released if a call about it still on its way lands');
  }
}
