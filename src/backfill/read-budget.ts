import type { Clock } from '../ports.js';

/**
 * A token bucket of read capacity units shared by every Scan segment. A page's cost is known only
 * after it was read (`ReturnConsumedCapacity`), so a segment reserves what its last page cost
 * before it reads and settles the difference after: the bucket may go below zero by a page, and
 * the next readers wait until it refilled. Over any stretch longer than a few pages the rate read
 * stays at `unitsPerSecond`; the burst is one second's worth.
 */
export class ReadBudget {
  readonly unitsPerSecond: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(unitsPerSecond: number, clock: Clock) {
    this.unitsPerSecond = unitsPerSecond;
    this.#clock = clock;
    this.#tokens = unitsPerSecond;
    this.#at = clock.now();
  }

  #refill(): void {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.unitsPerSecond, this.#tokens + ((now - this.#at) / 1000) * this.unitsPerSecond);
    this.#at = now;
  }

  /** Waits until `units` can be taken, then takes them. */
  async reserve(units: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      this.#refill();
      // Never wait for more than the bucket holds: a page dearer than a second's budget goes when the bucket is full.
      const need = Math.min(units, this.unitsPerSecond);
      if (this.#tokens >= need) {
        this.#tokens -= units;
        return;
      }
      await this.#clock.sleep(Math.ceil(((need - this.#tokens) / this.unitsPerSecond) * 1000), signal);
    }
  }

  /** Settles a reservation with what the read really cost. */
  settle(reserved: number, consumed: number): void {
    this.#tokens -= consumed - reserved;
  }
}
