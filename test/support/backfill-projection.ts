/**
 * A projection of a table built from deliveries that mix backfill events and stream changes, by
 * the rule docs/backfill.md gives every consumer that keeps state: each write carries a version,
 * and a write lands only if its version is at least the stored one.
 * - A stream change's version: its creation time (ms, a whole second), then its sequence number.
 * - A backfill event's version: one millisecond below the second its Scan started in, so a change
 *   made from that second on always wins over it, and a change from before it never does.
 * - A remove stores a tombstone with its version (a later backfill write of the item, read before
 *   the remove, must find something to lose against).
 * `lastWriteWins` keeps the other, unguarded kind of consumer for comparison.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { ChangeEvent } from '../../src/index.js';
import { backfillVersion } from '../../src/events.js';

interface Stored {
  readonly time: number;
  readonly seq: bigint;
  readonly image: Record<string, unknown> | undefined;
}

const keyOf = (item: Record<string, unknown>) => `${String(item['PK'])}|${String(item['SK'])}`;

export class BackfillProjection {
  readonly guarded = new Map<string, Stored>();
  readonly lastWriteWins = new Map<string, Record<string, unknown> | undefined>();
  backfilled = 0;
  changes = 0;

  apply(event: ChangeEvent): void {
    const key = keyOf(event.key);
    const image = event.kind === 'remove' ? undefined : (event.newImage as Record<string, unknown>);
    const next: Stored =
      event.kind === 'backfill'
        ? { time: backfillVersion(event.meta.backfill.startedAt), seq: -1n, image }
        : { time: event.meta.approximateCreationTime, seq: BigInt(event.meta.sequenceNumber), image };
    if (event.kind === 'backfill') this.backfilled++;
    else this.changes++;
    const stored = this.guarded.get(key);
    if (!stored || next.time > stored.time || (next.time === stored.time && next.seq >= stored.seq)) this.guarded.set(key, next);
    this.lastWriteWins.set(key, image);
  }

  /** Items that differ between `source` and the guarded projection (and the unguarded one). */
  diff(source: ReadonlyMap<string, Record<string, unknown>>): { guarded: number; lastWriteWins: number; examples: string[] } {
    const examples: string[] = [];
    const count = (replica: ReadonlyMap<string, Record<string, unknown> | undefined>, note: boolean): number => {
      let diffs = 0;
      for (const [key, item] of source) {
        if (!isDeepStrictEqual(replica.get(key), item)) {
          diffs++;
          if (note && examples.length < 5) examples.push(key);
        }
      }
      for (const [key, image] of replica) if (image !== undefined && !source.has(key)) diffs++;
      return diffs;
    };
    const guarded = new Map([...this.guarded].map(([k, s]) => [k, s.image]));
    return { guarded: count(guarded, true), lastWriteWins: count(this.lastWriteWins, false), examples };
  }
}

/** Every item of a table, read consistently, by `PK|SK`. */
export const scanTable = async (client: DynamoDBClient, tableName: string): Promise<Map<string, Record<string, unknown>>> => {
  const items = new Map<string, Record<string, unknown>>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const raw of page.Items ?? []) {
      const item = unmarshall(raw);
      items.set(keyOf(item), item);
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
};
