import type { Clock } from '../ports.js';
import type { FleetState, Lease } from './ports.js';

interface Observation {
  readonly token: string;
  /** This worker's clock when it first saw this token. */
  readonly since: number;
}

/**
 * Expiry as this worker sees it: a peer is expired once its heartbeat token has not moved for a
 * lease duration on this worker's clock, counted from when this worker first saw the token.
 * Clocks are never compared across hosts.
 */
export class HeartbeatObserver {
  readonly #seen = new Map<string, Observation>();
  readonly #clock: Clock;
  readonly #leaseDurationMs: number;

  constructor(clock: Clock, leaseDurationMs: number) {
    this.#clock = clock;
    this.#leaseDurationMs = leaseDurationMs;
  }

  /** Notes a read of the fleet item (call it with every read, right after it returned). */
  observe(fleet: FleetState): void {
    const now = this.#clock.now();
    for (const [workerId, token] of fleet.beats) {
      if (this.#seen.get(workerId)?.token !== token) this.#seen.set(workerId, { token, since: now });
    }
    for (const workerId of this.#seen.keys()) if (!fleet.beats.has(workerId)) this.#seen.delete(workerId);
  }

  /** When this worker's clock reaches it, `workerId` at heartbeat `token` can no longer be delivering (docs/lease-table.md). */
  quietAt(workerId: string, token: string): number {
    const seen = this.#seen.get(workerId);
    return (seen && seen.token === token ? seen.since : this.#clock.now()) + this.#leaseDurationMs;
  }

  expired(workerId: string, token: string): boolean {
    return this.#clock.now() >= this.quietAt(workerId, token);
  }
}

/**
 * This worker's fair share of `open` leases among the registered workers `members` (this one
 * included): the same deterministic split on every worker, so that they agree without talking:
 * `open / members` each, the first `open % members` ids (sorted) one more.
 */
export const fairShare = (workerId: string, members: readonly string[], open: number): number => {
  const sorted = [...new Set(members)].sort();
  const index = sorted.indexOf(workerId);
  if (index < 0 || sorted.length === 0) return 0;
  const q = Math.floor(open / sorted.length);
  return q + (index < open % sorted.length ? 1 : 0);
};

/** A small stable hash, so that workers try free leases in different orders and rarely race for one. */
const spread = (workerId: string, shardId: string): number => {
  let h = 2166136261;
  for (const s of [workerId, '|', shardId]) for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
};

/** What a worker should do this round. */
export interface Plan {
  /** Its fair share. */
  readonly target: number;
  /** Leases to take, in order, while it holds fewer than `target`. */
  readonly take: readonly Lease[];
  /** How many of its leases to hand back (above its share). */
  readonly handBack: number;
}

/** The inputs of {@link planRound}. */
export interface PlanInputs {
  readonly workerId: string;
  /** Leases that may be read now: not finished, parents done. */
  readonly open: readonly Lease[];
  /** Registered workers (this one included when registered), by a consistent read made after the listing. */
  readonly members: ReadonlySet<string>;
  /** Shards this worker reads now. */
  readonly held: ReadonlySet<string>;
}

/**
 * Balancing towards the fair share ({@link fairShare}) without taking a lease from a live peer:
 * a worker above its share hands leases back (drains, checkpoints and releases them), one below
 * takes free leases: never owned, released, or owned by a worker that is no longer registered
 * (it expired, so it stopped delivering a lease duration ago). The free ones are tried in an order
 * of this worker's own, so that peers seldom race for one lease.
 */
export const planRound = ({ workerId, open, members, held }: PlanInputs): Plan => {
  if (!members.has(workerId)) return { target: 0, take: [], handBack: 0 };
  const target = fairShare(workerId, [...members], open.length);
  const mine = held.size;
  if (mine > target) return { target, take: [], handBack: mine - target };
  const free = open.filter((l) => !held.has(l.shardId) && (l.owner === undefined || !members.has(l.owner)));
  free.sort((a, b) => spread(workerId, a.shardId) - spread(workerId, b.shardId));
  return { target, take: free, handBack: 0 };
};
