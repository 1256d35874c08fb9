import type { Clock } from '../ports.js';

interface Timer {
  readonly at: number;
  readonly resolve: () => void;
}

/**
 * Virtual time. `sleep` resolves when virtual time reaches its end; time jumps to the next timer
 * once the process has nothing else to do (a few event-loop turns with no new timer), so a test
 * with minutes of backoff runs in milliseconds and stays deterministic.
 */
export class FakeClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #pending = false;
  #quiet = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by hand, waking the sleepers that are due. */
  advance(ms: number): void {
    this.#now += ms;
    this.#wake();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const timer: Timer = {
        at: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#timers.push(timer);
      this.#quiet = 0;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#pending) return;
    this.#pending = true;
    setImmediate(this.#tick);
  }

  readonly #tick = (): void => {
    this.#pending = false;
    if (this.#timers.length === 0) return;
    // Let in-flight work (microtasks, immediates) settle before time jumps.
    if (++this.#quiet < 4) {
      this.#schedule();
      return;
    }
    this.#quiet = 0;
    this.#now = Math.max(this.#now, Math.min(...this.#timers.map((t) => t.at)));
    this.#wake();
    if (this.#timers.length > 0) this.#schedule();
  };

  #wake(): void {
    const due = this.#timers.filter((t) => t.at <= this.#now);
    if (due.length === 0) return;
    this.#timers = this.#timers.filter((t) => t.at > this.#now);
    for (const t of due.sort((a, b) => a.at - b.at)) t.resolve();
  }
}
