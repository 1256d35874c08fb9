import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** One line a worker process's file sink wrote, reduced to what the checks need. */
export interface Delivery {
  /** `PK|SK` of the item. */
  readonly key: string;
  /** `newImage.Version`, or undefined for an item without one (a remove). */
  readonly version: number | undefined;
  readonly eventID: string;
  readonly table: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
  /** The worker process that delivered it, its per-process counter and Date.now() at hand-off. */
  readonly worker: string;
  readonly n: number;
  readonly at: number;
}

interface Line {
  eventID?: unknown;
  key?: { PK?: unknown; SK?: unknown };
  newImage?: { Version?: unknown };
  meta?: { table?: unknown; shardId?: unknown; sequenceNumber?: unknown };
  delivery?: { worker?: unknown; n?: unknown; at?: unknown };
}

const toDelivery = (text: string): Delivery | undefined => {
  let line: Line;
  try {
    line = JSON.parse(text) as Line;
  } catch {
    return undefined;
  }
  const version = line.newImage?.Version;
  return {
    key: `${String(line.key?.PK)}|${String(line.key?.SK)}`,
    version: typeof version === 'number' ? version : undefined,
    eventID: String(line.eventID),
    table: String(line.meta?.table),
    shardId: String(line.meta?.shardId),
    sequenceNumber: String(line.meta?.sequenceNumber),
    worker: String(line.delivery?.worker),
    n: Number(line.delivery?.n),
    at: Number(line.delivery?.at),
  };
};

/**
 * Reads an NDJSON file as it grows: each `poll()` returns what `parse` makes of the complete lines
 * written since the last one, in file order. A line `parse` rejects (undefined) is counted in
 * `badLines`, never dropped silently.
 */
export class NdjsonTail<T> {
  readonly path: string;
  badLines = 0;
  readonly #parse: (text: string) => T | undefined;
  #offset = 0;
  #rest = '';
  readonly #decoder = new StringDecoder('utf8');

  constructor(path: string, parse: (text: string) => T | undefined) {
    this.path = path;
    this.#parse = parse;
  }

  poll(): T[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size <= this.#offset) return [];
    const buffer = Buffer.alloc(size - this.#offset);
    const fd = openSync(this.path, 'r');
    try {
      let read = 0;
      while (read < buffer.length) {
        const n = readSync(fd, buffer, read, buffer.length - read, this.#offset + read);
        if (n === 0) break;
        read += n;
      }
      this.#offset += read;
      this.#rest += this.#decoder.write(buffer.subarray(0, read));
    } finally {
      closeSync(fd);
    }
    const lines = this.#rest.split('\n');
    this.#rest = lines.pop() ?? '';
    const out: T[] = [];
    for (const text of lines) {
      if (text === '') continue;
      const parsed = this.#parse(text);
      if (parsed !== undefined) out.push(parsed);
      else this.badLines++;
    }
    return out;
  }
}

/** The deliveries a worker process's file sink wrote, as the file grows (see {@link NdjsonTail}). */
export class DeliveryLog extends NdjsonTail<Delivery> {
  constructor(path: string) {
    super(path, toDelivery);
  }
}

/** Every delivery in a file, in file order. */
export const readDeliveries = (path: string): Delivery[] => new DeliveryLog(path).poll();
