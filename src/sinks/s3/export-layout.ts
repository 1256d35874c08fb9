import { createHash } from 'node:crypto';
import { parseStreamArn } from '../../events.js';
import type { ChangeEvent } from '../../events.js';

/** Where an event sits in its stream, as far as object keys need it. */
export interface ExportPosition {
  /** Table name, for the `table=` partition. */
  readonly table: string;
  /** `<stream label>-<shard id or 'lambda'>`, safe in a key. */
  readonly stream: string;
  /** The sequence number, zero-padded to {@link SEQUENCE_WIDTH} digits so keys sort in stream order. */
  readonly sequence: string;
  /** When the item changed, epoch milliseconds: picks the `dt=`/`hr=` partition. */
  readonly time: number;
}

/** DynamoDB Streams sequence numbers have 21 to 40 digits. */
export const SEQUENCE_WIDTH = 40;

const KINDS: ReadonlySet<unknown> = new Set(['insert', 'modify', 'remove', 'backfill']);

const asRecord = (value: unknown): Record<string, unknown> | undefined => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined);

const nonEmpty = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** Keeps the characters that are safe in keys and in Hadoop paths alike; drops the rest (`:` of stream labels). */
const compact = (value: string): string => value.replace(/[^A-Za-z0-9._-]/g, '');

/** Hive's escaping of partition values: characters outside `[A-Za-z0-9._-]` become `%XX` (UTF-8, upper-case hex). */
export const escapePartitionValue = (value: string): string => {
  let out = '';
  for (const char of value) {
    if (/[A-Za-z0-9._-]/.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
};

const STREAM_LABEL = /\/stream\/(.+)$/;

const paddedSequence = (sequence: string): string => (/^\d+$/.test(sequence) && sequence.length <= SEQUENCE_WIDTH ? sequence.padStart(SEQUENCE_WIDTH, '0') : compact(sequence));

/**
 * The stream position an event carries in `meta` (a {@link ChangeEvent}, or a transform's output
 * that kept `meta`), or `undefined` when it carries none.
 */
export const exportPositionOf = (event: unknown): ExportPosition | undefined => {
  const meta = asRecord(asRecord(event)?.['meta']);
  if (!meta) return undefined;
  const backfill = asRecord(meta['backfill']);
  if (backfill) return backfillPositionOf(event, meta, backfill);
  const streamArn = nonEmpty(meta['streamArn']);
  const sequence = nonEmpty(meta['sequenceNumber']);
  const time = meta['approximateCreationTime'];
  if (streamArn === undefined || sequence === undefined || typeof time !== 'number' || !Number.isFinite(time)) return undefined;
  const label = compact(STREAM_LABEL.exec(streamArn)?.[1] ?? '') || 'stream';
  const shard = compact(nonEmpty(meta['shardId']) ?? '') || 'lambda';
  const table = nonEmpty(meta['table']) ?? nonEmpty(parseStreamArn(streamArn)?.table) ?? 'unknown';
  return { table, stream: `${label}-${shard}`, sequence: paddedSequence(sequence), time };
};

/**
 * A backfilled item has no stream position: its objects are named after the backfill and the Scan
 * segment (`backfill-<id>-s<segment>`) and, in place of sequence numbers, the items' event ids
 * (one per item and backfill, so a re-sent page writes the same key); partitioned by the Scan's start.
 */
const backfillPositionOf = (event: unknown, meta: Record<string, unknown>, backfill: Record<string, unknown>): ExportPosition | undefined => {
  const id = nonEmpty(backfill['id']);
  const eventID = nonEmpty(asRecord(event)?.['eventID']);
  const time = meta['approximateCreationTime'];
  if (id === undefined || eventID === undefined || typeof time !== 'number' || !Number.isFinite(time)) return undefined;
  const segment = typeof backfill['segment'] === 'number' ? backfill['segment'] : 0;
  return { table: nonEmpty(meta['table']) ?? 'unknown', stream: `backfill-${compact(id)}-s${segment}`, sequence: compact(eventID), time };
};

/** The table of an event without a stream position: its `meta.table` when it has one. */
export const tableOf = (event: unknown): string => nonEmpty(asRecord(asRecord(event)?.['meta'])?.['table']) ?? 'unknown';

/** True for a change event as `decodeRecord` makes it (rather than a transform's output). */
export const isChangeEvent = (event: unknown): event is ChangeEvent => {
  const e = asRecord(event);
  return e !== undefined && KINDS.has(e['kind']) && typeof e['eventID'] === 'string' && Array.isArray(e['changed']) && exportPositionOf(e) !== undefined;
};

/** The documented default line of a change event; every field is present, absent values as `null`. */
export const defaultLine = (e: ChangeEvent): Record<string, unknown> => ({
  eventID: e.eventID,
  kind: e.kind,
  table: e.meta.table,
  key: e.key,
  newImage: e.newImage ?? null,
  oldImage: e.oldImage ?? null,
  changed: e.changed,
  expired: e.expired,
  entity: e.entity ?? null,
  sequenceNumber: e.meta.sequenceNumber === '' ? null : e.meta.sequenceNumber,
  shardId: e.meta.shardId ?? null,
  approximateCreationTime: new Date(e.meta.approximateCreationTime).toISOString(),
  sizeBytes: e.meta.sizeBytes,
});

/** `<prefix>table=<table>/dt=YYYY-MM-DD/hr=HH/`, the hour in UTC. */
export const partitionPath = (prefix: string, table: string, time: number): string => {
  const iso = new Date(time).toISOString();
  return `${prefix}table=${escapePartitionValue(table)}/dt=${iso.slice(0, 10)}/hr=${iso.slice(11, 13)}/`;
};

const digest = (text: string, length: number): string => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, length);

/**
 * The name of an object holding events at these (padded) positions of one stream:
 * `<stream>-<lowest>-<highest>-<digest>`. The range makes keys sort in stream order; the digest,
 * over every position in the object, keeps two different groupings of overlapping records from
 * sharing a key, so a rewrite never replaces rows with a set that lacks some of them.
 */
export const positionedName = (stream: string, sequences: readonly string[]): string => {
  const sorted = [...sequences].sort();
  return `${stream}-${sorted[0] ?? ''}-${sorted[sorted.length - 1] ?? ''}-${digest(sorted.join(','), 16)}`;
};

/** The name of an object of events without a stream position: a digest of its content. */
export const contentName = (body: string): string => `transformed-${digest(body, 32)}`;
