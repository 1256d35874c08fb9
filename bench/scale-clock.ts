import type { Clock } from '../src/ports.js';

interface Timer {
  readonly at: number;
  readonly seq: number;
  resolve: (() => void) | undefined;
}

/**
 * Virtual time for a fleet of thousands of timers: a binary heap instead of FakeClock's arrays,
 * and due times rounded up to `quantumMs`, so that timers a few milliseconds apart fire together
 * and an hour of fleet time takes a few hundred thousand jumps. Time jumps to the next timer once
 * the process has had `quietTurns` event-loop turns with no new timer.
 */
export class HeapClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #heap: Timer[] = [];
  readonly #quantumMs: number;
  readonly #quietTurns: number;
  #pending = false;
  #quiet = 0;
  /** Jumps made, for the report. */
  jumps = 0;

  constructor(options: { start?: number; quantumMs?: number; quietTurns?: number } = {}) {
    this.#now = options.start ?? Date.UTC(2026, 0, 1);
    this.#quantumMs = options.quantumMs ?? 10;
    this.#quietTurns = options.quietTurns ?? 3;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const q = this.#quantumMs;
      const at = Math.ceil((this.#now + Math.max(0, ms)) / q) * q;
      const onAbort = () => {
        timer.resolve = undefined;
        reject(signal?.reason);
      };
      const timer: Timer = {
        at,
        seq: this.#seq++,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#push(timer);
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
    if (this.#heap.length === 0) return;
    if (++this.#quiet < this.#quietTurns) {
      this.#schedule();
      return;
    }
    this.#quiet = 0;
    const next = this.#heap[0] as Timer;
    this.#now = Math.max(this.#now, next.at);
    this.jumps++;
    while (this.#heap.length > 0 && (this.#heap[0] as Timer).at <= this.#now) {
      const timer = this.#pop();
      timer.resolve?.();
    }
    if (this.#heap.length > 0) this.#schedule();
  };

  #less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(timer: Timer): void {
    const h = this.#heap;
    h.push(timer);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(h[i] as Timer, h[parent] as Timer)) break;
      [h[i], h[parent]] = [h[parent] as Timer, h[i] as Timer];
      i = parent;
    }
  }

  #pop(): Timer {
    const h = this.#heap;
    const top = h[0] as Timer;
    const last = h.pop() as Timer;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l] as Timer, h[m] as Timer)) m = l;
        if (r < h.length && this.#less(h[r] as Timer, h[m] as Timer)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Timer, h[i] as Timer];
        i = m;
      }
    }
    return top;
  }
}
