import type { Clock } from '../ports.js';
import type { Lease } from './ports.js';

interface Observation {
  readonly counter: number;
  readonly owner: string | undefined;
  /** This worker's clock when it first saw this counter. */
  readonly since: number;
}

/**
 * Expiry as this worker sees it: a lease is expired once its counter (and owner) have not moved
 * for a lease duration on this worker's clock, counted from when this worker first saw them.
 * Clocks are never compared across hosts.
 */
export class LeaseObserver {
  readonly #seen = new Map<string, Observation>();
  readonly #clock: Clock;
  readonly #leaseDurationMs: number;

  constructor(clock: Clock, leaseDurationMs: number) {
    this.#clock = clock;
    this.#leaseDurationMs = leaseDurationMs;
  }

  /** Notes a listing of the lease table (call it with every listing, right after it returned). */
  observe(leases: readonly Lease[]): void {
    const now = this.#clock.now();
    const present = new Set<string>();
    for (const lease of leases) {
      present.add(lease.shardId);
      const seen = this.#seen.get(lease.shardId);
      if (!seen || seen.counter !== lease.counter || seen.owner !== lease.owner) this.#seen.set(lease.shardId, { counter: lease.counter, owner: lease.owner, since: now });
    }
    for (const shardId of this.#seen.keys()) if (!present.has(shardId)) this.#seen.delete(shardId);
  }

  /**
   * When this worker's clock reaches it, the holder of `lease` at its counter can no longer be
   * delivering (docs/lease-table.md): a lease duration after this worker first saw the counter.
   */
  quietAt(lease: Lease): number {
    const seen = this.#seen.get(lease.shardId);
    const since = seen && seen.counter === lease.counter && seen.owner === lease.owner ? seen.since : this.#clock.now();
    return since + this.#leaseDurationMs;
  }

  expired(lease: Lease): boolean {
    return this.#clock.now() >= this.quietAt(lease);
  }
}

/** Why a worker takes a lease. */
export type TakeReason = 'free' | 'expired' | 'balance';

/** What a worker should try to take this round, in order, until it holds `target` leases. */
export interface TakePlan {
  readonly target: number;
  readonly candidates: readonly { readonly lease: Lease; readonly why: TakeReason }[];
}

/** The inputs of {@link planTakes}. */
export interface TakeInputs {
  readonly workerId: string;
  /** Leases that may be read now: not finished, parents done. */
  readonly open: readonly Lease[];
  /** Shards this worker holds. */
  readonly held: ReadonlySet<string>;
  readonly expired: (lease: Lease) => boolean;
}

/**
 * Balancing towards an even share: the target is the open leases over the live owners (this worker
 * and every peer holding an unexpired lease). Free leases (released or never owned) come first,
 * then expired ones, this worker's own earlier incarnation's included. Only when none is left and
 * this worker is below its share does it take one lease from the busiest peer above its share.
 */
export const planTakes = ({ workerId, open, held, expired }: TakeInputs): TakePlan => {
  const peers = new Map<string, Lease[]>();
  for (const l of open) if (l.owner && l.owner !== workerId && !expired(l)) peers.set(l.owner, [...(peers.get(l.owner) ?? []), l]);
  const target = Math.ceil(open.length / (peers.size + 1));
  // A lease under this worker's own id that it does not hold is a previous incarnation's (a
  // restart with a fixed workerId): it expires like any other, or nobody would ever take it.
  const free = open.filter((l) => !held.has(l.shardId) && (!l.owner || expired(l)));
  free.sort((a, b) => Number(Boolean(a.owner)) - Number(Boolean(b.owner)));
  if (free.length > 0) return { target, candidates: free.map((lease) => ({ lease, why: lease.owner ? 'expired' : 'free' })) };
  const [busiest] = [...peers.values()].sort((a, b) => b.length - a.length);
  const mine = held.size;
  if (mine < target && busiest && busiest.length > target && busiest.length - 1 >= mine + 1) return { target, candidates: [{ lease: busiest[0] as Lease, why: 'balance' }] };
  return { target, candidates: [] };
};
