import { describeError } from '../errors.js';
import type { Clock, Logger } from '../ports.js';
import type { Lease, LeaseStore, ShardDescription, StreamsApi } from './ports.js';

/** Options of {@link ShardDiscovery}. */
export interface ShardDiscoveryOptions {
  readonly streamArn: string;
  readonly streams: StreamsApi;
  readonly store: LeaseStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often DescribeStream is asked for new shards (by this worker; the fleet shares the job). */
  readonly intervalMs: () => number;
  readonly initialPosition: 'TRIM_HORIZON' | 'LATEST';
  /** Aborted when the worker stops. */
  readonly signal: AbortSignal;
  /** Called after leases were created, so peers learn of them. @default none */
  readonly onCreated?: () => void;
}

/**
 * Finds the stream's shards and gives each a lease: on its own loop, so a DescribeStream that is
 * slow (the adapter's rate limiter and retries on top of the SDK's) delays nothing but itself.
 * Knows the lineage rule: a shard is read once each parent reached SHARD_END or is gone.
 */
export class ShardDiscovery {
  readonly #o: ShardDiscoveryOptions;
  #shards: Map<string, ShardDescription> | undefined;
  #lastAt = -Infinity;
  #wake = new AbortController();
  /** This worker's clock at the end of the last discovery that succeeded. */
  lastSuccessAt: number | undefined;
  /** True until the first discovery of a stream that had no lease at all: only then does `initialPosition` apply. */
  firstStart = false;

  constructor(options: ShardDiscoveryOptions) {
    this.#o = options;
    options.signal.addEventListener('abort', () => this.#wake.abort(), { once: true });
  }

  /** This worker's discovery interval now. */
  intervalMs(): number {
    return this.#o.intervalMs();
  }

  /** Runs a discovery at the next turn of the loop instead of at the interval (a shard ended). */
  soon(): void {
    this.#lastAt = -Infinity;
    this.#wake.abort();
  }

  /** Discovers every `intervalMs` (or sooner when asked) until the worker stops. `leases` gives the last listing. */
  async run(leases: () => readonly Lease[]): Promise<void> {
    const { clock, signal } = this.#o;
    while (!signal.aborted) {
      const dueIn = this.#lastAt + this.#o.intervalMs() - clock.now();
      if (dueIn <= 0) {
        try {
          await this.discover(leases());
        } catch (error) {
          if (signal.aborted) break;
          this.#lastAt = clock.now();
          this.#o.logger.warn({ err: describeError(error) }, 'shard discovery failed; trying again at the next interval');
        }
        continue;
      }
      this.#wake = new AbortController();
      if (signal.aborted) break;
      await clock.sleep(dueIn, this.#wake.signal).catch(() => {});
    }
  }

  /** One discovery: a lease for each shard without one; children of a closed shard get it as parent. */
  async discover(leases: readonly Lease[]): Promise<void> {
    const { streamArn, store } = this.#o;
    // Counted from the start, so a soon() during this discovery asks for one more.
    this.#lastAt = this.#o.clock.now();
    const shards = await this.#o.streams.describeShards(streamArn, this.#o.signal);
    this.#shards = new Map(shards.map((s) => [s.shardId, s]));
    const known = new Set(leases.map((l) => l.shardId));
    let created = 0;
    for (const shard of shards) {
      if (known.has(shard.shardId)) continue;
      const checkpoint = this.firstStart && this.#o.initialPosition === 'LATEST' ? (shard.endingSequenceNumber ? 'SHARD_END' : 'LATEST') : 'TRIM_HORIZON';
      if (!(await store.create({ streamArn, shardId: shard.shardId, parents: shard.parentShardId ? [shard.parentShardId] : [], checkpoint }))) continue;
      created++;
      this.#o.logger.info({ shardId: shard.shardId, parent: shard.parentShardId, checkpoint }, 'lease created for shard');
    }
    if (created > 0) this.#o.onCreated?.();
    this.firstStart = false;
    this.lastSuccessAt = this.#o.clock.now();
    // A finished shard that has left the stream (24 h after it closed) needs no lease: its
    // children see it gone from both the stream and the table and may start.
    for (const lease of leases) {
      if (lease.checkpoint === 'SHARD_END' && !this.#shards.has(lease.shardId)) {
        await store.remove(lease).catch((error: unknown) => this.#o.logger.warn({ err: describeError(error), shardId: lease.shardId }, 'removing a finished lease failed'));
      }
    }
  }

  /**
   * A shard ended: leases for its children now, rather than at the next discovery. Only when the
   * children cannot be looked up does a full discovery run at once (DescribeStream of every
   * shard: a fleet with many shards ending would otherwise ask for all of them each time).
   */
  async addChildrenOf(shardId: string): Promise<void> {
    const { streamArn } = this.#o;
    try {
      const children = await this.#o.streams.childShards(streamArn, shardId, this.#o.signal);
      let created = 0;
      for (const child of children) {
        if (await this.#o.store.create({ streamArn, shardId: child.shardId, parents: child.parentShardId ? [child.parentShardId] : [shardId], checkpoint: 'TRIM_HORIZON' })) created++;
      }
      if (created > 0) this.#o.onCreated?.();
    } catch (error) {
      this.soon();
      this.#o.logger.warn({ err: describeError(error), shardId }, 'looking up child shards failed; a discovery finds them');
    }
  }

  /** A shard may be read once every parent reached SHARD_END, or is gone from the stream and the lease table. */
  ready(lease: Lease, byShard: ReadonlyMap<string, Lease>): boolean {
    return lease.parents.every((parent) => {
      const parentLease = byShard.get(parent);
      if (parentLease) return parentLease.checkpoint === 'SHARD_END';
      return this.#shards !== undefined && !this.#shards.has(parent);
    });
  }
}
