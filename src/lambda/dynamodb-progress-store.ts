import type { AttributeValue, CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { systemClock } from '../core/clock.js';
import { ConfigError } from '../errors.js';
import type { Clock, Progress, ProgressStore } from '../ports.js';
import { decodeProgress, encodeProgress } from './progress-codec.js';
import { highestOf, padSequenceNumber, sizeOf } from './progress.js';

/** Options of {@link dynamoDbProgressStore}. */
export interface DynamoDbProgressStoreOptions {
  /** The table to keep progress records in; create it with {@link progressTableDefinition}. */
  readonly tableName: string;
  /**
   * The client to use. Give it `maxAttempts` of 3 or less: the handler already treats a failed
   * read or write as non-fatal, so long SDK retries would only eat the Lambda's time.
   * @default a new `DynamoDBClient({ maxAttempts: 3 })` with the region and credentials of the environment
   */
  readonly client?: DynamoDBClient;
  /**
   * How long a progress record counts, in seconds. Lambda stops re-delivering a record once it
   * leaves the stream's 24 h retention, so a record older than that is never asked for again.
   * @default 90_000 (25 h)
   */
  readonly ttlSeconds?: number;
  /**
   * Most records one load reads: the newest ones keyed at or before the batch's first record. More
   * finds a batch's record behind those of other shards or parallel batches that failed at the
   * same time; each costs read capacity (its size, rounded up to 4 KB in all).
   * @default 10
   */
  readonly lookBack?: number;
  /** Decides when a record has expired. @default the system clock */
  readonly clock?: Pick<Clock, 'now'>;
}

/** 25 h: longer than the 24 h stream retention, so a record lives as long as a re-delivery can come. */
const DEFAULT_TTL_SECONDS = 25 * 60 * 60;
const DEFAULT_LOOK_BACK = 10;

/**
 * The CreateTable input of a progress table: partition key `pk` (the stream ARN, string), sort key
 * `sk` (the zero-padded sequence number, string), on-demand capacity. Enable TTL on the attribute
 * `expiresAt` afterwards (UpdateTimeToLive) so expired records are deleted for free; the store
 * ignores expired records either way.
 *
 * @example
 * await client.send(new CreateTableCommand(progressTableDefinition('cdc-progress')));
 * await client.send(new UpdateTimeToLiveCommand({ TableName: 'cdc-progress', TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true } }));
 */
export const progressTableDefinition = (tableName: string): CreateTableCommandInput => ({
  TableName: tableName,
  BillingMode: 'PAY_PER_REQUEST',
  KeySchema: [
    { AttributeName: 'pk', KeyType: 'HASH' },
    { AttributeName: 'sk', KeyType: 'RANGE' },
  ],
  AttributeDefinitions: [
    { AttributeName: 'pk', AttributeType: 'S' },
    { AttributeName: 'sk', AttributeType: 'S' },
  ],
});

/**
 * A {@link ProgressStore} in a DynamoDB table (see {@link progressTableDefinition}): one item per
 * partly failed batch, `pk` = the stream ARN, `sk` = the sequence number of its first record,
 * zero-padded to 40 digits, holding `progress` (the done and acknowledged sequence numbers,
 * gzip-compressed binary), their `count`, `upTo` (the highest sequence number it mentions, padded;
 * all nines for a `blind` record, flagged `blind`) and `expiresAt` (epoch seconds) for the table's TTL.
 *
 * `load` is one strongly consistent Query (`sk <=` the batch's first record, newest first, at most
 * `lookBack` items, those with `upTo >=` it returned); `save` is one PutItem. Both are aborted with their signal.
 *
 * @example
 * import { createStreamHandler, dynamoDbProgressStore } from 'dynamo-cdc/lambda';
 * export const handler = createStreamHandler(app, {
 *   progressStore: dynamoDbProgressStore({ tableName: process.env.PROGRESS_TABLE! }),
 * });
 */
export const dynamoDbProgressStore = (options: DynamoDbProgressStoreOptions): ProgressStore => {
  const { tableName } = options;
  if (typeof tableName !== 'string' || tableName.trim() === '') {
    throw new ConfigError(
      'progressStore.tableName',
      `must be the name of the progress table, got \`${String(tableName)}\` (${typeof tableName}). Set it, for example from an environment variable such as PROGRESS_TABLE.`,
    );
  }
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new ConfigError(
      'progressStore.ttlSeconds',
      `must be an integer >= 1, got \`${String(ttlSeconds)}\` (${typeof ttlSeconds}). Set it above the stream's 24 h retention, or leave it out for 25 h.`,
    );
  }
  const lookBack = options.lookBack ?? DEFAULT_LOOK_BACK;
  if (!Number.isInteger(lookBack) || lookBack < 1) {
    throw new ConfigError('progressStore.lookBack', `must be an integer >= 1, got \`${String(lookBack)}\` (${typeof lookBack}). Leave it out for 10.`);
  }
  // The SDK is loaded when a store is made, not when the module is: a handler without a progress
  // store does not pay for it at cold start. Loading starts now so that the first batch waits less.
  const sdk = import('@aws-sdk/client-dynamodb');
  sdk.catch(() => undefined); // a failure surfaces on the first load or save, not as an unhandled rejection
  let client: Promise<DynamoDBClient> | undefined;
  const clientOf = (): Promise<DynamoDBClient> =>
    (client ??= options.client ? Promise.resolve(options.client) : sdk.then(({ DynamoDBClient }) => new DynamoDBClient({ maxAttempts: 3 })));
  const clock = options.clock ?? systemClock;

  const toProgress = (item: Record<string, AttributeValue>): Progress => {
    const streamArn = item['pk']?.S ?? '';
    const sequenceNumber = (item['sk']?.S ?? '').replace(/^0+(?=.)/, '');
    const name = `${streamArn} ${sequenceNumber}`;
    const bytes = item['progress']?.B;
    if (!bytes) throw new Error(`Corrupt progress record ${name}: no \`progress\` attribute`);
    const { done, acknowledged } = decodeProgress(bytes);
    const count = Number(item['count']?.N);
    if (done.size + acknowledged.size !== count) throw new Error(`Corrupt progress record ${name}: ${done.size + acknowledged.size} sequence numbers decoded, ${count} expected`);
    return { streamArn, sequenceNumber, done, acknowledged, ...(item['blind']?.BOOL === true ? { blind: true } : {}) };
  };

  return {
    async load(position, signal) {
      const { QueryCommand } = await sdk;
      const client = await clientOf();
      const { Items: items = [] } = await client.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: 'pk = :pk AND sk <= :seq',
          // Read capacity is spent on every item the Limit lets through; the filter only trims the answer.
          FilterExpression: 'upTo >= :seq',
          ExpressionAttributeValues: { ':pk': { S: position.streamArn }, ':seq': { S: padSequenceNumber(position.sequenceNumber) } },
          ScanIndexForward: false,
          Limit: lookBack,
          ConsistentRead: true,
        }),
        { abortSignal: signal },
      );
      const now = clock.now();
      // TTL deletion runs late (up to days), so an expired record may still be there.
      return items.filter((item) => !(Number(item['expiresAt']?.N) * 1000 <= now)).map(toProgress);
    },

    async save(progress, signal) {
      const expiresAt = Math.floor(clock.now() / 1000) + ttlSeconds;
      const { PutItemCommand } = await sdk;
      const client = await clientOf();
      await client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            pk: { S: progress.streamArn },
            sk: { S: padSequenceNumber(progress.sequenceNumber) },
            upTo: { S: padSequenceNumber(highestOf(progress)) },
            progress: { B: encodeProgress(progress) },
            count: { N: String(sizeOf(progress)) },
            expiresAt: { N: String(expiresAt) },
            ...(progress.blind ? { blind: { BOOL: true } } : {}),
          },
        }),
        { abortSignal: signal },
      );
    },
  };
};
