import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver } from '../core/engine.js';
import type { Worker, WorkerCounters } from '../worker/worker.js';

/** What {@link createWorkerMetrics} reads from a worker at scrape time; a {@link Worker} fits. */
export type MetricsWorker = Pick<Worker, 'status' | 'counters' | 'ownedShards' | 'isLive'>;

/** Options of {@link createWorkerMetrics}. */
export interface WorkerMetricsOptions {
  /**
   * Where the metrics are registered. One set of dynamo-cdc metrics per registry: a second call
   * with the same registry throws, as prom-client refuses a name registered twice.
   * @default a new Registry (never prom-client's global one, so tests and several workers in one process don't clash)
   */
  readonly registry?: Registry;
  /** Also collect prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`) on the registry. @default true */
  readonly defaultMetrics?: boolean;
}

/** What {@link createWorkerMetrics} returns. */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** Pass it to the worker (`WorkerOptions.observer`): records in, deliveries, dead letters, retries, batch durations. */
  readonly observer: EngineObserver;
  /** Reads the worker's shards, leases and liveness at every scrape. Call it once per worker. */
  track(worker: MetricsWorker): void;
}

const PREFIX = 'dynamo_cdc_';

/** Batch durations span a fast in-memory page to a page held up by backoffs. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const LEASE_CHANGES = { taken: 'leasesTaken', lost: 'leasesLost', released: 'leasesReleased' } as const satisfies Record<string, keyof WorkerCounters>;

/**
 * Prometheus metrics of a worker, named `dynamo_cdc_*` (docs/metrics.md lists them). Counters of the
 * engine are fed by `observer`; per-shard gauges, owned shards and lease changes are read from the
 * tracked workers when the registry is scraped, so nothing polls in between.
 *
 * @example
 * const metrics = createWorkerMetrics();
 * const worker = new Worker({ app, streamArn, streams, leases, observer: metrics.observer });
 * metrics.track(worker);
 * await worker.start();
 * const server = await startMetricsServer({ port: 9464, registry: metrics.registry, isLive: () => worker.isLive() });
 */
export const createWorkerMetrics = (options: WorkerMetricsOptions = {}): WorkerMetrics => {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const workers = new Set<MetricsWorker>();
  /** Per worker, each counter's value at the last scrape: counters export the increase since. */
  const exported = new Map<MetricsWorker, Partial<Record<keyof WorkerCounters, number>>>();
  const increase = (worker: MetricsWorker, key: keyof WorkerCounters): number => {
    const last = exported.get(worker) ?? {};
    const now = worker.counters[key];
    const by = Math.max(0, now - (last[key] ?? 0));
    last[key] = now;
    exported.set(worker, last);
    return by;
  };
  const heldShards = function* () {
    for (const worker of workers) for (const shard of worker.status()) if (shard.state !== undefined) yield shard;
  };

  const recordsIn = new Counter({ name: `${PREFIX}records_in_total`, help: 'Stream records handed to the engine (a page read again after a blocked lane counts again).', registers });
  const delivered = new Counter({ name: `${PREFIX}delivered_total`, help: 'Entries acknowledged by a sink.', labelNames: ['sink'] as const, registers });
  const deadLettered = new Counter({
    name: `${PREFIX}dead_lettered_total`,
    help: 'Records handed to the dead-letter queue, by the sink that failed them (`none`: failed before routing).',
    labelNames: ['sink'] as const,
    registers,
  });
  const retries = new Counter({ name: `${PREFIX}retries_total`, help: 'Sink entries retried after a failure, by sink and failure class.', labelNames: ['sink', 'class'] as const, registers });
  const replicated = new Counter({ name: `${PREFIX}replicated_total`, help: 'Records left out because a global table replicated them from another region (`globalTable`).', registers });
  const batchDuration = new Histogram({ name: `${PREFIX}batch_duration_seconds`, help: 'Time the engine took for one page of records.', buckets: DURATION_BUCKETS, registers });

  new Gauge({
    name: `${PREFIX}iterator_age_seconds`,
    help: 'Age of the newest record of the last page read from a shard this worker reads, at that read (0 after an empty page).',
    labelNames: ['shard'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of heldShards()) if (s.iteratorAgeMs !== undefined) this.set({ shard: s.shardId }, s.iteratorAgeMs / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}last_read_timestamp_seconds`,
    help: 'Unix time of the last successful GetRecords of a shard this worker reads.',
    labelNames: ['shard'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of heldShards()) if (s.lastReadAt !== undefined) this.set({ shard: s.shardId }, s.lastReadAt / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}last_checkpoint_timestamp_seconds`,
    help: 'Unix time of the last checkpoint written for a shard this worker reads.',
    labelNames: ['shard'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of heldShards()) if (s.lastCheckpointAt !== undefined) this.set({ shard: s.shardId }, s.lastCheckpointAt / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}owned_shards`,
    help: 'Shards whose lease this process holds.',
    registers,
    collect() {
      let n = 0;
      for (const worker of workers) n += worker.ownedShards.length;
      this.set(n);
    },
  });
  new Gauge({
    name: `${PREFIX}live`,
    help: '1 when every tracked worker is live (as GET /healthz reports), else 0 (also when none is tracked).',
    registers,
    collect() {
      this.set(workers.size > 0 && [...workers].every((w) => w.isLive()) ? 1 : 0);
    },
  });
  const leaseChanges = new Counter({
    name: `${PREFIX}lease_changes_total`,
    help: 'Leases this process took, lost (taken by a peer or not renewed in time) or released.',
    labelNames: ['change'] as const,
    registers,
    collect() {
      for (const worker of workers) for (const [change, key] of Object.entries(LEASE_CHANGES)) this.inc({ change }, increase(worker, key));
    },
  });
  for (const change of Object.keys(LEASE_CHANGES)) leaseChanges.inc({ change }, 0);
  new Counter({
    name: `${PREFIX}trimmed_gaps_total`,
    help: 'Times records past a checkpoint were found trimmed (past the 24 h retention).',
    registers,
    collect() {
      for (const worker of workers) this.inc(increase(worker, 'trimmedGaps'));
    },
  });
  new Counter({
    name: `${PREFIX}iterator_renewals_total`,
    help: 'Expired shard iterators renewed from the last position.',
    registers,
    collect() {
      for (const worker of workers) this.inc(increase(worker, 'iteratorRenewals'));
    },
  });

  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  // The hooks run on the hot path: bound children skip hashing the labels on every call.
  const deliveredBy = new Map<string, Counter.Internal>();
  const deadLetteredBy = new Map<string, Counter.Internal>();
  const retriesBy = new Map<string, Counter.Internal>();
  const child = (cache: Map<string, Counter.Internal>, key: string, make: () => Counter.Internal): Counter.Internal => {
    let c = cache.get(key);
    if (!c) cache.set(key, (c = make()));
    return c;
  };

  const observer: EngineObserver = {
    delivered: (sink, count) => child(deliveredBy, sink, () => delivered.labels({ sink })).inc(count),
    deadLettered: (sink = 'none') => child(deadLetteredBy, sink, () => deadLettered.labels({ sink })).inc(),
    retried: (sink, failure) => child(retriesBy, `${failure}\n${sink}`, () => retries.labels({ sink, class: failure })).inc(),
    batch: (outcome, durationMs) => {
      recordsIn.inc(outcome.statuses.length);
      if (outcome.counts.replicated > 0) replicated.inc(outcome.counts.replicated);
      batchDuration.observe(durationMs / 1000);
    },
  };

  return {
    registry,
    observer,
    track: (worker) => {
      workers.add(worker);
    },
  };
};

/** What `/healthz` adds when a worker is not live: each shard it reads, with its state and last read and checkpoint. */
export const livenessDetails = (worker: MetricsWorker): Record<string, unknown> => ({
  shards: worker
    .status()
    .filter((s) => s.state !== undefined)
    .map((s) => ({ shardId: s.shardId, state: s.state, lastReadAt: s.lastReadAt, lastCheckpointAt: s.lastCheckpointAt })),
});

/** One observer calling each of `observers` in turn. */
export const combineObservers = (...observers: readonly EngineObserver[]): EngineObserver => ({
  delivered: (sink, count) => observers.forEach((o) => o.delivered?.(sink, count)),
  deadLettered: (sink) => observers.forEach((o) => o.deadLettered?.(sink)),
  retried: (sink, failure) => observers.forEach((o) => o.retried?.(sink, failure)),
  batch: (outcome, durationMs) => observers.forEach((o) => o.batch?.(outcome, durationMs)),
});
