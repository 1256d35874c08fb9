/**
 * The lines the S3 export wrote (docs/s3-export.md), read back: parsed and checked, put in stream
 * order, and rebuilt as stream records the engine decodes like any other.
 */
import { compareSequenceNumbers } from '../events.js';
import type { AttributeValue, ChangeKind, RawStreamRecord } from '../events.js';

/** One exported line, checked. */
export interface ExportLine {
  readonly eventID: string;
  readonly kind: ChangeKind;
  readonly table: string;
  readonly key: Record<string, unknown>;
  readonly newImage: Record<string, unknown> | null;
  readonly oldImage: Record<string, unknown> | null;
  readonly changed: readonly string[] | undefined;
  readonly expired: boolean;
  /** The shard the worker read it from; `undefined` when the Lambda shape wrote it. */
  readonly shardId: string | undefined;
  readonly sequenceNumber: string;
  /** Epoch ms. */
  readonly time: number;
  readonly sizeBytes: number;
}

const KINDS: ReadonlySet<string> = new Set(['insert', 'modify', 'remove']);
const DECIMAL = /^[0-9]+$/;

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Checks one parsed line; the answer is why it is not a change event line (for the one line that
 * reports the object), or the line. A line a route's `transform` or the `line` option shaped
 * differently is not one: its object cannot be replayed.
 */
export const toExportLine = (value: unknown): ExportLine | string => {
  if (!isObject(value)) return 'not a JSON object';
  const { eventID, kind, key, newImage, oldImage, changed, sequenceNumber, approximateCreationTime } = value;
  if (typeof eventID !== 'string' || eventID === '') return 'no `eventID`';
  if (typeof kind !== 'string' || !KINDS.has(kind)) return `\`kind\` is not insert, modify or remove (written by a route transform or the \`line\` option?)`;
  if (!isObject(key) || Object.keys(key).length === 0) return 'no `key` object';
  if (typeof sequenceNumber !== 'string' || !DECIMAL.test(sequenceNumber)) return 'no decimal `sequenceNumber`';
  const time = typeof approximateCreationTime === 'string' ? Date.parse(approximateCreationTime) : Number.NaN;
  if (Number.isNaN(time)) return 'no ISO 8601 `approximateCreationTime`';
  if (kind !== 'remove' && !isObject(newImage)) return `a ${kind} without a \`newImage\` object`;
  if (oldImage !== null && oldImage !== undefined && !isObject(oldImage)) return '`oldImage` is neither an object nor null';
  return {
    eventID,
    kind: kind as ChangeKind,
    table: typeof value['table'] === 'string' ? value['table'] : '',
    key,
    newImage: isObject(newImage) ? newImage : null,
    oldImage: isObject(oldImage) ? oldImage : null,
    changed: Array.isArray(changed) && changed.every((c) => typeof c === 'string') ? (changed as string[]) : undefined,
    expired: value['expired'] === true,
    shardId: typeof value['shardId'] === 'string' && value['shardId'] !== '' ? value['shardId'] : undefined,
    sequenceNumber,
    time,
    sizeBytes: typeof value['sizeBytes'] === 'number' ? value['sizeBytes'] : 0,
  };
};

/** Parses an object's NDJSON text; a line that is not JSON or not a change event makes the whole object unreadable. */
export const parseExportObject = (text: string): ExportLine[] | string => {
  const lines: ExportLine[] = [];
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as string;
    if (row.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(row);
    } catch (error) {
      return `line ${i + 1} is not JSON (${(error as Error).message})`;
    }
    const line = toExportLine(value);
    if (typeof line === 'string') return `line ${i + 1}: ${line}`;
    lines.push(line);
  }
  return lines;
};

const bySequence = (a: ExportLine, b: ExportLine): number => compareSequenceNumbers(a.sequenceNumber, b.sequenceNumber);

/**
 * The lines of a range in the order they are replayed, each record once (the first copy of an
 * eventID: a record can be in several objects, see docs/s3-export.md), with how many copies were
 * dropped.
 *
 * Within a shard the order is the stream's: by sequence number, exactly. Across shards it is by
 * approximate creation time (1 s resolution), ties by sequence number: a k-way merge of the
 * shards, so it never reorders a shard. An item's changes stay in order across a shard split too,
 * since a child shard's records are all newer than its parent's. Lines written by the Lambda shape
 * do not know their shard: they form one group ordered by sequence number.
 */
export const orderLines = (lines: readonly ExportLine[]): { ordered: ExportLine[]; duplicates: number } => {
  const seen = new Set<string>();
  const shards = new Map<string, ExportLine[]>();
  let duplicates = 0;
  for (const line of lines) {
    if (seen.has(line.eventID)) {
      duplicates++;
      continue;
    }
    seen.add(line.eventID);
    const shard = line.shardId ?? '';
    const group = shards.get(shard);
    if (group) group.push(line);
    else shards.set(shard, [line]);
  }
  const groups = [...shards.values()].map((g) => g.sort(bySequence));
  const heads = groups.map(() => 0);
  const ordered: ExportLine[] = [];
  for (;;) {
    let best = -1;
    for (let g = 0; g < groups.length; g++) {
      const line = groups[g]?.[heads[g] as number];
      if (line === undefined) continue;
      const current = best < 0 ? undefined : groups[best]?.[heads[best] as number];
      if (current === undefined || line.time < current.time || (line.time === current.time && bySequence(line, current) < 0)) best = g;
    }
    if (best < 0) break;
    ordered.push(groups[best]?.[heads[best] as number] as ExportLine);
    heads[best] = (heads[best] as number) + 1;
  }
  return { ordered, duplicates };
};

/**
 * A JSON value back to a DynamoDB attribute value. JSON lost some types on the way out: sets come
 * back as lists, binaries and exact numbers (`numbers: 'auto'`/`'exact'`) as strings. The JSON a
 * sink writes of the replayed event is the same as of the original.
 */
export const toAttributeValue = (value: unknown): AttributeValue => {
  if (value === null || value === undefined) return { NULL: true };
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(toAttributeValue) };
  const map: Record<string, AttributeValue> = {};
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) map[name] = toAttributeValue(v);
  return { M: map };
};

const toImage = (item: Record<string, unknown>): Record<string, AttributeValue> => (toAttributeValue(item).M ?? {});

const EVENT_NAMES: Readonly<Record<ChangeKind, string>> = { insert: 'INSERT', modify: 'MODIFY', remove: 'REMOVE', backfill: 'BACKFILL' };

/** The stream record (GetRecords shape) a line was made from, as near as JSON allows. */
export const toStreamRecord = (line: ExportLine, streamArn: string): RawStreamRecord => ({
  eventID: line.eventID,
  eventName: EVENT_NAMES[line.kind],
  eventSource: 'aws:dynamodb',
  eventSourceARN: streamArn,
  dynamodb: {
    ApproximateCreationDateTime: new Date(line.time),
    Keys: toImage(line.key),
    ...(line.newImage ? { NewImage: toImage(line.newImage) } : {}),
    ...(line.oldImage ? { OldImage: toImage(line.oldImage) } : {}),
    SequenceNumber: line.sequenceNumber,
    SizeBytes: line.sizeBytes,
  },
  ...(line.expired ? { userIdentity: { Type: 'Service', PrincipalId: 'dynamodb.amazonaws.com' } } : {}),
});
