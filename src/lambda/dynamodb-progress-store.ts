import { gunzipSync, gzipSync } from 'node:zlib';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { systemClock } from '../core/clock.js';
import { ConfigError } from '../errors.js';
import type { Clock, ProgressKey, ProgressStore } from '../ports.js';

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
  /** Decides when a record has expired. @default the system clock */
  readonly clock?: Pick<Clock, 'now'>;
}

/** 25 h: longer than the 24 h stream retention, so a record lives as long as a re-delivery can come. */
const DEFAULT_TTL_SECONDS = 25 * 60 * 60;

const CANONICAL_DECIMAL = /^(0|[1-9][0-9]*)$/;

const byValue = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Encodes a set of sequence numbers compactly: up to 10,000 numbers of 21+ digits must fit in a
 * 400 KB item. Sorted as integers, they become small differences (base 36, comma-joined), which
 * gzip squeezes further. Anything not a canonical decimal (never seen from DynamoDB Streams) is
 * kept verbatim on a second line so that every set round-trips exactly.
 */
export const encodeSequenceNumbers = (done: ReadonlySet<string>): Uint8Array => {
  const numbers: bigint[] = [];
  const others: string[] = [];
  for (const s of done) {
    if (CANONICAL_DECIMAL.test(s)) numbers.push(BigInt(s));
    else others.push(s);
  }
  numbers.sort(byValue);
  let previous = 0n;
  const deltas = numbers.map((n) => {
    const delta = (n - previous).toString(36);
    previous = n;
    return delta;
  });
  const text = others.length > 0 ? `${deltas.join(',')}\n${JSON.stringify(others)}` : deltas.join(',');
  return gzipSync(text, { level: 9 });
};

/** The inverse of {@link encodeSequenceNumbers}. */
export const decodeSequenceNumbers = (bytes: Uint8Array): Set<string> => {
  const text = gunzipSync(bytes).toString('utf8');
  const newline = text.indexOf('\n');
  const deltas = newline === -1 ? text : text.slice(0, newline);
  const done = new Set<string>();
  let current = 0n;
  if (deltas.length > 0) {
    for (const delta of deltas.split(',')) {
      current += parseBase36(delta);
      done.add(current.toString());
    }
  }
  if (newline !== -1) for (const s of JSON.parse(text.slice(newline + 1)) as string[]) done.add(s);
  return done;
};

const parseBase36 = (digits: string): bigint => {
  let value = 0n;
  for (const d of digits) {
    const n = Number.parseInt(d, 36);
    if (Number.isNaN(n)) throw new Error(`Corrupt progress record: \`${digits}\` is not a base-36 number`);
    value = value * 36n + BigInt(n);
  }
  return value;
};

/**
 * The CreateTable input of a progress table: partition key `pk` (string), on-demand capacity.
 * Enable TTL on the attribute `expiresAt` afterwards (UpdateTimeToLive) so expired records are
 * deleted for free; the store ignores expired records either way.
 *
 * @example
 * await client.send(new CreateTableCommand(progressTableDefinition('cdc-progress')));
 * await client.send(new UpdateTimeToLiveCommand({ TableName: 'cdc-progress', TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true } }));
 */
export const progressTableDefinition = (tableName: string): CreateTableCommandInput => ({
  TableName: tableName,
  BillingMode: 'PAY_PER_REQUEST',
  KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
  AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
});

/**
 * A {@link ProgressStore} in a DynamoDB table (see {@link progressTableDefinition}): one item per
 * partly failed batch, keyed `pk` = `<streamArn>#<sequenceNumber>`, holding the done sequence
 * numbers (`done`, gzip-compressed binary), their `count`, and `expiresAt` (epoch seconds) for the
 * table's TTL. `load` is one strongly consistent GetItem, `save` one PutItem.
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
  const client = options.client ?? new DynamoDBClient({ maxAttempts: 3 });
  const clock = options.clock ?? systemClock;
  const keyOf = (position: ProgressKey) => ({ pk: { S: `${position.streamArn}#${position.sequenceNumber}` } });

  return {
    async load(position) {
      const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: keyOf(position), ConsistentRead: true }));
      if (!item) return undefined;
      // TTL deletion runs late (up to days), so an expired record may still be there.
      const expiresAt = Number(item['expiresAt']?.N);
      if (Number.isFinite(expiresAt) && expiresAt * 1000 <= clock.now()) return undefined;
      const bytes = item['done']?.B;
      if (!bytes) throw new Error(`Corrupt progress record ${keyOf(position).pk.S}: no \`done\` attribute`);
      const done = decodeSequenceNumbers(bytes);
      const count = Number(item['count']?.N);
      if (done.size !== count) throw new Error(`Corrupt progress record ${keyOf(position).pk.S}: ${done.size} sequence numbers decoded, ${count} expected`);
      return done;
    },

    async save(position, done) {
      const expiresAt = Math.floor(clock.now() / 1000) + ttlSeconds;
      await client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            ...keyOf(position),
            done: { B: encodeSequenceNumbers(done) },
            count: { N: String(done.size) },
            expiresAt: { N: String(expiresAt) },
          },
        }),
      );
    },
  };
};
