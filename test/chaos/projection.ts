/**
 * A projection (replica) of the chaos run's source table, built from the deliveries the way a
 * downstream consumer that receives them at least once and out of order must build it: every
 * write is guarded by the change's stream position, so a stale re-delivery never overwrites a
 * newer change, whatever the order the writes land in.
 *
 * - An insert or modify is a conditional PutItem of the new image plus the position.
 * - A remove is a conditional PutItem of a tombstone (the key, the position, a removed flag), not
 *   a DeleteItem: once the item is gone, a stale put of an older image would find no position to
 *   lose against and bring it back.
 * - The condition is "no position stored, or the stored one is lower". DynamoDB compares strings
 *   byte by byte, so the position is stored as the sequence number zero-padded to a fixed 40 digits
 *   (the longest a stream sequence number can be), which orders as the integers do; unpadded,
 *   `'9'` would sort after `'10'`. In process, positions are compared with `compareSequenceNumbers`.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTableCommand, PutItemCommand, ScanCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { compareSequenceNumbers } from '../../src/events.js';
import type { LoggedChange } from './change-log.js';

/** Digits of a stored position: DynamoDB stream sequence numbers have 21 to 40. */
export const POSITION_DIGITS = 40;
/** Attribute names the projection adds to an item; the source's items must not use them. */
export const POSITION = '_position';
export const REMOVED = '_removed';

/** The sequence number as a fixed-width string whose byte order is the numbers' order. */
export const positionOf = (sequenceNumber: string): string => {
  if (!/^[0-9]{1,40}$/.test(sequenceNumber)) throw new TypeError(`Expected a sequence number of 1 to ${POSITION_DIGITS} digits, got \`${sequenceNumber}\``);
  return sequenceNumber.padStart(POSITION_DIGITS, '0');
};

/** Creates the projection table (keyed `PK` / `SK` like the source, no stream) and waits until it is active. */
export const createProjectionTable = async (client: DynamoDBClient, tableName: string): Promise<string> => {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'PK', KeyType: 'HASH' },
        { AttributeName: 'SK', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'PK', AttributeType: 'S' },
        { AttributeName: 'SK', AttributeType: 'S' },
      ],
    }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, { TableName: tableName });
  return tableName;
};

/** What {@link applyChanges} did. */
export interface ProjectionStats {
  /** Writes that stored their change. */
  readonly applied: number;
  /** Writes refused because the item already held this change or a newer one (re-deliveries). */
  readonly stale: number;
}

/**
 * Applies one change under its position guard: true when stored, false when the projection
 * already held this position or a newer one. A refusal is checked against the stored position
 * (returned by the failed condition), so a guard that compares wrongly fails the run loudly.
 */
export const applyChange = async (client: DynamoDBClient, tableName: string, change: LoggedChange): Promise<boolean> => {
  const position = positionOf(change.sequenceNumber);
  const image = change.kind === 'remove' ? { ...change.keys, [REMOVED]: true } : (change.newImage ?? {});
  try {
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: marshall({ ...image, [POSITION]: position }, { removeUndefinedValues: true }),
        ConditionExpression: 'attribute_not_exists(#position) OR #position < :position',
        ExpressionAttributeNames: { '#position': POSITION },
        ExpressionAttributeValues: { ':position': { S: position } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return true;
  } catch (error) {
    if ((error as { name?: unknown }).name !== 'ConditionalCheckFailedException') throw error;
    const stored = (error as { Item?: Record<string, AttributeValue> }).Item?.[POSITION]?.S;
    if (stored !== undefined && compareSequenceNumbers(stored, change.sequenceNumber) < 0) {
      throw new Error(`projection guard refused position ${change.sequenceNumber} of ${change.key} over the older stored ${stored}`, { cause: error });
    }
    return false;
  }
};

/**
 * Applies changes as they are pushed, in the order pushed, `concurrency` guarded writes at a time
 * (so writes of one item can land out of order, as they do for a consumer with parallel writers).
 * The chaos run pushes each poll of the delivered file while the run goes on.
 */
export class Projector {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;
  readonly #concurrency: number;
  readonly #queue: LoggedChange[] = [];
  #next = 0;
  #lanes = 0;
  #applied = 0;
  #stale = 0;
  #failed: { readonly error: unknown } | undefined;
  #idle: (() => void)[] = [];

  /** @param concurrency writes at a time; @default 8 */
  constructor(client: DynamoDBClient, tableName: string, concurrency = 8) {
    this.#client = client;
    this.#tableName = tableName;
    this.#concurrency = concurrency;
  }

  push(changes: readonly LoggedChange[]): void {
    for (const change of changes) this.#queue.push(change);
    while (this.#lanes < this.#concurrency && this.#next < this.#queue.length) void this.#lane();
  }

  async #lane(): Promise<void> {
    this.#lanes++;
    try {
      while (this.#next < this.#queue.length && !this.#failed) {
        const change = this.#queue[this.#next++] as LoggedChange;
        if (await applyChange(this.#client, this.#tableName, change)) this.#applied++;
        else this.#stale++;
      }
    } catch (error) {
      this.#failed ??= { error };
    } finally {
      this.#lanes--;
      if (this.#lanes === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** Waits until every change pushed so far is applied; rejects with the first write that failed. */
  async settled(): Promise<ProjectionStats> {
    while (this.#lanes > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (this.#failed) throw this.#failed.error;
    return { applied: this.#applied, stale: this.#stale };
  }
}

/** Applies the changes in the order given, `concurrency` writes at a time (see {@link Projector}). */
export const applyChanges = (client: DynamoDBClient, tableName: string, changes: readonly LoggedChange[], concurrency = 8): Promise<ProjectionStats> => {
  const projector = new Projector(client, tableName, concurrency);
  projector.push(changes);
  return projector.settled();
};

const scanAll = async (client: DynamoDBClient, tableName: string): Promise<Record<string, unknown>[]> => {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) items.push(unmarshall(item));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
};

const keyOf = (item: Record<string, unknown>) => `${String(item['PK'])}|${String(item['SK'])}`;

/** How the projection differs from the source, item by item. */
export interface ReplicaDiff {
  /** Items that are missing, extra or different: `missing + extra + different`. */
  readonly diffs: number;
  /** In the source, absent (or a tombstone) in the projection. */
  readonly missing: number;
  /** In the projection (not a tombstone), absent from the source. */
  readonly extra: number;
  /** In both, with different attributes. */
  readonly different: number;
  /** Up to five keys that differ, for the report (keys only: item images stay out of logs). */
  readonly examples: readonly string[];
}

/** Scans both tables and compares them item by item; the projection's own attributes are left out. */
export const compareWithSource = async (client: DynamoDBClient, sourceTable: string, projectionTable: string): Promise<ReplicaDiff> => {
  const source = new Map((await scanAll(client, sourceTable)).map((item) => [keyOf(item), item]));
  const replica = new Map<string, Record<string, unknown>>();
  for (const { [POSITION]: _position, [REMOVED]: removed, ...item } of await scanAll(client, projectionTable)) {
    if (removed !== true) replica.set(keyOf(item), item);
  }
  let missing = 0;
  let extra = 0;
  let different = 0;
  const examples: string[] = [];
  const note = (key: string) => void (examples.length < 5 && examples.push(key));
  for (const [key, item] of source) {
    const copy = replica.get(key);
    if (copy === undefined) missing++;
    else if (!isDeepStrictEqual(copy, item)) different++;
    else continue;
    note(key);
  }
  for (const key of replica.keys()) {
    if (source.has(key)) continue;
    extra++;
    note(key);
  }
  return { diffs: missing + extra + different, missing, extra, different, examples };
};
