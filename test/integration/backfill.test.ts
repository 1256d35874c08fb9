import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteItemCommand, DeleteItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { backfill, BACKFILL_KEY_PREFIX } from '../../src/backfill/index.js';
import { BackfillStateStore } from '../../src/backfill/state-store.js';
import { ConfigError } from '../../src/errors.js';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent, Sink } from '../../src/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { memoryLogger } from '../../src/testing/index.js';
import { dynamoDbLeaseStore, runWorker } from '../../src/worker/index.js';
import { BackfillProjection, scanTable } from '../support/backfill-projection.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

/** A sink that keeps every event it acknowledges, and can run a hook on each request. */
class CollectingSink implements Sink {
  readonly name: string;
  readonly limits = { maxRecords: 25, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = true;
  readonly events: ChangeEvent[] = [];
  onSend: ((events: readonly ChangeEvent[]) => Promise<void> | void) | undefined;

  constructor(name = 'collect') {
    this.name = name;
  }

  async send(events: readonly ChangeEvent[]) {
    await this.onSend?.(events);
    this.events.push(...events);
    return { failed: [] };
  }
}

const fill = async (client: DynamoDBClient, table: string, count: number, from = 0): Promise<void> => {
  for (let start = from; start < from + count; start += 25) {
    const puts = Array.from({ length: Math.min(25, from + count - start) }, (_, i) => ({
      PutRequest: { Item: { PK: { S: `USER#${start + i}` }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' }, Version: { N: '1' }, Body: { S: 'x'.repeat(200) } } },
    }));
    await client.send(new BatchWriteItemCommand({ RequestItems: { [table]: puts } }));
  }
};

describe('backfill (DynamoDB Local)', () => {
  let client: DynamoDBClient;
  const tables: string[] = [];
  const local = () => localClientConfig(inject('dynamoEndpoint'));
  const common = () => ({ endpoint: local().endpoint, region: local().region, credentials: local().credentials, logger: memoryLogger() });

  const source = async (items: number) => {
    const table = uniqueTableName('bf-src');
    const streamArn = await createSourceTable(client, table);
    const leaseTable = await createLeaseTable(client, uniqueTableName('bf-leases'));
    tables.push(table, leaseTable);
    await fill(client, table, items);
    return { table, streamArn, leaseTable };
  };

  beforeAll(() => {
    client = localClient();
  });
  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
  });

  it('sends every item once as a backfill event, creates the missing lease at TRIM_HORIZON and records the backfill where the worker never sees it', async () => {
    // Prepare
    const { table, streamArn, leaseTable } = await source(230);
    const sink = new CollectingSink();
    const progress: number[] = [];
    // Act
    const result = await backfill({ ...common(), app: defineApp({ table, routes: [route('*').to(sink)] }), leaseTable, segments: 4, pageSize: 20, onProgress: (p) => progress.push(p.items) });
    // Assess
    expect(result).toMatchObject({ status: 'done', resumed: false, items: 230, counts: { delivered: 230, 'dead-lettered': 0, unrouted: 0 }, leasesCreated: 1, streamArn });
    expect(sink.events.every((e) => e.kind === 'backfill')).toBe(true);
    expect(new Set(sink.events.map((e) => String(e.key['PK']))).size).toBe(230);
    expect(sink.events).toHaveLength(230);
    expect(result.consumedReadUnits).toBeGreaterThan(0); // DynamoDB Local reports ConsumedCapacity
    expect(progress.at(-1)).toBe(230);
    const leases = await dynamoDbLeaseStore({ tableName: leaseTable, client }).list(streamArn);
    expect(leases.map((l) => l.checkpoint)).toEqual(['TRIM_HORIZON']); // the backfill record is not among them
    const state = await new BackfillStateStore(client, leaseTable).get(result.id);
    expect(state?.status).toBe('done');
    expect(state?.segments.every((s) => s.done)).toBe(true);
    expect(BACKFILL_KEY_PREFIX).toBe('backfill|');
  });

  it('hands off to the stream with no gap: changes made during the backfill reach a worker started after it, and the projection equals the table', async () => {
    // Prepare: writes (updates, deletes, new items) land while the backfill is delivering.
    const { table, leaseTable, streamArn } = await source(150);
    const sink = new CollectingSink();
    let wrote = false;
    sink.onSend = async () => {
      if (wrote) return;
      wrote = true;
      for (let i = 0; i < 150; i += 10) {
        await client.send(new UpdateItemCommand({ TableName: table, Key: { PK: { S: `USER#${i}` }, SK: { S: 'TASK#1' } }, UpdateExpression: 'SET #s = :s, Version = Version + :one', ExpressionAttributeNames: { '#s': 'Status' }, ExpressionAttributeValues: { ':s': { S: 'DONE' }, ':one': { N: '1' } } }));
      }
      for (let i = 5; i < 150; i += 25) await client.send(new DeleteItemCommand({ TableName: table, Key: { PK: { S: `USER#${i}` }, SK: { S: 'TASK#1' } } }));
      for (let i = 0; i < 10; i++) await client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: `NEW#${i}` }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' }, Version: { N: '1' } } }));
    };
    const app = defineApp({ table, routes: [route('*').to(sink)] });
    // Act: backfill, then a worker on the same lease table.
    const result = await backfill({ ...common(), app, leaseTable, segments: 3, pageSize: 15 });
    const worker = await runWorker({ ...common(), app, leaseTable, streamArn, handleSignals: false, metricsPort: false, pollIntervalMs: 50 });
    try {
      const deadline = Date.now() + 20_000;
      // 150 inserts from fill, 15 updates, 6 deletes, 10 new items: 181 stream records.
      while (sink.events.filter((e) => e.kind !== 'backfill').length < 181 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await worker.stop();
    }
    // Assess
    expect(result.status).toBe('done');
    const projection = new BackfillProjection();
    for (const e of sink.events) projection.apply(e);
    const diff = projection.diff(await scanTable(client, table));
    expect(diff).toEqual({ guarded: 0, lastWriteWins: 0, examples: [] });
    expect(projection.backfilled).toBeGreaterThanOrEqual(144);
  });

  it('with a worker running during the backfill, a consumer following the version rule ends with the table, in whatever order the two arrive', async () => {
    // Prepare: the worker first (it creates the lease itself), then the backfill, with writes while both run.
    const { table, leaseTable, streamArn } = await source(150);
    const sink = new CollectingSink();
    const app = defineApp({ table, routes: [route('*').to(sink)] });
    const worker = await runWorker({ ...common(), app, leaseTable, streamArn, handleSignals: false, metricsPort: false, pollIntervalMs: 50 });
    let writes = 0;
    let result;
    try {
      let wrote = false;
      sink.onSend = async (events) => {
        if (wrote || !events.some((e) => e.kind === 'backfill')) return;
        wrote = true;
        for (let i = 0; i < 150; i += 7) {
          await client.send(new UpdateItemCommand({ TableName: table, Key: { PK: { S: `USER#${i}` }, SK: { S: 'TASK#1' } }, UpdateExpression: 'SET Version = Version + :one', ExpressionAttributeValues: { ':one': { N: '1' } } }));
          writes++;
        }
        for (let i = 3; i < 150; i += 30) {
          await client.send(new DeleteItemCommand({ TableName: table, Key: { PK: { S: `USER#${i}` }, SK: { S: 'TASK#1' } } }));
          writes++;
        }
      };
      // Act
      result = await backfill({ ...common(), app, leaseTable, segments: 3, pageSize: 10 });
      const deadline = Date.now() + 20_000;
      while (sink.events.filter((e) => e.kind !== 'backfill').length < 150 + writes && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await worker.stop();
    }
    // Assess
    expect(result.leasesCreated).toBe(0); // the worker's lease kept its position
    expect(writes).toBe(27);
    const projection = new BackfillProjection();
    for (const e of sink.events) projection.apply(e);
    expect(projection.changes).toBeGreaterThanOrEqual(150 + writes);
    expect(projection.diff(await scanTable(client, table)).guarded).toBe(0);
  });

  it('resumes a stopped backfill from its checkpoints: every item delivered at least once, none skipped, pages not redone', async () => {
    // Prepare: stop after about half the items.
    const { table, leaseTable } = await source(400);
    const sink = new CollectingSink();
    const stop = new AbortController();
    sink.onSend = () => {
      if (sink.events.length >= 200) stop.abort();
    };
    const app = defineApp({ table, routes: [route('*').to(sink)] });
    // Act
    const first = await backfill({ ...common(), app, leaseTable, segments: 4, pageSize: 10, signal: stop.signal });
    const before = sink.events.length;
    sink.onSend = undefined;
    const second = await backfill({ ...common(), app, leaseTable, segments: 4, pageSize: 10 });
    // Assess
    expect(first.status).toBe('stopped');
    expect(second).toMatchObject({ status: 'done', resumed: true, id: first.id, items: 400 });
    const keys = new Set(sink.events.map((e) => String(e.key['PK'])));
    expect(keys.size).toBe(400);
    // Re-sent at most the pages in flight when it stopped (4 segments, a page delivered and one read ahead each).
    expect(sink.events.length - 400).toBeLessThanOrEqual(4 * 2 * 10);
    expect(before).toBeGreaterThanOrEqual(200);
  });

  it('answers bad input with one line naming the problem, before reading anything', async () => {
    const app = (table: string) => defineApp({ table, routes: [route('*').to(new CollectingSink())] });
    const leaseTable = await createLeaseTable(client, uniqueTableName('bf-leases'));
    tables.push(leaseTable);
    const noStream = await createTable(client, { tableName: uniqueTableName('bf-nostream'), partitionKey: 'PK' });
    const keysOnly = await createTable(client, { tableName: uniqueTableName('bf-keys'), partitionKey: 'PK', streamViewType: 'KEYS_ONLY' });
    tables.push(noStream, keysOnly);
    await expect(backfill({ ...common(), app: app('no-such-table'), leaseTable })).rejects.toThrow(/`table` `no-such-table` does not exist/);
    await expect(backfill({ ...common(), app: app(noStream), leaseTable })).rejects.toThrow(/has no stream/);
    await expect(backfill({ ...common(), app: app(keysOnly), leaseTable })).rejects.toThrow(/KEYS_ONLY stream, which carries no new images/);
    await expect(backfill({ ...common(), app: app(keysOnly), leaseTable, maxRcu: 0 })).rejects.toThrow(ConfigError);
    await expect(backfill({ ...common(), app: app(keysOnly), leaseTable, maxRcu: -5 })).rejects.toThrow(/`maxRcu` must be a number of read capacity units per second > 0/);
  });

  it('refuses a backfill that cannot finish within the retention at its budget, and says which budget would do', async () => {
    const { table, leaseTable } = await source(100);
    const sink = new CollectingSink();
    const attempt = backfill({ ...common(), app: defineApp({ table, routes: [route('*').to(sink)] }), leaseTable, maxRcu: 0.00001 });
    await expect(attempt).rejects.toThrow(/`maxRcu` \(0\.00001\) is too low .* Raise it to at least \d+/);
    expect(sink.events).toHaveLength(0);
    // Nothing was written: no lease, no backfill record.
    expect(await new BackfillStateStore(client, leaseTable).unfinished(table)).toEqual([]);
  });

  it('stops loudly when it runs past the retention, and records the failure', async () => {
    const { table, leaseTable } = await source(60);
    const sink = new CollectingSink();
    sink.onSend = () => new Promise((resolve) => setTimeout(resolve, 150));
    const attempt = backfill({ ...common(), app: defineApp({ table, routes: [route('*').to(sink)] }), leaseTable, segments: 1, pageSize: 5, retentionMs: 1000, retentionMarginMs: 0 });
    await expect(attempt).rejects.toThrow(/past the stream's retention/);
    expect(sink.events.length).toBeLessThan(60);
    const [state] = await new BackfillStateStore(client, leaseTable).unfinished(table).then(async (running) => (running.length ? running : []));
    expect(state).toBeUndefined(); // marked failed, not running
  });

  it('a dry run counts the leases it would create and writes nothing', async () => {
    const { table, leaseTable, streamArn } = await source(30);
    const result = await backfill({ ...common(), app: defineApp({ table, routes: [route('*').to(new CollectingSink())] }), leaseTable, dryRun: true });
    expect(result).toMatchObject({ status: 'dry-run', leasesCreated: 1, items: 0 });
    expect(result.estimate.items).toBeGreaterThanOrEqual(0);
    expect(await dynamoDbLeaseStore({ tableName: leaseTable, client }).list(streamArn)).toEqual([]);
  });
});
