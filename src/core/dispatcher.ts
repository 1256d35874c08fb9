import { OversizedEventError } from '../errors.js';

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
}

/** Called once per entry: with `undefined` when it was acknowledged, or with the error that failed it. */
export type Settle = (error: unknown) => void;

interface Pending<P> {
  readonly entry: P;
  readonly size: number;
  readonly settle: Settle;
}

/**
 * Micro-batcher for one destination. Lanes submit one entry each; entries submitted in the same
 * turn of the event loop go out together in as few requests as the limits allow. A full request
 * leaves at once; a partial one when the turn ends (setImmediate), so every lane that became ready
 * in that turn rides along.
 */
export class Dispatcher<P> {
  readonly #o: DispatcherOptions<P>;
  readonly #sized: boolean;
  #pending: Pending<P>[] = [];
  #bytes = 0;
  #scheduled = false;
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
        size = this.#o.sizeOf(entry);
      } catch (error) {
        queueMicrotask(() => settle(error));
        return;
      }
      if (size > this.#o.maxBytes) {
        const error = new OversizedEventError(this.#o.name, size, this.#o.maxBytes);
        queueMicrotask(() => settle(error));
        return;
      }
      if (this.#bytes + size > this.#o.maxBytes) this.#flush();
    }
    this.#pending.push({ entry, size, settle });
    this.#bytes += size;
    if (this.#pending.length >= this.#o.maxRecords) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#onTurnEnd);
    }
  }

  readonly #onTurnEnd = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  #flush(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    this.#bytes = 0;
    this.requests++;
    let sent: Promise<readonly { readonly index: number; readonly error: unknown }[]>;
    try {
      sent = this.#o.send(
        batch.map((p) => p.entry),
        this.#o.signal,
      );
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (failed) => {
        // A failure that names no entry of this request could be any of them: acknowledging the
        // others could drop the one that failed, so the whole request fails and is retried.
        if (!Array.isArray(failed) || failed.some((f) => !Number.isInteger(f?.index) || f.index < 0 || f.index >= batch.length)) {
          const e = new Error(`${this.#o.name} answered a request of ${batch.length} entries with failures that name no entry of it`);
          for (const p of batch) p.settle(e);
          return;
        }
        if (failed.length === 0) {
          for (const p of batch) p.settle(undefined);
          return;
        }
        const errors = new Map<number, unknown>();
        for (const f of failed) errors.set(f.index, f.error ?? new Error(`${this.#o.name} reported entry ${f.index} as failed without an error`));
        for (let i = 0; i < batch.length; i++) (batch[i] as Pending<P>).settle(errors.get(i));
      },
      (error: unknown) => {
        const e = error ?? new Error(`${this.#o.name} rejected a request without an error`);
        for (const p of batch) p.settle(e);
      },
    );
  }
}
