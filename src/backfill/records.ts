import { createHash } from 'node:crypto';
import type { AttributeValue, BackfillInfo, RawStreamRecord } from '../events.js';

/** A scanned item in DynamoDB's wire format, as Scan returns it. */
export type ScannedItem = Record<string, AttributeValue>;

/** The parts of a record every item of one page shares. */
export interface BackfillRecordContext {
  readonly streamArn: string;
  readonly region: string | undefined;
  /** The table's key attribute names (partition key first). */
  readonly keyNames: readonly string[];
  readonly info: BackfillInfo;
}

// A key's raw values, in key-schema order: the same item always gives the same text.
const keyText = (item: ScannedItem, keyNames: readonly string[]): string => {
  let text = '';
  for (const name of keyNames) text += `${name.length}:${name}=${JSON.stringify(item[name])};`;
  return text;
};

/**
 * The event id of an item in a backfill: `bf-<backfill id>-<24 hex digits of the key's digest>`.
 * Stable for the same item in the same backfill (a resumed one re-sends a page with the same ids,
 * so downstream deduplication works), different in another backfill (a new snapshot is new data).
 */
export const backfillEventId = (backfillId: string, item: ScannedItem, keyNames: readonly string[]): string =>
  `bf-${backfillId}-${createHash('sha256').update(keyText(item, keyNames)).digest('hex').slice(0, 24)}`;

/**
 * A scanned item as a raw record the engine takes like a stream record: `eventName: 'BACKFILL'`,
 * the item as `NewImage`, its key as `Keys` (so lanes and entities work unchanged), no sequence
 * number, and the backfill's facts in `backfill`. `decodeRecord` turns it into a `BackfillEvent`;
 * a dead letter keeps it whole, so `dlq redrive` can send it again.
 */
export const backfillRecord = (item: ScannedItem, ctx: BackfillRecordContext): RawStreamRecord => {
  const keys: Record<string, AttributeValue> = {};
  for (const name of ctx.keyNames) {
    const value = item[name];
    if (value !== undefined) keys[name] = value;
  }
  return {
    eventID: backfillEventId(ctx.info.id, item, ctx.keyNames),
    eventName: 'BACKFILL',
    eventSource: 'dynamo-cdc:backfill',
    eventSourceARN: ctx.streamArn,
    ...(ctx.region !== undefined ? { awsRegion: ctx.region } : {}),
    dynamodb: { Keys: keys, NewImage: item },
    backfill: ctx.info,
  };
};
