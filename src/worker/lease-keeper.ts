import { describeError } from '../errors.js';
import type { Clock, Logger } from '../ports.js';
import type { Lease, LeaseStore } from './ports.js';

/** A held lease is renewed once this fraction of the lease duration has passed since its last renewal. */
export const RENEW_FRACTION = 1 / 6;
/**
 * A held lease is fresh (deliveries may start) for this fraction of the lease duration after the
 * renewal that last moved its counter was sent; then the keeper drops it. See docs/lease-table.md.
 */
export const FENCE_FRACTION = 1 / 2;

/** Options of {@link LeaseKeeper}. */
export interface LeaseKeeperOptions {
  readonly store: LeaseStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Peers take a lease whose counter has not moved for this long on their clock. */
  readonly leaseDurationMs: number;
  /** Called once for a lease that is lost: a write was refused, or it went unrenewed past the fence. */
  readonly onLost: (shardId: string, why: string) => void;
  /**
   * Resolves once nothing of this worker delivers the shard any more (its reader, aborted when the
   * lease was lost, has finished). A lease that is held again by a late write is released only then.
   * @default resolves at once
   */
  readonly quiet?: (shardId: string) => Promise<void>;
  /** Called when a lease that a late take or renewal left to this worker was released. @default none */
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
  /** This worker's clock when the write that set `lease.counter` (take or renewal) was sent. */
  renewedAt: number;
  /** When the last renewal attempt was sent, successful or not. */
  attemptedAt: number;
  renewing: boolean;
  releasing: boolean;
  /** A write of this lease is in flight (or abandoned and maybe still in flight, see `abandoned`). */
  busy: boolean;
  /** Writers waiting for the lease's one write at a time; renewals go first. */
  readonly queue: (() => void)[];
  /**
   * A checkpoint write was given up on while still unanswered: it may yet land at this counter, so
   * no other checkpoint is written before a renewal moves the counter (else the late one could
   * overwrite a newer checkpoint).
   */
  abandoned: boolean;
}

/**
 * Keeps this worker's leases: renews each on a timer of its own that nothing else awaits (not
 * discovery, listing, taking, nor another lease's writes), judges whether a lease is fresh enough
 * for a delivery to start, and drops one that went unrenewed past the fence. A lease that a late
 * take or renewal leaves to this worker although it keeps none is released (docs/lease-table.md). A lease's writes
 * (renewals, checkpoints, its release) are all conditional on its counter, so they go one at a
 * time; a renewal goes before waiting checkpoints, and a checkpoint that hangs is given up on once
 * the renewal is overdue, so a slow checkpoint cannot hold the renewal past the fence.
 */
export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions;
  readonly #kept = new Map<string, Kept>();
  readonly #renewMs: number;
  readonly #fenceMs: number;
  readonly #stop = new AbortController();
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  /** Renewals on their way, of kept leases and of leases dropped meanwhile. */
  readonly #renewals = new Set<Kept>();
  /** Releases of stray leases (held again by a late write after being dropped), by shard. */
  readonly #strays = new Map<string, Promise<void>>();
  /** Stray leases whose release failed or went unanswered: they expire instead. */
  readonly #expiring = new Set<string>();

  constructor(options: LeaseKeeperOptions) {
    this.#o = options;
    this.#renewMs = options.leaseDurationMs * RENEW_FRACTION;
    this.#fenceMs = options.leaseDurationMs * FENCE_FRACTION;
  }

  /** Starts the renewal timer. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Stops the timer and forgets every lease (release them first). Stray releases under way are sent
   * at once and waited for; a renewal still unanswered is not: if it lands, its lease is released then.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake.abort();
    this.#kept.clear();
    await this.#loop;
    await Promise.all(this.#strays.values());
  }

  /**
   * Shards whose lease this worker may still hold in the table although it keeps none: a renewal
   * of a dropped lease still unanswered (released if it lands), a stray release under way, or one
   * that failed (the lease expires instead).
   */
  unsettled(): string[] {
    const shards = new Set([...this.#strays.keys(), ...this.#expiring]);
    for (const kept of this.#renewals) if (this.#kept.get(kept.lease.shardId) !== kept) shards.add(kept.lease.shardId);
    return [...shards].sort();
  }

  /**
   * Keeps a lease this worker just took; `sentAt` is when the take request was sent. False when the
   * take came back too late to be fresh (past the fence): then the lease is not kept but released,
   * at `quietAt` at the earliest (when its previous holder surely stopped delivering; stop() cuts
   * that wait short), so that a peer or this worker takes it at once rather than a lease duration later.
   */
  add(lease: Lease, sentAt: number, quietAt = sentAt): boolean {
    if (this.#o.clock.now() - sentAt >= this.#fenceMs) {
      this.#releaseStray(lease, quietAt, 'lease take answered past the fence; released rather than read');
      return false;
    }
    this.#kept.set(lease.shardId, { lease, renewedAt: sentAt, attemptedAt: sentAt, renewing: false, releasing: false, busy: false, queue: [], abandoned: false });
    this.#wake.abort();
    return true;
  }

  /** The lease as this worker holds it, or `undefined` when it holds none for the shard. */
  lease(shardId: string): Lease | undefined {
    return this.#kept.get(shardId)?.lease;
  }

  /** True while a delivery may start: the lease's last renewal was sent less than the fence ago. */
  fresh(shardId: string): boolean {
    const kept = this.#kept.get(shardId);
    return kept !== undefined && !kept.releasing && this.#o.clock.now() - kept.renewedAt < this.#fenceMs;
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
    if (!(await this.#acquire(kept, false))) return false;
    if (kept.abandoned) {
      this.#next(kept);
      throw new LeaseWriteSkipped('an earlier checkpoint write of this lease is still unanswered; the checkpoint is written after the next renewal');
    }
    try {
      // A due renewal waits for a checkpoint half a renewal period at most: then the checkpoint is
      // given up on and the lane handed to the renewal, which still has a renewal period and a half
      // before the fence.
      const outcome = await within(this.#o.clock, this.#o.store.checkpoint(kept.lease, checkpoint, doneAbove), this.#budget(kept.renewedAt + 1.5 * this.#renewMs));
      if (outcome.late) {
        kept.abandoned = true;
        throw new LeaseWriteSkipped('checkpoint write unanswered while the lease renewal was due; it is written again later');
      }
      if (!outcome.value) this.#lose(kept, 'checkpoint refused: lease taken by another worker');
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
    if (!(await this.#acquire(kept, false))) return false;
    try {
      // A release still unanswered when the lease would no longer be fresh is not waited for: a
      // peer takes the lease after its duration anyway, and a late release only frees it sooner.
      const outcome = await within(this.#o.clock, this.#o.store.release(kept.lease), this.#budget(kept.renewedAt + this.#fenceMs));
      if (outcome.late) this.#o.logger.warn({ shardId }, 'lease release unanswered; it expires instead');
      return !outcome.late && outcome.value;
    } catch (error) {
      this.#o.logger.warn({ err: describeError(error), shardId }, 'lease release failed; it expires instead');
      return false;
    } finally {
      this.#next(kept);
      this.#remove(kept);
    }
  }

  /** Time left until `deadline`, but never less than a quarter renewal period, so a write always gets a chance. */
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

  /** Drops leases past the fence and starts the renewals that are due, without waiting for any. */
  #tick(): void {
    const now = this.#o.clock.now();
    for (const kept of [...this.#kept.values()]) {
      if (now - kept.renewedAt >= this.#fenceMs) {
        this.#lose(kept, `lease not renewed for ${Math.round(now - kept.renewedAt)} ms (fence: ${this.#fenceMs} ms)`);
        continue;
      }
      if (!kept.renewing && !kept.releasing && now >= this.#renewDueAt(kept)) void this.#renew(kept);
    }
  }

  /** Due a renewal period after the last one that moved the counter; a failed attempt is retried half a period later. */
  #renewDueAt(kept: Kept): number {
    return Math.max(kept.renewedAt + this.#renewMs, kept.attemptedAt + this.#renewMs / 2);
  }

  #nextWakeInMs(): number {
    const now = this.#o.clock.now();
    let next = now + this.#renewMs;
    for (const kept of this.#kept.values()) {
      next = Math.min(next, kept.renewedAt + this.#fenceMs);
      if (!kept.renewing) next = Math.min(next, this.#renewDueAt(kept));
    }
    return Math.max(1, next - now);
  }

  async #renew(kept: Kept): Promise<void> {
    kept.renewing = true;
    try {
      if (!(await this.#acquire(kept, true))) return;
      const sentAt = this.#o.clock.now();
      kept.attemptedAt = sentAt;
      this.#renewals.add(kept);
      try {
        const renewed = await this.#o.store.renew(kept.lease).finally(() => this.#renewals.delete(kept));
        if (this.#kept.get(kept.lease.shardId) !== kept) {
          // Dropped (at the fence, or by stop()) while the renewal was on its way, and it landed:
          // the lease is this worker's again in the table. Release it rather than leave it to
          // expire a lease duration after peers see it; not before a peer could have taken the
          // dropped lease anyway (a lease duration after the last renewal before), so an aborted
          // delivery's request still on the wire gets the margin of docs/lease-table.md.
          if (renewed) this.#releaseStray(renewed, kept.renewedAt + this.#o.leaseDurationMs, 'lease renewal landed after the lease was dropped; released');
          return;
        }
        if (!renewed) return this.#lose(kept, 'lease taken by another worker');
        // Fresh from when the request was sent: the write landed after that, so peers saw the new
        // counter no earlier. A renewal that lands late only moves the counter; see docs/lease-table.md.
        kept.lease = renewed;
        kept.renewedAt = sentAt;
        kept.abandoned = false;
      } catch (error) {
        this.#o.logger.warn({ err: describeError(error), shardId: kept.lease.shardId }, 'lease renewal failed; trying again');
      } finally {
        this.#next(kept);
      }
    } finally {
      kept.renewing = false;
      this.#wake.abort();
    }
  }

  /**
   * Releases a lease this worker holds in the table but keeps no more (a late take or renewal
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
  async #acquire(kept: Kept, first: boolean): Promise<boolean> {
    if (kept.busy) {
      await new Promise<void>((go) => (first ? kept.queue.unshift(go) : kept.queue.push(go)));
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

  #lose(kept: Kept, why: string): void {
    if (this.#kept.get(kept.lease.shardId) !== kept) return;
    this.#remove(kept);
    this.#o.onLost(kept.lease.shardId, why);
  }

  #remove(kept: Kept): void {
    if (this.#kept.get(kept.lease.shardId) === kept) this.#kept.delete(kept.lease.shardId);
    // Writers still waiting wake up and find the lease gone.
    if (!kept.busy) return;
    for (const go of kept.queue.splice(0)) go();
  }
}
