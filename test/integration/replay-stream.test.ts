import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { dynamoDbReplayCheckpoints, replay } from '../../src/replay/index.js';
import { MemorySink } from '../../src/testing/index.js';
import { dynamoDbLeaseStore, dynamoDbStreamsApi, runWorker } from '../../src/worker/index.js';
import { deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { lines, runMain, SRC_INDEX } from '../support/cli.js';


const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 30_000) => {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await check()) return;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
};

/** Every item of the lease table, by key. */
const scanAll = async (client: DynamoDBClient, tableName: string): Promise<Map<string, Record<string, AttributeValue>>> => {
  const items = new Map<string, Record<string, AttributeValue>>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    for (const item of page.Items ?? []) items.set(item['leaseKey']?.S ?? '', item);
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
};

/** A client that records the key of every item it writes. */
const spyingClient = () => {
  const client = new DynamoDBClient(localClientConfig(inject('dynamoEndpoint')));
  const written: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: Record<string, AttributeValue>; Item?: Record<string, AttributeValue>; TransactItems?: Record<string, { Key?: Record<string, AttributeValue>; Item?: Record<string, AttributeValue> }>[] };
      if (/^(PutItem|UpdateItem|DeleteItem|TransactWriteItems|BatchWriteItem)Command$/.test(context.commandName ?? '')) {
        for (const k of [input.Key, input.Item, ...(input.TransactItems ?? []).flatMap((t) => Object.values(t).flatMap((op) => [op.Key, op.Item]))]) {
          if (k?.['leaseKey']?.S) written.push(k['leaseKey'].S);
        }
      }
      return next(args);
    },
    { step: 'initialize', name: 'writeSpy' },
  );
  return { client, written };
};

describe('replay from the stream on DynamoDB Local', () => {
  let client: DynamoDBClient;
  const tables: string[] = [];
  const { endpoint, region, credentials } = localClientConfig(inject('dynamoEndpoint'));
  let streamsClient: DynamoDBStreamsClient;
  const streamsApi = () => dynamoDbStreamsApi({ client: streamsClient });

  beforeAll(() => {
    client = localClient();
    streamsClient = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
    streamsClient.destroy();
  });

  const put = (table: string, pk: string, version: number) =>
    client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: pk }, SK: { S: 'TASK' }, Version: { N: String(version) } } }));

  it("sends the range in order with its own checkpoints, and never touches a running worker's leases", async () => {
    // Prepare: a table whose changes a worker delivers, and a lease table it shares with the replay.
    const table = uniqueTableName('replay');
    const leaseTable = uniqueTableName('replay-leases');
    tables.push(table, leaseTable);
    const streamArn = await createSourceTable(client, table);
    await createLeaseTable(client, leaseTable);
    const live = new MemorySink({ name: 'live' });
    const worker = await runWorker({
      app: defineApp({ table, routes: [route('*').to(live)] }),
      streamArn,
      leaseTable,
      endpoint,
      region,
      credentials,
      handleSignals: false,
      metricsPort: false,
      pollIntervalMs: 50,
      checkpointIntervalMs: 50,
    });
    try {
      await put(table, 'USER#1', 1);
      await put(table, 'USER#2', 1);
      await put(table, 'USER#1', 2);
      await put(table, 'USER#1', 3);
      await until('the worker to deliver 4 changes', () => live.delivered.length === 4);
      const lastSeq = live.delivered[3]?.meta.sequenceNumber;
      await until('the worker to checkpoint them', async () => [...(await scanAll(client, leaseTable)).values()].some((i) => i['checkpoint']?.S === lastSeq));
      const leasesBefore = [...(await scanAll(client, leaseTable)).values()].map((i) => ({ key: i['leaseKey']?.S, owner: i['owner']?.S, checkpoint: i['checkpoint']?.S }));

      // Act: replay the stream to another sink, through a client that records what it writes.
      const search = new MemorySink({ name: 'search' });
      const spy = spyingClient();
      const report = await replay({
        app: defineApp({ table, routes: [route('*').to(new MemorySink({ name: 'other' })), route('*').to(search)] }),
        sinks: ['search'],
        from: '10m',
        source: { type: 'stream', streams: streamsApi(), streamArn, checkpoints: dynamoDbReplayCheckpoints({ tableName: leaseTable, client: spy.client }), id: 'first', pollIntervalMs: 50 },
      });

      // Assess: every change once, an item's in order; only the replay's own items written.
      expect(report.problems).toEqual([]);
      expect(report.complete).toBe(true);
      expect(search.delivered.map((e) => `${String(e.key['PK'])}@${String(e.newImage?.['Version'])}`)).toEqual(['USER#1@1', 'USER#2@1', 'USER#1@2', 'USER#1@3']);
      expect(report.bySink).toEqual({ search: { insert: 2, modify: 2 } });
      expect(spy.written.length).toBeGreaterThan(0);
      expect(spy.written.every((k) => k === 'replay|first' || k.startsWith('replay|first|'))).toBe(true);
      const after = await scanAll(client, leaseTable);
      const leasesAfter = [...after.values()].filter((i) => i['streamArn'] !== undefined).map((i) => ({ key: i['leaseKey']?.S, owner: i['owner']?.S, checkpoint: i['checkpoint']?.S }));
      expect(leasesAfter).toEqual(leasesBefore);
      expect(after.get('replay|first')?.['replayStatus']?.S).toBe('finished');
      // The worker's own view of its leases holds no replay item, and it keeps delivering.
      expect((await dynamoDbLeaseStore({ tableName: leaseTable, client }).list(streamArn)).map((l) => l.shardId)).toHaveLength([...after.values()].filter((i) => i['shardId'] !== undefined).length);
      await put(table, 'USER#3', 1);
      await until('the worker to deliver a change made after the replay', () => live.delivered.length === 5);

      // A run with the id of a finished replay sends nothing again.
      const again = await replay({
        app: defineApp({ table, routes: [route('*').to(search)] }),
        sinks: ['search'],
        from: '10m',
        source: { type: 'stream', streams: streamsApi(), streamArn, checkpoints: dynamoDbReplayCheckpoints({ tableName: leaseTable, client }), id: 'first' },
      });
      expect(again.resumed).toBe(true);
      expect(again.finishedBefore).toBe(true);
      expect(again.records).toBe(0);
      expect(search.delivered).toHaveLength(4);
      spy.client.destroy();
    } finally {
      await worker.stop();
    }
  });

  it('starts at a sequence number', async () => {
    const table = uniqueTableName('replay-seq');
    tables.push(table);
    const streamArn = await createSourceTable(client, table);
    for (let i = 1; i <= 4; i++) await put(table, `USER#${i}`, 1);
    const streams = streamsApi();
    const [shard] = await streams.describeShards(streamArn);
    const page = await streams.getRecords(await streams.getShardIterator(streamArn, shard?.shardId ?? '', { type: 'TRIM_HORIZON' }), 100);
    const third = (page.records[2] as { dynamodb: { SequenceNumber: string } }).dynamodb.SequenceNumber;
    const search = new MemorySink({ name: 'search' });
    const report = await replay({ app: defineApp({ table, routes: [route('*').to(search)] }), sinks: ['search'], fromSequence: third, dryRun: false, source: { type: 'stream', streams, streamArn, checkpoints: dynamoDbReplayCheckpoints({ tableName: await createLeaseTable(client, uniqueTableName('replay-seq-leases')), client }), pollIntervalMs: 50 } });
    expect(report.complete).toBe(true);
    expect(search.delivered.map((e) => e.key['PK'])).toEqual(['USER#3', 'USER#4']);
  });
});

describe('dynamo-cdc replay (command) against DynamoDB Local', () => {
  let client: DynamoDBClient;
  let dir: string;
  let table: string;
  let noStream: string;
  let leaseTable: string;

  const cli = async (argv: string[]) => {
    const result = await runMain(argv, { cwd: dir });
    return { ...result, errLines: lines(result.stderr) };
  };
  const config = async (name: string, tableName: string) => {
    const path = join(dir, `${name}.config.ts`);
    await writeFile(
      path,
      `import { defineApp, fileSink, route } from ${JSON.stringify(SRC_INDEX)};
export default defineApp({ table: ${JSON.stringify(tableName)}, routes: [
  route('*').on('modify').to(fileSink({ name: 'changes', path: ${JSON.stringify(join(dir, 'changes.ndjson'))} })),
  route('*').to(fileSink({ name: 'all', path: ${JSON.stringify(join(dir, `${name}.ndjson`))} })),
] });
`,
    );
    return path;
  };

  // The command's clients read credentials from the process environment, as a real run does.
  const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };

  beforeAll(async () => {
    process.env['AWS_ACCESS_KEY_ID'] ??= 'x';
    process.env['AWS_SECRET_ACCESS_KEY'] ??= 'x';
    client = localClient();
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-replay-'));
    table = uniqueTableName('replay-cli');
    noStream = uniqueTableName('replay-nostream');
    leaseTable = uniqueTableName('replay-cli-leases');
    await createSourceTable(client, table);
    await createLeaseTable(client, leaseTable);
    const { CreateTableCommand } = await import('@aws-sdk/client-dynamodb');
    await client.send(new CreateTableCommand({ TableName: noStream, BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: 'PK', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'PK', AttributeType: 'S' }] }));
    await client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: 'USER#1' }, SK: { S: 'TASK' }, Version: { N: '1' } } }));
    await client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: 'USER#1' }, SK: { S: 'TASK' }, Version: { N: '2' } } }));
  });

  afterAll(async () => {
    for (const t of [table, noStream, leaseTable]) await deleteTable(client, t);
    client.destroy();
    await rm(dir, { recursive: true, force: true });
    if (saved.id === undefined) delete process.env['AWS_ACCESS_KEY_ID'];
    if (saved.secret === undefined) delete process.env['AWS_SECRET_ACCESS_KEY'];
  });

  it('--help shows the flags', async () => {
    const r = await cli(['replay', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dynamo-cdc replay: send a range of changes again');
    for (const flag of ['--sink', '--route', '--source', '--from', '--to', '--dry-run', '--lease-table', '--id', '--on-unreadable']) expect(r.stdout).toContain(flag);
  });

  it('a dry run counts per sink, route and kind and sends nothing', async () => {
    const file = await config('dry', table);
    const r = await cli(['replay', '-c', file, '--sink', 'all', '--sink', 'changes', '--from', '1h', '--dry-run', '--poll-interval-ms', '50']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^dry run: replay .* from stream .*: 2 records in 1 shard$/m);
    expect(r.stdout).toMatch(/^all\s+1\s+1\s+0\s+2$/m);
    expect(r.stdout).toMatch(/^changes\s+0\s+1\s+0\s+1$/m);
    expect(r.stdout).toContain('routes[1] (* -> all)');
    await expect(readFile(join(dir, 'dry.ndjson'), 'utf8')).rejects.toThrow();
  });

  it('sends, and prints the id to resume with', async () => {
    const file = await config('sent', table);
    const r = await cli(['replay', '-c', file, '--route', 'routes[1]', '--lease-table', leaseTable, '--id', 'cli-1', '--poll-interval-ms', '50']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^replay cli-1 from stream/m);
    expect(r.stdout).toContain('sent: 2 delivered, 0 dead-lettered');
    expect((await readFile(join(dir, 'sent.ndjson'), 'utf8')).trim().split('\n')).toHaveLength(2);
    // `status` reads the same lease table and does not mistake the replay's items for leases.
    const status = await cli(['status', '-c', file, '--lease-table', leaseTable, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('replay|');
  });

  const oneLine = async (argv: string[], expected: RegExp, code = 1) => {
    const r = await cli(argv);
    expect(r.errLines).toEqual([expect.stringMatching(expected)]);
    expect(r.code).toBe(code);
  };

  it('answers bad input with one line', async () => {
    const file = await config('bad', table);
    await oneLine(['replay', '-c', file, '--sink', 'serch', '--lease-table', leaseTable], /^dynamo-cdc: --sink `serch` is not a sink of the app\. Its sinks: changes, all$/);
    await oneLine(['replay', '-c', file, '--route', 'Task -> x', '--lease-table', leaseTable], /^dynamo-cdc: --route `Task -> x` is not a route of the app\. Its routes: routes\[0\] \(\*\.modify -> changes\), routes\[1\] \(\* -> all\)$/);
    await oneLine(['replay', '-c', file, '--sink', 'all', '--from', '25h', '--lease-table', leaseTable], /^dynamo-cdc: --from \(.*\) is outside the stream's 24 h retention: .* Replay older changes from the S3 export/);
    await oneLine(['replay', '-c', file, '--sink', 'all', '--from', 'yesterday', '--lease-table', leaseTable], /^dynamo-cdc: --from must be an ISO 8601 time/);
    await oneLine(['replay', '-c', file, '--sink', 'all', '--lease-table', 'no-such-leases'], /^dynamo-cdc: lease table no-such-leases does not exist in /);
    await oneLine(['replay', '-c', file, '--sink', 'all'], /^dynamo-cdc: `dynamo-cdc replay` from the stream needs --lease-table/, 2);
    await oneLine(['replay', '-c', file, '--lease-table', leaseTable], /^dynamo-cdc: `dynamo-cdc replay` needs --sink <name> or --route <route>/, 2);
    await oneLine(['replay', '-c', await config('missing', 'no-such-table'), '--sink', 'all', '--lease-table', leaseTable], /^dynamo-cdc: table no-such-table does not exist in /);
    await oneLine(['replay', '-c', await config('nostream', noStream), '--sink', 'all', '--lease-table', leaseTable], /^dynamo-cdc: table .* has no stream\. /);
    await oneLine(['replay', '-c', file, '--sink', 'all', '--source', 's3'], /^dynamo-cdc: --export names no s3Export sink, and the app has none to read from/);
  });
});
