import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/**
 * One line of the chaos run's delivered file, with what the checker and the projection need.
 * test/support/deliveries.ts reads the same files for other tests; this reader also keeps the
 * kind, the images and a version for removes.
 */
export interface LoggedChange {
  /** `PK|SK` of the item. */
  readonly key: string;
  /** The item's key attributes. */
  readonly keys: Readonly<Record<string, unknown>>;
  readonly kind: 'insert' | 'modify' | 'remove';
  /**
   * The change's number in its item's history: `newImage.Version`, and for a remove
   * `oldImage.Version + 1` (the chaos writers number a remove like any other change).
   */
  readonly version: number | undefined;
  readonly newImage: Readonly<Record<string, unknown>> | undefined;
  readonly sequenceNumber: string;
}

interface Line {
  kind?: unknown;
  key?: Record<string, unknown>;
  newImage?: Record<string, unknown>;
  oldImage?: { Version?: unknown };
  meta?: { sequenceNumber?: unknown };
}

const toChange = (text: string): LoggedChange | undefined => {
  let line: Line;
  try {
    line = JSON.parse(text) as Line;
  } catch {
    return undefined;
  }
  const kind = line.kind;
  if (kind !== 'insert' && kind !== 'modify' && kind !== 'remove') return undefined;
  const keys = line.key ?? {};
  const version = kind === 'remove' ? line.oldImage?.Version : line.newImage?.Version;
  return {
    key: `${String(keys['PK'])}|${String(keys['SK'])}`,
    keys,
    kind,
    version: typeof version !== 'number' ? undefined : kind === 'remove' ? version + 1 : version,
    newImage: line.newImage,
    sequenceNumber: String(line.meta?.sequenceNumber),
  };
};

/**
 * Reads the delivered NDJSON file as it grows: each `poll()` returns the changes of the complete
 * lines written since the last one, in file order. A line that is not a change event is counted
 * in `badLines`, never dropped silently.
 */
export class ChangeLog {
  readonly path: string;
  badLines = 0;
  #offset = 0;
  #rest = '';
  readonly #decoder = new StringDecoder('utf8');

  constructor(path: string) {
    this.path = path;
  }

  poll(): LoggedChange[] {
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
    const out: LoggedChange[] = [];
    for (const text of lines) {
      if (text === '') continue;
      const change = toChange(text);
      if (change) out.push(change);
      else this.badLines++;
    }
    return out;
  }
}
