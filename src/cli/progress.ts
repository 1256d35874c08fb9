import type { Writable } from 'node:stream';
import { isTty } from './io.js';

const WIDTH = 30;

/**
 * A progress line on stderr: `label [#########.........] 12/40`, redrawn in place with `\r` on a
 * terminal; on anything else (a pipe, a CI log) plain lines, at most one a second and the last.
 */
export class ProgressBar {
  readonly #stream: Writable;
  readonly #label: string;
  readonly #tty: boolean;
  #total: number | undefined;
  #done = 0;
  #detail = '';
  #lastPlainAt = -Infinity;
  #drawn = false;

  constructor(stream: Writable, label: string, total: number | undefined, tty = isTty(stream)) {
    this.#stream = stream;
    this.#label = label;
    this.#total = total;
    this.#tty = tty;
  }

  /**
   * Sets how many are done (and the total, when it grew: SQS counts are approximate), and an
   * optional detail shown after the count (a rate, an ETA).
   */
  update(done: number, total?: number, detail?: string): void {
    this.#done = done;
    if (detail !== undefined) this.#detail = detail;
    if (total !== undefined) this.#total = total;
    if (this.#total !== undefined && this.#done > this.#total) this.#total = this.#done;
    if (this.#tty) {
      this.#stream.write(`\r${this.#line()}\u001b[K`);
      this.#drawn = true;
    } else if (Date.now() - this.#lastPlainAt >= 1000) {
      this.#lastPlainAt = Date.now();
      this.#stream.write(`${this.#line()}\n`);
    }
  }

  /** Draws the final state and ends the line. */
  finish(): void {
    if (this.#tty) {
      this.#stream.write(`\r${this.#line()}\u001b[K\n`);
    } else {
      this.#stream.write(`${this.#line()}\n`);
    }
    this.#drawn = false;
  }

  /** Clears the drawn line (a terminal) so another message can be written. */
  clear(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\u001b[K');
    this.#drawn = false;
  }

  #line(): string {
    const total = this.#total;
    const detail = this.#detail ? ` (${this.#detail})` : '';
    if (total === undefined || total === 0) return `${this.#label} ${this.#done}${detail}`;
    const filled = Math.round((Math.min(this.#done, total) / total) * WIDTH);
    return `${this.#label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${this.#done}/${total}${detail}`;
  }
}
