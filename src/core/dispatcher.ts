import { OversizedEventError } from '../errors.js';
import type { Clock } from '../ports.js';

/** What one request reports: the indexes (into the request's entries) that failed, and why. */
export type SendBatch<P> = (entries: readonly P[], signal: AbortSignal) => Promise<readonly { readonly index: number; readonly error: unknown }[]>;

export interface DispatcherOptions<P> {
  readonly name: string;
  readonly maxRecords: number;
  readonly maxBytes: number;
  /** Size of one entry towards `maxBytes`; only called when `maxBytes` is finite. */
  readonly sizeOf: (entry: P) => number;
  readonly send: SendBatch<P>;
  readonly signal: AbortSignal;
  /** How long a request that is not full may wait for more entries. @default 0 */
  readonly maxWaitMs?: number;
  /** Measures `maxWaitMs`; required when it is above 0. */
  readonly clock?: Clock;
  /** Epoch ms by which a waiting request must leave (the Lambda deadline). */
  readonly deadline?: number;
  /**
   * Told when a `settle` callback throws. The other entries are settled all the same, so one broken
   * callback cannot leave the lanes of the others waiting for ever.
   * @default report it with `process.emitWarning`
   */
  readonly onCallbackError?: (error: unknown) => void;
}

/** Called once per entry: with `undefined` when it was acknowledged, or with the error that failed it. */
export type Settle = (error: unknown) => void;

/**
 * Micro-batcher for one destination. Lanes submit one entry (or one group) each; entries submitted
 * in the same turn of the event loop go out together in as few requests as the limits allow. A
 * full request leaves at once; a partial one when the turn ends (setImmediate), so every lane that
 * became ready in that turn rides along, or after `maxWaitMs` when the destination wants fewer,
 * larger requests.
 */
export class Dispatcher<P> {
  readonly #o: DispatcherOptions<P>;
  readonly #sized: boolean;
  /** The request being filled: its entries and, by position, their callbacks (two arrays: no object per entry). */
  #pending: P[] = [];
  #settles: Settle[] = [];
  #bytes = 0;
  #scheduled = false;
  #timer: AbortController | undefined;
  /** Requests sent; read by benchmarks and tests. */
  requests = 0;

  constructor(options: DispatcherOptions<P>) {
    this.#o = options;
    this.#sized = Number.isFinite(options.maxBytes);
  }

  /**
   * Queues one entry; `settle` is called once, never synchronously, with `undefined` when the entry
   * is acknowledged or with the error that failed it. A callback rather than a promise, because
   * this runs once per record.
   */
  submit(entry: P, settle: Settle): void {
    let size = 0;
    if (this.#sized) {
      try {
        size = this.sizeOf(entry);
      } catch (error) {
        queueMicrotask(() => this.#settle(settle, error));
        return;
      }
      if (size > this.#o.maxBytes) {
        const error = new OversizedEventError(this.#o.name, size, this.#o.maxBytes);
        queueMicrotask(() => this.#settle(settle, error));
        return;
      }
      if (this.#bytes + size > this.#o.maxBytes) this.#flush();
    }
    this.#pending.push(entry);
    this.#settles.push(settle);
    this.#bytes += size;
    this.#afterAdd();
  }

  /**
   * Queues entries that must travel in one request, in this order (a lane's run of records to a
   * destination that keeps the order of a request). The caller keeps the group within the limits
   * (see {@link fits}). `settle` gets one error (or `undefined`) per entry, by position.
   */
  submitGroup(entries: readonly P[], sizes: readonly number[], settle: (errors: unknown[]) => void): void {
    const total = sizes.reduce((a, b) => a + b, 0);
    if (this.#pending.length + entries.length > this.#o.maxRecords || (this.#sized && this.#bytes + total > this.#o.maxBytes)) this.#flush();
    const errors = new Array<unknown>(entries.length);
    let open = entries.length;
    entries.forEach((entry, i) => {
      this.#pending.push(entry);
      this.#settles.push((error) => {
        errors[i] = error;
        if (--open === 0) settle(errors);
      });
    });
    this.#bytes += total;
    this.#afterAdd();
  }

  /**
   * Sends the request that waits for the turn to end (or out `maxWaitMs`) now: the caller knows
   * nothing more can join it.
   */
  flushWaiting(): void {
    if (this.#pending.length > 0) this.#flush();
  }

  /** Size of an entry towards `maxBytes`; 0 when the destination sets no byte limit. */
  sizeOf(entry: P): number {
    return this.#sized ? this.#o.sizeOf(entry) : 0;
  }

  /** True when a group of `count` entries and `bytes` bytes fits one request. */
  fits(count: number, bytes: number): boolean {
    return count <= this.#o.maxRecords && (!this.#sized || bytes <= this.#o.maxBytes);
  }

  #afterAdd(): void {
    if (this.#pending.length >= this.#o.maxRecords) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      const wait = this.#waitMs();
      if (wait > 0) {
        const timer = new AbortController();
        this.#timer = timer;
        let slept: Promise<void>;
        try {
          slept = (this.#o.clock as Clock).sleep(wait, AbortSignal.any([timer.signal, this.#o.signal]));
        } catch (error) {
          // A clock that cannot sleep: the request leaves without waiting, as rejected sleeps do.
          slept = Promise.reject(error);
        }
        slept.then(this.#onTurnEnd, () => {
          // Cancelled because the request filled up (nothing to do), or the run was aborted or the
          // clock failed (send what waits; an aborted signal fails it at once, its lanes end unfinished).
          if (!timer.signal.aborted) this.#onTurnEnd();
        });
      } else setImmediate(this.#onTurnEnd);
    }
  }

  #waitMs(): number {
    const wait = this.#o.maxWaitMs ?? 0;
    if (wait <= 0 || !this.#o.clock) return 0;
    if (this.#o.deadline === undefined) return wait;
    return Math.max(0, Math.min(wait, this.#o.deadline - this.#o.clock.now()));
  }

  readonly #onTurnEnd = (): void => {
    this.#scheduled = false;
    this.#timer = undefined;
    this.#flush();
  };

  #flush(): void {
    const batch = this.#pending;
    const settles = this.#settles;
    if (batch.length === 0) return;
    if (this.#timer) {
      // The waiting request leaves now; the next entry starts a new wait.
      this.#timer.abort();
      this.#timer = undefined;
      this.#scheduled = false;
    }
    this.#pending = [];
    this.#settles = [];
    this.#bytes = 0;
    this.requests++;
    let sent: Promise<readonly { readonly index: number; readonly error: unknown }[]>;
    try {
      // A native promise comes back as it is; anything else a sink returns cannot break the chain.
      sent = Promise.resolve(
        // The sink gets the array itself (what it does to it cannot reach the callbacks).
        this.#o.send(batch, this.#o.signal),
      );
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (failed) => {
        // A failure that names no entry of this request could be any of them: acknowledging the
        // others could drop the one that failed, so the whole request fails and is retried.
        if (!Array.isArray(failed) || failed.some((f) => !Number.isInteger(f?.index) || f.index < 0 || f.index >= settles.length)) {
          const e = new Error(`${this.#o.name} answered a request of ${settles.length} entries with failures that name no entry of it`);
          for (const settle of settles) this.#settle(settle, e);
          return;
        }
        if (failed.length === 0) {
          for (const settle of settles) this.#settle(settle, undefined);
          return;
        }
        const errors = new Map<number, unknown>();
        for (const f of failed) errors.set(f.index, f.error ?? new Error(`${this.#o.name} reported entry ${f.index} as failed without an error`));
        for (let i = 0; i < settles.length; i++) this.#settle(settles[i] as Settle, errors.get(i));
      },
      (error: unknown) => {
        const e = error ?? new Error(`${this.#o.name} rejected a request without an error`);
        for (const settle of settles) this.#settle(settle, e);
      },
    );
  }

  /** Calls one entry's callback; a callback that throws is reported and never stops the others. */
  #settle(settle: Settle, error: unknown): void {
    try {
      settle(error);
    } catch (thrown) {
      const report = this.#o.onCallbackError ?? ((e: unknown) => process.emitWarning(`dynamo-cdc: a ${this.#o.name} settle callback threw: ${String(e)}`));
      try {
        report(thrown);
      } catch {
        // Reporting is best effort; the entries are settled all the same.
      }
    }
  }
}
