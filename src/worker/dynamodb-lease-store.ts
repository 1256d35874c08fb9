import type { AttributeValue, CreateTableCommandInput, TableDescription, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import {
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateContinuousBackupsCommand,
  UpdateItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../errors.js';
import type { FleetState, Lease, LeaseStore } from './ports.js';

/** Options of {@link dynamoDbLeaseStore}. */
export interface DynamoDbLeaseStoreOptions {
  /** The lease table; make sure it exists with {@link ensureLeaseTable}. */
  readonly tableName: string;
  /**
   * The client to use. Give it a small `maxAttempts`: a lease write that hangs in SDK retries
   * holds up heartbeats while peers' clocks keep running.
   * @default a new `DynamoDBClient({ maxAttempts: 3, region, endpoint })` with the credentials of the environment
   */
  readonly client?: DynamoDBClient;
  /** Region of the client the store builds itself; not allowed together with `client`. @default the region of the environment */
  readonly region?: string;
  /** Endpoint of the client the store builds itself (DynamoDB Local, a VPC endpoint); not allowed together with `client`. @default the regional endpoint */
  readonly endpoint?: string;
}

/** Options of {@link ensureLeaseTable}. */
export interface EnsureLeaseTableOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Create the table when it is missing. When false, a missing table is a {@link ConfigError}: the table is never created silently. */
  readonly create: boolean;
}

/** What {@link ensureLeaseTable} did. */
export interface EnsureLeaseTableResult {
  /** True when this call created the table. */
  readonly created: boolean;
  /** True when this call created the table and enabled point-in-time recovery on it. */
  readonly pointInTimeRecovery: boolean;
  /** Why enabling point-in-time recovery failed (for a warning); the table is usable either way. */
  readonly pointInTimeRecoveryError?: unknown;
}

/** How long {@link ensureLeaseTable} waits for a table to become ACTIVE; on-demand tables take seconds. */
const TABLE_ACTIVE_MAX_WAIT_SECONDS = 300;

const KEY = 'leaseKey';

const NAMES = {
  leaseKey: { '#leaseKey': KEY },
  owner: { '#owner': 'owner' },
  counter: { '#counter': 'counter' },
  checkpoint: { '#checkpoint': 'checkpoint' },
  doneAbove: { '#doneAbove': 'doneAbove' },
  updatedAt: { '#updatedAt': 'updatedAt' },
  streamArn: { '#streamArn': 'streamArn' },
  shardId: { '#shardId': 'shardId' },
  beats: { '#beats': 'beats' },
  version: { '#version': 'version' },
} as const;

/** The key of a stream's fleet item: shard ids never start with `@`. */
const fleetKeyOf = (streamArn: string): Record<string, AttributeValue> => ({ [KEY]: { S: `${streamArn}|@fleet` } });

const toFleet = (item: Record<string, AttributeValue> | undefined): FleetState => {
  if (!item) return { beats: new Map(), version: 0 };
  const beats = new Map<string, string>();
  for (const [workerId, token] of Object.entries(item['beats']?.M ?? {})) if (token.S !== undefined) beats.set(workerId, token.S);
  const version = Number(item['version']?.N ?? 0);
  if (!Number.isSafeInteger(version)) throw corrupt(item, `\`version\` is not an integer, got \`${String(item['version']?.N)}\``);
  return { beats, version };
};

/** The lease table key of a shard's lease. */
export const leaseKeyOf = (streamArn: string, shardId: string): string => `${streamArn}|${shardId}`;

const keyOf = (lease: Pick<Lease, 'streamArn' | 'shardId'>): Record<string, AttributeValue> => ({ [KEY]: { S: leaseKeyOf(lease.streamArn, lease.shardId) } });

const n = (value: number): AttributeValue => ({ N: String(value) });

const stringList = (values: readonly string[]): AttributeValue => ({ L: values.map((s) => ({ S: s })) });

const isConditionFailure = (error: unknown): boolean =>
  error !== null && typeof error === 'object' && (error as { name?: unknown }).name === 'ConditionalCheckFailedException';

const corrupt = (item: Record<string, AttributeValue>, what: string): Error =>
  new Error(`Corrupt lease item \`${item[KEY]?.S ?? '(no leaseKey)'}\`: ${what}`);

const readStrings = (item: Record<string, AttributeValue>, name: string): string[] => {
  const value = item[name];
  if (value === undefined) return [];
  if (value.L === undefined) throw corrupt(item, `\`${name}\` is not a list`);
  return value.L.map((entry) => {
    if (entry.S === undefined) throw corrupt(item, `\`${name}\` holds a value that is not a string`);
    return entry.S;
  });
};

const toLease = (item: Record<string, AttributeValue>): Lease => {
  const streamArn = item['streamArn']?.S;
  const shardId = item['shardId']?.S;
  const checkpoint = item['checkpoint']?.S;
  const counter = Number(item['counter']?.N);
  if (streamArn === undefined || shardId === undefined) throw corrupt(item, 'no `streamArn` or `shardId`');
  if (checkpoint === undefined) throw corrupt(item, 'no `checkpoint`');
  if (!Number.isSafeInteger(counter) || counter < 0) throw corrupt(item, `\`counter\` is not an integer >= 0, got \`${String(item['counter']?.N)}\``);
  return {
    streamArn,
    shardId,
    owner: item['owner']?.S,
    counter,
    checkpoint,
    parents: readStrings(item, 'parents'),
    doneAbove: readStrings(item, 'doneAbove'),
  };
};

const requireTableName = (tableName: unknown): string => {
  if (typeof tableName !== 'string' || tableName.trim() === '') {
    throw new ConfigError(
      'leaseTable',
      `must be the name of the DynamoDB table that holds the worker's leases, got \`${String(tableName)}\` (${typeof tableName}). Set it, for example \`leaseTable: 'my-app-cdc-leases'\`; each stream needs its own.`,
    );
  }
  return tableName;
};

/**
 * The CreateTable input of a lease table: partition key `leaseKey` (string), on-demand capacity.
 * {@link ensureLeaseTable} with `create: true` creates it from this and waits until it is ACTIVE.
 *
 * @example
 * await client.send(new CreateTableCommand(leaseTableDefinition('my-app-cdc-leases')));
 */
export const leaseTableDefinition = (tableName: string): CreateTableCommandInput => ({
  TableName: tableName,
  BillingMode: 'PAY_PER_REQUEST',
  KeySchema: [{ AttributeName: KEY, KeyType: 'HASH' }],
  AttributeDefinitions: [{ AttributeName: KEY, AttributeType: 'S' }],
});

const describeTable = async (client: DynamoDBClient, tableName: string): Promise<TableDescription | undefined> => {
  try {
    const { Table: table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return table;
  } catch (error) {
    if ((error as { name?: unknown }).name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
};

const checkKeySchema = (tableName: string, table: TableDescription): void => {
  const keys = table.KeySchema ?? [];
  const keyType = table.AttributeDefinitions?.find((d) => d.AttributeName === KEY)?.AttributeType;
  if (keys.length === 1 && keys[0]?.AttributeName === KEY && keys[0].KeyType === 'HASH' && keyType === 'S') return;
  const found = keys.map((k) => `${String(k.AttributeName)} (${String(k.KeyType)})`).join(', ');
  throw new ConfigError(
    'leaseTable',
    `names table \`${tableName}\`, whose key is ${found || 'unknown'}; a lease table has the partition key \`leaseKey\` (S) and no sort key. Point \`leaseTable\` at a table made from \`leaseTableDefinition()\`, or name a new one and set \`createLeaseTable: true\`.`,
  );
};

const waitUntilActive = (client: DynamoDBClient, tableName: string) =>
  waitUntilTableExists({ client, maxWaitTime: TABLE_ACTIVE_MAX_WAIT_SECONDS, minDelay: 1, maxDelay: 5 }, { TableName: tableName });

/**
 * Makes sure the lease table exists, is ACTIVE and has the lease table's key. A missing table is
 * created only when `create` is true (then point-in-time recovery is enabled on it, best effort);
 * otherwise it is a {@link ConfigError} naming `leaseTable` that says how to create it.
 * Creating concurrently with a peer is safe: the loser waits for the winner's table.
 *
 * @example
 * const client = new DynamoDBClient({ maxAttempts: 3 });
 * await ensureLeaseTable({ client, tableName: 'my-app-cdc-leases', create: options.createLeaseTable ?? false });
 * const leases = dynamoDbLeaseStore({ tableName: 'my-app-cdc-leases', client });
 */
export const ensureLeaseTable = async (options: EnsureLeaseTableOptions): Promise<EnsureLeaseTableResult> => {
  const { client, create } = options;
  const tableName = requireTableName(options.tableName);
  const existing = await describeTable(client, tableName);
  if (existing) {
    checkKeySchema(tableName, existing);
    if (existing.TableStatus !== 'ACTIVE') await waitUntilActive(client, tableName);
    return { created: false, pointInTimeRecovery: false };
  }
  if (!create) {
    throw new ConfigError(
      'leaseTable',
      `names table \`${tableName}\`, which does not exist. Set \`createLeaseTable: true\` (CLI: \`--create-lease-table\`) to have the worker create it, or create it yourself from \`leaseTableDefinition('${tableName}')\` (partition key \`leaseKey\` (S), on-demand).`,
    );
  }
  let created = true;
  try {
    await client.send(new CreateTableCommand(leaseTableDefinition(tableName)));
  } catch (error) {
    // A peer created it between our DescribeTable and CreateTable.
    if ((error as { name?: unknown }).name !== 'ResourceInUseException') throw error;
    created = false;
  }
  await waitUntilActive(client, tableName);
  if (!created) {
    const table = await describeTable(client, tableName);
    if (table) checkKeySchema(tableName, table);
    return { created: false, pointInTimeRecovery: false };
  }
  try {
    await client.send(
      new UpdateContinuousBackupsCommand({ TableName: tableName, PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } }),
    );
    return { created: true, pointInTimeRecovery: true };
  } catch (error) {
    // PITR only guards against losing the checkpoints to a mistaken delete; the table works without it.
    return { created: true, pointInTimeRecovery: false, pointInTimeRecoveryError: error };
  }
};

/**
 * A {@link LeaseStore} in a DynamoDB table (see {@link leaseTableDefinition} and
 * {@link ensureLeaseTable}). One item per shard:
 *
 * | attribute | type | meaning |
 * |---|---|---|
 * | `leaseKey` | S (partition key) | `<streamArn>\|<shardId>` |
 * | `streamArn`, `shardId` | S | the shard |
 * | `owner` | S | the worker holding the lease; absent when free |
 * | `counter` | N | fencing counter, 0 at creation; take and release add one |
 * | `checkpoint` | S | sequence number or `TRIM_HORIZON` / `LATEST` / `SHARD_END` |
 * | `parents` | L of S | parent shard ids, may be empty |
 * | `doneAbove` | L of S | sequence numbers done after the checkpoint |
 * | `updatedAt` | N | epoch ms of the last write; informational, never used to judge expiry |
 *
 * Every write but `create` is conditional on `counter` (and, for the holder's writes, `owner`);
 * a failed condition is reported as `undefined` / `false`, any other error propagates. `list` is
 * an eventually consistent Scan of every page, filtered on `streamArn` and `attribute_exists(shardId)`
 * (workers decide nothing on it but conditional writes): a lease table serves one stream, so it
 * holds its live shards plus the recently closed ones, about 300 bytes each.
 * Writes by a lease with no owner (`checkpoint`, `release`) fail without a request. One more item
 * per stream, `<streamArn>|@fleet`, holds every worker's heartbeat and a change marker (`fleet`,
 * `beat`, `unregister`, `touch`; docs/lease-table.md).
 *
 * @example
 * import { dynamoDbLeaseStore, ensureLeaseTable } from 'dynamo-cdc/worker';
 * await ensureLeaseTable({ client, tableName: 'my-app-cdc-leases', create: true });
 * const leases = dynamoDbLeaseStore({ tableName: 'my-app-cdc-leases', client });
 */
export const dynamoDbLeaseStore = (options: DynamoDbLeaseStoreOptions): LeaseStore => {
  const tableName = requireTableName(options.tableName);
  if (options.client && (options.region !== undefined || options.endpoint !== undefined)) {
    throw new ConfigError(
      'leaseStore.client',
      'is given together with `region` or `endpoint`, which only configure the client the store builds itself. Set them on your client, or leave `client` out.',
    );
  }
  const client =
    options.client ??
    new DynamoDBClient({
      maxAttempts: 3,
      ...(options.region !== undefined ? { region: options.region } : {}),
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    });

  type UpdateInput = Required<Pick<UpdateItemCommandInput, 'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'>>;

  /** A conditional UpdateItem on `lease`: false when its condition failed. */
  const write = async (lease: Lease, input: UpdateInput): Promise<boolean> => {
    try {
      await client.send(new UpdateItemCommand({ TableName: tableName, Key: keyOf(lease), ...input }));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  };

  /** A conditional UpdateItem on `lease` returning the new lease, or `undefined` when its condition failed. */
  const update = async (lease: Lease, input: UpdateInput): Promise<Lease | undefined> => {
    try {
      const { Attributes: attributes } = await client.send(new UpdateItemCommand({ TableName: tableName, Key: keyOf(lease), ReturnValues: 'ALL_NEW', ...input }));
      if (!attributes) throw new Error(`UpdateItem on lease \`${leaseKeyOf(lease.streamArn, lease.shardId)}\` returned no attributes`);
      return toLease(attributes);
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  };

  /** Sends a conditional write: false when its condition failed. */
  const conditional = async (command: UpdateItemCommand): Promise<boolean> => {
    try {
      await client.send(command);
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  };

  /** Creates a stream's fleet item with an empty map of heartbeats, unless it exists. */
  const ensureFleetItem = async (streamArn: string): Promise<void> => {
    try {
      await client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { ...fleetKeyOf(streamArn), streamArn: { S: streamArn }, beats: { M: {} }, version: n(0), updatedAt: n(Date.now()) },
          ConditionExpression: 'attribute_not_exists(#leaseKey)',
          ExpressionAttributeNames: NAMES.leaseKey,
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  };

  /** The holder's condition: still `lease.owner` at `lease.counter`. */
  const heldBy = (lease: Lease & { owner: string }) => ({
    ConditionExpression: '#owner = :owner AND #counter = :expected',
    names: { ...NAMES.owner, ...NAMES.counter },
    values: { ':owner': { S: lease.owner }, ':expected': n(lease.counter) },
  });

  const hasOwner = (lease: Lease): lease is Lease & { owner: string } => lease.owner !== undefined;

  return {
    async create(lease) {
      try {
        await client.send(
          new PutItemCommand({
            TableName: tableName,
            Item: {
              ...keyOf(lease),
              streamArn: { S: lease.streamArn },
              shardId: { S: lease.shardId },
              counter: n(0),
              checkpoint: { S: lease.checkpoint },
              parents: stringList(lease.parents),
              doneAbove: stringList([]),
              updatedAt: n(Date.now()),
            },
            ConditionExpression: 'attribute_not_exists(#leaseKey)',
            ExpressionAttributeNames: NAMES.leaseKey,
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async list(streamArn) {
      const leases: Lease[] = [];
      let startKey: Record<string, AttributeValue> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: tableName,
            FilterExpression: '#streamArn = :streamArn AND attribute_exists(#shardId)',
            ExpressionAttributeNames: { ...NAMES.streamArn, ...NAMES.shardId },
            ExpressionAttributeValues: { ':streamArn': { S: streamArn } },
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          }),
        );
        for (const item of page.Items ?? []) leases.push(toLease(item));
        startKey = page.LastEvaluatedKey;
      } while (startKey);
      return leases;
    },

    async take(lease, owner) {
      return update(lease, {
        UpdateExpression: 'SET #owner = :owner, #counter = #counter + :one, #updatedAt = :now',
        ConditionExpression: 'attribute_exists(#leaseKey) AND #counter = :expected',
        ExpressionAttributeNames: { ...NAMES.leaseKey, ...NAMES.owner, ...NAMES.counter, ...NAMES.updatedAt },
        ExpressionAttributeValues: { ':owner': { S: owner }, ':one': n(1), ':now': n(Date.now()), ':expected': n(lease.counter) },
      });
    },

    async fleet(streamArn, consistent) {
      const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: fleetKeyOf(streamArn), ConsistentRead: consistent }));
      return toFleet(item);
    },

    async beat(streamArn, workerId, previous, next, join = false) {
      // The map of heartbeats must exist before one of its entries can be set: create the fleet
      // item on the first registration (a conditional put that loses harmlessly to a peer's).
      if (previous === undefined) await ensureFleetItem(streamArn);
      return conditional(
        new UpdateItemCommand({
          TableName: tableName,
          Key: fleetKeyOf(streamArn),
          UpdateExpression: join ? 'SET #beats.#worker = :next, #updatedAt = :now ADD #version :one' : 'SET #beats.#worker = :next, #updatedAt = :now',
          ConditionExpression: previous === undefined ? 'attribute_not_exists(#beats.#worker)' : '#beats.#worker = :previous',
          ExpressionAttributeNames: { ...NAMES.beats, '#worker': workerId, ...NAMES.updatedAt, ...(join ? NAMES.version : {}) },
          ExpressionAttributeValues: { ':next': { S: next }, ':now': n(Date.now()), ...(join ? { ':one': n(1) } : {}), ...(previous === undefined ? {} : { ':previous': { S: previous } }) },
        }),
      );
    },

    async unregister(streamArn, workerId, token) {
      return conditional(
        new UpdateItemCommand({
          TableName: tableName,
          Key: fleetKeyOf(streamArn),
          UpdateExpression: 'REMOVE #beats.#worker SET #updatedAt = :now ADD #version :one',
          ConditionExpression: '#beats.#worker = :token',
          ExpressionAttributeNames: { ...NAMES.beats, '#worker': workerId, ...NAMES.updatedAt, ...NAMES.version },
          ExpressionAttributeValues: { ':token': { S: token }, ':now': n(Date.now()), ':one': n(1) },
        }),
      );
    },

    async touch(streamArn) {
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: fleetKeyOf(streamArn),
          UpdateExpression: 'SET #streamArn = :streamArn, #beats = if_not_exists(#beats, :empty), #updatedAt = :now ADD #version :one',
          ExpressionAttributeNames: { ...NAMES.streamArn, ...NAMES.beats, ...NAMES.updatedAt, ...NAMES.version },
          ExpressionAttributeValues: { ':streamArn': { S: streamArn }, ':empty': { M: {} }, ':now': n(Date.now()), ':one': n(1) },
        }),
      );
    },

    async checkpoint(lease, checkpoint, doneAbove) {
      if (!hasOwner(lease)) return false;
      const held = heldBy(lease);
      return write(lease, {
        UpdateExpression: 'SET #checkpoint = :checkpoint, #doneAbove = :doneAbove, #updatedAt = :now',
        ConditionExpression: held.ConditionExpression,
        ExpressionAttributeNames: { ...held.names, ...NAMES.checkpoint, ...NAMES.doneAbove, ...NAMES.updatedAt },
        ExpressionAttributeValues: { ...held.values, ':checkpoint': { S: checkpoint }, ':doneAbove': stringList(doneAbove), ':now': n(Date.now()) },
      });
    },

    async release(lease) {
      if (!hasOwner(lease)) return false;
      const held = heldBy(lease);
      return write(lease, {
        UpdateExpression: 'REMOVE #owner SET #counter = #counter + :one, #updatedAt = :now',
        ConditionExpression: held.ConditionExpression,
        ExpressionAttributeNames: { ...held.names, ...NAMES.updatedAt },
        ExpressionAttributeValues: { ...held.values, ':one': n(1), ':now': n(Date.now()) },
      });
    },

    async remove(lease) {
      try {
        await client.send(
          new DeleteItemCommand({
            TableName: tableName,
            Key: keyOf(lease),
            ConditionExpression: '#counter = :expected',
            ExpressionAttributeNames: NAMES.counter,
            ExpressionAttributeValues: { ':expected': n(lease.counter) },
          }),
        );
      } catch (error) {
        // Someone moved the lease since it was listed; the next pass decides again.
        if (!isConditionFailure(error)) throw error;
      }
    },
  };
};
