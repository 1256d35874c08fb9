import { randomUUID } from 'node:crypto';
import { describeError } from '../errors.js';
import type { Clock, Logger } from '../ports.js';
import type { Lease, LeaseStore } from './ports.js';

/** The worker's heartbeat is sent once this fraction of the lease duration has passed since the last one. */
export const RENEW_FRACTION = 1 / 6;
/**
 * The worker's leases are fresh (deliveries may start) for this fraction of the lease duration
 * after the heartbeat that last succeeded was sent; then the keeper drops them. See docs/lease-table.md.
 */
export const FENCE_FRACTION = 1 / 2;

/** Options of {@link LeaseKeeper}. */
export interface LeaseKeeperOptions {
  readonly store: LeaseStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly streamArn: string;
  readonly workerId: string;
  /** Peers expire a worker whose heartbeat has not moved for this long on their clock. */
  readonly leaseDurationMs: number;
  /** Called once for a lease that is lost: a write was refused, the heartbeat was refused, or it went unrenewed past the fence. */
  readonly onLost: (shardId: string, why: string) => void;
  /**
   * Resolves once nothing of this worker delivers the shard any more (its reader, aborted when the
   * lease was lost, has finished). A lease that is held again by a late write is released only then.
   * @default resolves at once
   */
  readonly quiet?: (shardId: string) => Promise<void>;
  /** Called when a lease that a late take, or a heartbeat that came back, left to this worker was released. @default none */
  readonly onStrayReleased?: (shardId: string) => void;
}

/** Thrown to a checkpoint writer when the write did not happen and may be tried again. */
export class LeaseWriteSkipped extends Error {
  override readonly name = 'LeaseWriteSkipped';
}

/**
 * The promise's value, or `late` when `ms` pass first on the clock; a late promise is left to
 * settle unobserved (its request may still land: every lease write is conditional, see the callers).
 */
const within = async <T>(clock: Clock, promise: Promise<T>, ms: number): Promise<{ late: true } | { late: false; value: T }> => {
  promise.catch(() => {});
  const timer = new AbortController();
  const late = clock.sleep(Math.max(0, ms), timer.signal).then(
    () => ({ late: true }) as const,
    () => new Promise<never>(() => {}),
  );
  try {
    return await Promise.race([promise.then((value) => ({ late: false, value }) as const), late]);
  } finally {
    timer.abort();
  }
};

interface Kept {
  lease: Lease;
  releasing: boolean;
  /** A write of this lease is in flight (or abandoned and maybe still in flight, see `abandoned`). */
  busy: boolean;
  /** Writers waiting for the lease's one write at a time. */
  readonly queue: (() => void)[];
  /**
   * A checkpoint write was given up on while still unanswered: it may yet land at this counter, so
   * no other checkpoint is written before it settles (else the late one could overwrite a newer checkpoint).
   */
  abandoned: boolean;
}

/**
 * Keeps this worker's leases alive with **one heartbeat for the whole worker** (an item in the
 * lease table that its counter-like token moves every sixth of a lease duration), on a timer of its
 * own that nothing else awaits (not discovery, listing, taking, nor any lease's writes). Judges
 * whether a lease is fresh enough for a delivery to start, and drops every lease once the
 * heartbeat went unrenewed past the fence or was refused (a peer expired this worker). A lease's
 * own writes (checkpoints, its release) are conditional on its counter, so they go one at a time;
 * a lease that a late take, or a heartbeat that came back after a drop, leaves to this worker is
 * released (docs/lease-table.md).
 */
export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions;
  readonly #kept = new Map<string, Kept>();
  readonly #renewMs: number;
  readonly #fenceMs: number;
  readonly #stop = new AbortController();
  readonly #incarnation = randomUUID().slice(0, 8);
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  /** This worker's heartbeat token in the table, as far as it knows; `undefined` while it is not registered. */
  #token: string | undefined;
  #beats = 0;
  /** When the last heartbeat (or registration) that succeeded was sent. */
  #renewedAt = -Infinity;
  #attemptedAt = -Infinity;
  /** A heartbeat or a registration is on its way. */
  #beating: Promise<void> | undefined;
  /** While joining: the heartbeat another process left under this worker's id, and since when it has not moved. */
  #joinSeen: { token: string; since: number } | undefined;
  /** When this worker last registered. */
  #joinedAt = -Infinity;
  /** Leases dropped at the fence or at a refused heartbeat, and not before when they may be released. */
  readonly #dropped = new Map<string, { lease: Lease; notBefore: number }>();
  /** Releases of stray leases (held again by a late write after being dropped), by shard. */
  readonly #strays = new Map<string, Promise<void>>();
  /** Stray leases whose release failed or went unanswered: they expire instead. */
  readonly #expiring = new Set<string>();

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
    this.#renewMs = options.leaseDurationMs * RENEW_FRACTION;
    this.#fenceMs = options.leaseDurationMs * FENCE_FRACTION;
  }

  /** Starts registering and the heartbeat timer. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves when the heartbeat or registration on its way (the first one, right after start()) has settled. */
  settled(): Promise<void> {
    return this.#beating ?? Promise.resolve();
  }

  /** True while this worker is registered in the fleet (its heartbeat is in the table). */
  get registered(): boolean {
    return this.#token !== undefined;
  }

  /** When this worker last registered (leases a previous process left under its id are released from then on). */
  get joinedAt(): number {
    return this.#joinedAt;
  }

  /**
   * Stops the timer and forgets every lease (release them first). Dropped and stray leases are
   * released at once and waited for; a heartbeat still unanswered is not.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake.abort();
    this.#kept.clear();
    for (const { lease, notBefore } of this.#dropped.values()) this.#releaseStray(lease, notBefore, 'lease dropped earlier released at shutdown');
    this.#dropped.clear();
    await this.#loop;
    await Promise.all(this.#strays.values());
  }

  /**
   * Removes this worker's heartbeat so peers count it out at once: only when every lease it had
   * is released (else they expire a lease duration after the last heartbeat). True when removed.
   */
  async leave(): Promise<boolean> {
    // A heartbeat on its way would move the token under the removal: let it land first (stop()
    // sends no new one), within the fence.
    if (this.#beating) await within(this.#o.clock, this.#beating, this.#fenceMs);
    const token = this.#token;
    if (token === undefined || this.unsettled().length > 0 || this.#kept.size > 0) return false;
    try {
      const outcome = await within(this.#o.clock, this.#o.store.unregister(this.#o.streamArn, this.#o.workerId, token), this.#fenceMs);
      return !outcome.late && outcome.value;
    } catch (error) {
      this.#o.logger.warn({ err: describeError(error) }, 'removing the heartbeat failed; it expires instead');
      return false;
    }
  }

  /**
   * Shards whose lease this worker may still hold in the table although it keeps none: dropped
   * leases not released yet, a stray release under way, or one that failed (the lease expires instead).
   */
  unsettled(): string[] {
    return [...new Set([...this.#strays.keys(), ...this.#expiring, ...this.#dropped.keys()])].sort();
  }

  /**
   * Keeps a lease this worker just took; `sentAt` is when the take request was sent. False when the
   * take came back while the heartbeat was past the fence (or this worker was not registered): then
   * the lease is not kept but released, at `quietAt` at the earliest, so that a peer or this worker
   * takes it at once rather than a lease duration later.
   */
  add(lease: Lease, sentAt: number, quietAt = sentAt): boolean {
    if (!this.registered || this.#o.clock.now() - this.#renewedAt >= this.#fenceMs) {
      this.#releaseStray(lease, Math.max(quietAt, sentAt), 'lease take answered while the heartbeat was past the fence; released rather than read');
      return false;
    }
    this.#dropped.delete(lease.shardId);
    this.#kept.set(lease.shardId, { lease, releasing: false, busy: false, queue: [], abandoned: false });
    return true;
  }

  /**
   * Releases a lease a previous process left under this worker's id (it keeps none of it), once
   * `notBefore` has come; nothing when the keeper already deals with the shard.
   */
  releaseForeign(lease: Lease, notBefore: number): void {
    const { shardId } = lease;
    if (this.#kept.has(shardId) || this.#strays.has(shardId) || this.#dropped.has(shardId) || this.#expiring.has(shardId)) return;
    this.#releaseStray(lease, notBefore, 'lease left by an earlier process with this worker id released');
  }

  /** The lease as this worker holds it, or `undefined` when it holds none for the shard. */
  lease(shardId: string): Lease | undefined {
    return this.#kept.get(shardId)?.lease;
  }

  /** True while a delivery may start: the last heartbeat that succeeded was sent less than the fence ago. */
  fresh(shardId: string): boolean {
    const kept = this.#kept.get(shardId);
    return kept !== undefined && !kept.releasing && this.registered && this.#o.clock.now() - this.#renewedAt < this.#fenceMs;
  }

  /** Forgets a lease without writing (the worker lost it some other way). */
  forget(shardId: string): void {
    const kept = this.#kept.get(shardId);
    if (kept) this.#remove(kept);
  }

  /**
   * Writes a checkpoint under the lease. False when the lease is lost (refused, or not held);
   * throws {@link LeaseWriteSkipped} or the store's error when it was not written and may be tried again.
   */
  async checkpoint(shardId: string, checkpoint: string, doneAbove: readonly string[]): Promise<boolean> {
    const kept = this.#kept.get(shardId);
    if (!kept) return false;
    if (!(await this.#acquire(kept))) return false;
    if (kept.abandoned) {
      this.#next(kept);
      throw new LeaseWriteSkipped('an earlier checkpoint write of this lease is still unanswered; the checkpoint is written once it settled');
    }
    try {
      // A checkpoint unanswered for half a lease duration is given up on, so that a release (at
      // shutdown, or to balance) does not wait behind it; it may still land, so no other
      // checkpoint of the lease is written until it settled.
      const write = this.#o.store.checkpoint(kept.lease, checkpoint, doneAbove);
      const outcome = await within(this.#o.clock, write, this.#fenceMs);
      if (outcome.late) {
        kept.abandoned = true;
        void write.then(
          () => (kept.abandoned = false),
          () => (kept.abandoned = false),
        );
        throw new LeaseWriteSkipped('checkpoint write unanswered for half a lease duration; it is written again later');
      }
      if (!outcome.value) this.#lose(kept, 'checkpoint refused: lease taken by another worker', false);
      else if (this.#kept.get(shardId) === kept) kept.lease = { ...kept.lease, checkpoint, doneAbove };
      return outcome.value;
    } finally {
      this.#next(kept);
    }
  }

  /**
   * Frees the lease so a peer can take it at once, once its reader has finished; forgets it either
   * way. True when it was released; a lease that could not be released expires for peers instead.
   */
  async release(shardId: string): Promise<boolean> {
    const kept = this.#kept.get(shardId);
    if (!kept) return false;
    kept.releasing = true;
    if (!(await this.#acquire(kept))) return false;
    try {
      // A release still unanswered when the lease would no longer be fresh is not waited for: a
      // peer takes the lease after this worker expires anyway, and a late release only frees it sooner.
      const outcome = await within(this.#o.clock, this.#o.store.release(kept.lease), this.#budget(this.#renewedAt + this.#fenceMs));
      if (outcome.late) {
        this.#o.logger.warn({ shardId }, 'lease release unanswered; it expires instead');
        this.#expiring.add(shardId);
      }
      return !outcome.late && outcome.value;
    } catch (error) {
      this.#o.logger.warn({ err: describeError(error), shardId }, 'lease release failed; it expires instead');
      return false;
    } finally {
      this.#next(kept);
      this.#remove(kept);
    }
  }

  /** Time left until `deadline`, but never less than a quarter heartbeat period, so a write always gets a chance. */
  #budget(deadline: number): number {
    return Math.max(deadline - this.#o.clock.now(), this.#renewMs / 4);
  }

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      this.#tick();
      // One controller per sleep, aborted by stop() too (AbortSignal.any would pile listeners on a long-lived signal).
      this.#wake = new AbortController();
      await this.#o.clock.sleep(this.#nextWakeInMs(), this.#wake.signal).catch(() => {});
    }
  }

  /** Drops every lease past the fence and starts the heartbeat (or the registration) when due, without waiting for it. */
  #tick(): void {
    const now = this.#o.clock.now();
    if (now - this.#renewedAt >= this.#fenceMs && this.#kept.size > 0) {
      const why = this.registered ? `heartbeat not renewed for ${Math.round(now - this.#renewedAt)} ms (fence: ${this.#fenceMs} ms)` : 'not registered';
      for (const kept of [...this.#kept.values()]) this.#lose(kept, why);
    }
    if (this.#beating || now < this.#dueAt()) return;
    const beat = this.registered ? this.#beat() : this.#join();
    this.#beating = beat.finally(() => {
      this.#beating = undefined;
      this.#wake.abort();
    });
  }

  /** Due a heartbeat period after the last one that succeeded; a failed attempt is retried half a period later. */
  #dueAt(): number {
    return this.registered ? Math.max(this.#renewedAt + this.#renewMs, this.#attemptedAt + this.#renewMs / 2) : this.#attemptedAt + this.#renewMs / 2;
  }

  #nextWakeInMs(): number {
    const now = this.#o.clock.now();
    let next = now + this.#renewMs;
    if (this.#kept.size > 0) next = Math.min(next, this.#renewedAt + this.#fenceMs);
    if (!this.#beating) next = Math.min(next, this.#dueAt());
    return Math.max(1, next - now);
  }

  #nextToken(): string {
    return `${this.#incarnation}:${++this.#beats}`;
  }

  async #beat(): Promise<void> {
    const { store, clock, streamArn, workerId } = this.#o;
    const previous = this.#token;
    const next = this.#nextToken();
    const sentAt = clock.now();
    this.#attemptedAt = sentAt;
    let ok: boolean;
    try {
      ok = await store.beat(streamArn, workerId, previous, next);
    } catch (error) {
      this.#o.logger.warn({ err: describeError(error) }, 'heartbeat failed; trying again');
      return;
    }
    if (this.#token !== previous) return;
    if (ok) {
      // Fresh from when the request was sent: the write landed after that, so peers saw the new
      // token no earlier. A heartbeat that lands late only moves the token; see docs/lease-table.md.
      this.#token = next;
      this.#renewedAt = sentAt;
      this.#releaseDropped();
      return;
    }
    // A peer expired this worker (its heartbeat went quiet for a lease duration on the peer's
    // clock), or another process registered under its id: every lease is lost; register again.
    this.#token = undefined;
    this.#joinSeen = undefined;
    for (const kept of [...this.#kept.values()]) this.#lose(kept, 'heartbeat refused: a peer expired this worker');
    this.#o.logger.warn({}, 'heartbeat refused: this worker was expired by a peer; registering again');
  }

  /**
   * Registers this worker: at once when the fleet has no heartbeat under its id; when a previous
   * process left one, only after it has not moved for a lease duration (that process stopped
   * delivering by then), replacing it.
   */
  async #join(): Promise<void> {
    const { store, clock, streamArn, workerId, leaseDurationMs } = this.#o;
    this.#attemptedAt = clock.now();
    try {
      const fleet = await store.fleet(streamArn, true);
      const current = fleet.beats.get(workerId);
      const now = clock.now();
      if (current !== undefined) {
        if (this.#joinSeen?.token !== current) {
          this.#joinSeen = { token: current, since: now };
          this.#o.logger.info({}, 'a heartbeat under this worker id is in the lease table; registering once it has not moved for a lease duration');
        }
        if (now - this.#joinSeen.since < leaseDurationMs) return;
      }
      const next = this.#nextToken();
      const sentAt = clock.now();
      if (this.#stop.signal.aborted) return;
      if (!(await store.beat(streamArn, workerId, current, next, true))) return;
      this.#token = next;
      this.#renewedAt = sentAt;
      this.#joinedAt = sentAt;
      this.#joinSeen = undefined;
      this.#o.logger.info({}, 'worker registered in the lease table');
      this.#releaseDropped();
    } catch (error) {
      this.#o.logger.warn({ err: describeError(error) }, 'registering in the lease table failed; trying again');
    }
  }

  /**
   * The heartbeat is in the table again after leases were dropped: they are this worker's again
   * for peers, so release them (no earlier than a peer could have taken them by expiry).
   */
  #releaseDropped(): void {
    for (const { lease, notBefore } of this.#dropped.values()) this.#releaseStray(lease, notBefore, 'lease dropped at the fence released');
    this.#dropped.clear();
  }

  /**
   * Releases a lease this worker holds in the table but keeps no more (a late take, or a heartbeat
   * landed), conditional on the counter that write set: once its reader has finished and `notBefore`
   * has come (or the keeper stops). A refusal means someone moved it meanwhile: nothing to do.
   */
  #releaseStray(lease: Lease, notBefore: number, what: string): void {
    const { shardId } = lease;
    const { clock, logger, store } = this.#o;
    const previous = this.#strays.get(shardId) ?? Promise.resolve();
    const done = (async () => {
      await previous;
      await this.#o.quiet?.(shardId);
      const wait = notBefore - clock.now();
      if (wait > 0 && !this.#stop.signal.aborted) await clock.sleep(wait, this.#stop.signal).catch(() => {});
      let released = false;
      try {
        const outcome = await within(clock, store.release(lease), this.#fenceMs);
        released = !outcome.late && outcome.value;
        if (outcome.late) this.#expiring.add(shardId);
      } catch (error) {
        this.#expiring.add(shardId);
        logger.warn({ err: describeError(error), shardId }, `${what}, but the release failed; it expires instead`);
        return;
      }
      if (released) {
        this.#expiring.delete(shardId);
        logger.info({ shardId }, what);
        this.#o.onStrayReleased?.(shardId);
      } else if (this.#expiring.has(shardId)) {
        logger.warn({ shardId }, `${what}, but the release went unanswered; it expires instead`);
      }
    })();
    this.#strays.set(shardId, done);
    void done.finally(() => {
      if (this.#strays.get(shardId) === done) this.#strays.delete(shardId);
    });
  }

  /** Waits for the lease's turn to write; false when it was lost or forgotten meanwhile. */
  async #acquire(kept: Kept): Promise<boolean> {
    if (kept.busy) {
      await new Promise<void>((go) => kept.queue.push(go));
    }
    kept.busy = true;
    if (this.#kept.get(kept.lease.shardId) === kept) return true;
    this.#next(kept);
    return false;
  }

  #next(kept: Kept): void {
    const go = kept.queue.shift();
    if (go) go();
    else kept.busy = false;
  }

  /** Forgets a lost lease and tells the worker; `dropped`: it is still this worker's in the table (not refused). */
  #lose(kept: Kept, why: string, dropped = true): void {
    if (this.#kept.get(kept.lease.shardId) !== kept) return;
    this.#remove(kept);
    // Still this worker's in the table unless a peer took it: released once the heartbeat is back
    // (or at stop), no earlier than a peer could have taken it by expiry.
    if (dropped) this.#dropped.set(kept.lease.shardId, { lease: kept.lease, notBefore: this.#renewedAt + this.#o.leaseDurationMs });
    this.#o.onLost(kept.lease.shardId, why);
  }

  #remove(kept: Kept): void {
    if (this.#kept.get(kept.lease.shardId) === kept) this.#kept.delete(kept.lease.shardId);
    // Writers still waiting wake up and find the lease gone.
    if (!kept.busy) return;
    for (const go of kept.queue.splice(0)) go();
  }
}
