import { NdjsonTail } from '../support/deliveries.js';

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
export class ChangeLog extends NdjsonTail<LoggedChange> {
  constructor(path: string) {
    super(path, toChange);
  }
}
