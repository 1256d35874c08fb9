import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';

/** One Scan segment's progress. */
export interface SegmentState {
  /** Where the next page starts (Scan's LastEvaluatedKey of the last page done); absent before the first page. */
  readonly lastKey: Record<string, AttributeValue> | undefined;
  /** Every page of the segment is done. */
  readonly done: boolean;
  /** Items done in this segment so far. */
  readonly items: number;
}

export type BackfillStatus = 'running' | 'done' | 'failed';

/** A backfill as recorded in the lease table. */
export interface BackfillState {
  readonly id: string;
  readonly table: string;
  /** The stream the backfill hands off to. */
  readonly streamArn: string;
  /** When the Scan started (after the leases were in place), epoch ms. */
  readonly startedAt: number;
  readonly totalSegments: number;
  readonly status: BackfillStatus;
  readonly segments: readonly SegmentState[];
}

/**
 * Backfill records live in the lease table next to the leases, under the key `backfill|<id>`.
 * They have no `streamArn` attribute (the stream is in `handoffStreamArn`): the lease store lists
 * leases with a filter on `streamArn`, so it never sees them, and `status` skips items without it.
 */
export const BACKFILL_KEY_PREFIX = 'backfill|';

const KEY = 'leaseKey';

const keyOf = (id: string): Record<string, AttributeValue> => ({ [KEY]: { S: `${BACKFILL_KEY_PREFIX}${id}` } });

const segmentValue = (s: SegmentState): AttributeValue => ({
  M: {
    done: { BOOL: s.done },
    items: { N: String(s.items) },
    ...(s.lastKey ? { lastKey: { S: JSON.stringify(s.lastKey) } } : {}),
  },
});

const corrupt = (item: Record<string, AttributeValue>, what: string): Error => new Error(`Corrupt backfill item \`${item[KEY]?.S ?? '?'}\` in the lease table: ${what}`);

const toState = (item: Record<string, AttributeValue>): BackfillState => {
  const id = (item[KEY]?.S ?? '').slice(BACKFILL_KEY_PREFIX.length);
  const totalSegments = Number(item['totalSegments']?.N);
  const startedAt = Number(item['startedAt']?.N);
  const status = item['status']?.S;
  if (!Number.isSafeInteger(totalSegments) || totalSegments < 1) throw corrupt(item, '`totalSegments` is not an integer >= 1');
  if (!Number.isSafeInteger(startedAt)) throw corrupt(item, '`startedAt` is not epoch milliseconds');
  if (status !== 'running' && status !== 'done' && status !== 'failed') throw corrupt(item, `\`status\` is \`${String(status)}\``);
  const raw = item['segments']?.M ?? {};
  const segments: SegmentState[] = [];
  for (let i = 0; i < totalSegments; i++) {
    const s = raw[String(i)]?.M;
    const lastKey = s?.['lastKey']?.S;
    segments.push({ done: s?.['done']?.BOOL === true, items: Number(s?.['items']?.N ?? 0), lastKey: lastKey === undefined ? undefined : (JSON.parse(lastKey) as Record<string, AttributeValue>) });
  }
  return { id, table: item['table']?.S ?? '', streamArn: item['handoffStreamArn']?.S ?? '', startedAt, totalSegments, status, segments };
};

/** Reads and writes backfill records in the lease table. */
export class BackfillStateStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(client: DynamoDBClient, leaseTable: string) {
    this.#client = client;
    this.#tableName = leaseTable;
  }

  /** Records a new backfill; fails if the id is taken. */
  async create(state: BackfillState): Promise<void> {
    const segments: Record<string, AttributeValue> = {};
    state.segments.forEach((s, i) => (segments[String(i)] = segmentValue(s)));
    await this.#client.send(
      new PutItemCommand({
        TableName: this.#tableName,
        Item: {
          ...keyOf(state.id),
          recordType: { S: 'backfill' },
          table: { S: state.table },
          handoffStreamArn: { S: state.streamArn },
          startedAt: { N: String(state.startedAt) },
          totalSegments: { N: String(state.totalSegments) },
          status: { S: state.status },
          segments: { M: segments },
          updatedAt: { N: String(Date.now()) },
        },
        ConditionExpression: 'attribute_not_exists(#k)',
        ExpressionAttributeNames: { '#k': KEY },
      }),
    );
  }

  async get(id: string): Promise<BackfillState | undefined> {
    const { Item: item } = await this.#client.send(new GetItemCommand({ TableName: this.#tableName, Key: keyOf(id), ConsistentRead: true }));
    return item ? toState(item) : undefined;
  }

  /** Unfinished backfills of `table`, oldest first. */
  async unfinished(table: string): Promise<BackfillState[]> {
    const found: BackfillState[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.#client.send(
        new ScanCommand({
          TableName: this.#tableName,
          ConsistentRead: true,
          FilterExpression: 'begins_with(#k, :prefix) AND #status = :running AND #table = :table',
          ExpressionAttributeNames: { '#k': KEY, '#status': 'status', '#table': 'table' },
          ExpressionAttributeValues: { ':prefix': { S: BACKFILL_KEY_PREFIX }, ':running': { S: 'running' }, ':table': { S: table } },
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of page.Items ?? []) found.push(toState(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return found.sort((a, b) => a.startedAt - b.startedAt);
  }

  /** Writes one segment's progress; called only once the page before `lastKey` is done. */
  async saveSegment(id: string, segment: number, state: SegmentState): Promise<void> {
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: keyOf(id),
        UpdateExpression: 'SET #segments.#s = :seg, #updatedAt = :now',
        ConditionExpression: 'attribute_exists(#k)',
        ExpressionAttributeNames: { '#k': KEY, '#segments': 'segments', '#s': String(segment), '#updatedAt': 'updatedAt' },
        ExpressionAttributeValues: { ':seg': segmentValue(state), ':now': { N: String(Date.now()) } },
      }),
    );
  }

  async setStatus(id: string, status: BackfillStatus, reason?: string): Promise<void> {
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: keyOf(id),
        UpdateExpression: `SET #status = :status, #updatedAt = :now${reason !== undefined ? ', #reason = :reason' : ''}`,
        ExpressionAttributeNames: { '#status': 'status', '#updatedAt': 'updatedAt', ...(reason !== undefined ? { '#reason': 'reason' } : {}) },
        ExpressionAttributeValues: { ':status': { S: status }, ':now': { N: String(Date.now()) }, ...(reason !== undefined ? { ':reason': { S: reason } } : {}) },
      }),
    );
  }

  /**
   * A lease created with `LATEST` (a worker's first start with `initialPosition: 'LATEST'`) that no
   * reader has pinned yet means "whenever a reader starts": later than the Scan. Moved back to
   * `TRIM_HORIZON` (conditional on the checkpoint and the counter unchanged), so the changes made
   * during the backfill are read. A reader already holding it read from before the Scan anyway and
   * pins its own position. True when this call moved it.
   */
  async rewindLatestLease(leaseKey: string, counter: number): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: { [KEY]: { S: leaseKey } },
          UpdateExpression: 'SET #checkpoint = :trim, #updatedAt = :now',
          ConditionExpression: '#checkpoint = :latest AND #counter = :counter',
          ExpressionAttributeNames: { '#checkpoint': 'checkpoint', '#counter': 'counter', '#updatedAt': 'updatedAt' },
          ExpressionAttributeValues: { ':trim': { S: 'TRIM_HORIZON' }, ':latest': { S: 'LATEST' }, ':counter': { N: String(counter) }, ':now': { N: String(Date.now()) } },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: unknown }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}
