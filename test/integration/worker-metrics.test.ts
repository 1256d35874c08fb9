import { DescribeTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { defineApp, route, systemClock } from '../../src/index.js';
import type { ChangeEvent, DeadLetterQueue, Sink } from '../../src/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { createWorkerMetrics, startMetricsServer, livenessDetails } from '../../src/observability/index.js';
import type { MetricsServer, WorkerMetrics } from '../../src/observability/index.js';
import { memoryLogger, MemoryDeadLetterQueue, MemoryLeaseStore, MemorySink, permanentError, ScriptedStreams, streamRecords } from '../../src/testing/index.js';
import type { LogEntry } from '../../src/testing/index.js';
import { runWorker, Worker } from '../../src/worker/index.js';
import type { WorkerOptions } from '../../src/worker/index.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
type Task = { PK: string; SK: string; Version: number };

const until = async (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** `keys` items changed once each, from one record factory (increasing sequence numbers). */
const changes = (records: ReturnType<typeof streamRecords>, keys: number, version = 1) =>
  Array.from({ length: keys }, (_, k) => records.modify({ PK: `USER#${k}`, SK: 'TASK#1', Version: version - 1 }, { PK: `USER#${k}`, SK: 'TASK#1', Version: version }));

/** Samples of a Prometheus text exposition: name, labels, value. */
const parse = (text: string) =>
  text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
      return { name: m[1] as string, labels, value: Number(m[3]) };
    });

/** The value of one sample, matched on its name and the labels given; undefined when absent. */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number | undefined =>
  parse(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

const scrape = async ({ port }: { port: number }): Promise<string> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
};

const healthz = async ({ port }: { port: number }) => {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: await res.text() };
};

describe('Worker metrics endpoint', () => {
  const workers: Worker[] = [];
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  /** A worker with fakes, short intervals, metrics, and the HTTP server on a free port. */
  const setUp = async (options: { streams: ScriptedStreams; sink: Sink<unknown>; leases?: MemoryLeaseStore; deadLetter?: DeadLetterQueue } & Partial<WorkerOptions>) => {
    const { streams, sink, leases = new MemoryLeaseStore(), deadLetter, ...rest } = options;
    const metrics: WorkerMetrics = createWorkerMetrics();
    const worker = new Worker({
      app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 }, ...(deadLetter ? { deadLetter } : {}) }),
      streamArn: STREAM,
      streams,
      leases,
      logger: memoryLogger(),
      clock: systemClock,
      leaseDurationMs: 1000, // the fence (half of it) must outlast an event-loop stall on a loaded machine
      coordinationIntervalMs: 50,
      pollIntervalMs: 10,
      checkpointIntervalMs: 20,
      discoveryIntervalMs: 100,
      drainTimeoutMs: 500,
      observer: metrics.observer,
      ...rest,
    });
    metrics.track(worker);
    workers.push(worker);
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: metrics.registry, isLive: () => worker.isLive(), notLiveDetails: () => livenessDetails(worker) });
    servers.push(server);
    return { worker, server, metrics };
  };

  it('shows records in, deliveries, owned shards, lease changes and the last read of a shard moving', async () => {
    // Prepare: one shard, empty at first.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' });
    const sink = new MemorySink();
    const { worker, server } = await setUp({ streams, sink });
    const beforeStart = await scrape(server);
    await worker.start();
    await until(() => worker.status()[0]?.lastReadAt !== undefined);
    const idle = await scrape(server);

    // Act
    streams.append('shard-1', changes(records, 12));
    await until(() => sink.delivered.length === 12);
    await until(() => worker.status()[0]?.lastCheckpointAt !== undefined);
    await new Promise((r) => setTimeout(r, 30)); // a few more polls, so the last read moves on
    const busy = await scrape(server);
    await worker.stop();
    const stopped = await scrape(server);

    // Assess
    expect(sample(beforeStart, 'dynamo_cdc_owned_shards')).toBe(0);
    expect(sample(beforeStart, 'dynamo_cdc_lease_changes_total', { change: 'taken' })).toBe(0);
    expect(sample(beforeStart, 'dynamo_cdc_records_in_total')).toBe(0);

    expect(sample(idle, 'dynamo_cdc_owned_shards')).toBe(1);
    expect(sample(idle, 'dynamo_cdc_lease_changes_total', { change: 'taken' })).toBe(1);
    expect(sample(idle, 'dynamo_cdc_records_in_total')).toBe(0);
    expect(sample(idle, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBeUndefined();
    const firstRead = sample(idle, 'dynamo_cdc_last_read_timestamp_seconds', { shard: 'shard-1' });
    expect(firstRead).toBeGreaterThan(Date.now() / 1000 - 60);

    expect(sample(busy, 'dynamo_cdc_records_in_total')).toBe(12);
    expect(sample(busy, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBe(12);
    expect(sample(busy, 'dynamo_cdc_last_read_timestamp_seconds', { shard: 'shard-1' })).toBeGreaterThan(firstRead as number);
    expect(sample(busy, 'dynamo_cdc_last_checkpoint_timestamp_seconds', { shard: 'shard-1' })).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(sample(busy, 'dynamo_cdc_iterator_age_seconds', { shard: 'shard-1' })).toBeGreaterThanOrEqual(0);
    expect(sample(busy, 'dynamo_cdc_batch_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(busy, 'dynamo_cdc_live')).toBe(1);
    expect(sample(busy, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);

    expect(sample(stopped, 'dynamo_cdc_lease_changes_total', { change: 'released' })).toBe(1);
    expect(sample(stopped, 'dynamo_cdc_lease_changes_total', { change: 'taken' })).toBe(1);
    expect(sample(stopped, 'dynamo_cdc_owned_shards')).toBe(0);
    expect(sample(stopped, 'dynamo_cdc_last_read_timestamp_seconds', { shard: 'shard-1' })).toBeUndefined();
  });

  it('counts a retry by sink and failure class when a sink fails an entry once', async () => {
    // Prepare: the sink fails USER#0's change once with a 503.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' });
    const sink = new MemorySink().failWhere((e) => (e as ChangeEvent<Task>).key['PK'] === 'USER#0', { times: 1 });
    const { worker, server } = await setUp({ streams, sink });
    await worker.start();
    const before = await scrape(server);

    // Act
    streams.append('shard-1', changes(records, 3));
    await until(() => sink.delivered.length === 3);
    const after = await scrape(server);

    // Assess
    expect(sample(before, 'dynamo_cdc_retries_total', { sink: 'memory', class: 'TRANSIENT' })).toBeUndefined();
    expect(sample(after, 'dynamo_cdc_retries_total', { sink: 'memory', class: 'TRANSIENT' })).toBe(1);
    expect(sample(after, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBe(3);
  });

  it("counts dead letters by the sink that failed them, and 'none' for a record that failed before routing", async () => {
    // Prepare: USER#1's change is rejected for good; one record is malformed (an unknown event name).
    const records = streamRecords();
    const batch = changes(records, 3);
    const malformed = { ...records.insert({ PK: 'USER#9', SK: 'TASK#1', Version: 1 }), eventName: 'UPSERT' };
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' });
    const sink = new MemorySink().failWhere((e) => (e as ChangeEvent<Task>).key['PK'] === 'USER#1', { error: () => permanentError() });
    const dlq = new MemoryDeadLetterQueue();
    const { worker, server } = await setUp({ streams, sink, deadLetter: dlq });
    await worker.start();

    // Act
    streams.append('shard-1', [...batch, malformed]);
    await until(() => dlq.letters.length === 2 && sink.delivered.length === 2);
    const after = await scrape(server);

    // Assess
    expect(sample(after, 'dynamo_cdc_dead_lettered_total', { sink: 'memory' })).toBe(1);
    expect(sample(after, 'dynamo_cdc_dead_lettered_total', { sink: 'none' })).toBe(1);
    expect(sample(after, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBe(2);
    expect(sample(after, 'dynamo_cdc_records_in_total')).toBe(4);
  });

  it('answers /healthz 200 while live and 503 naming the shard once a shard failed', async () => {
    // Prepare
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 3));
    const sink = new MemorySink();
    const { worker, server } = await setUp({ streams, sink });
    await worker.start();
    await until(() => sink.delivered.length === 3);
    const live = await healthz(server);

    // Act: new records arrive and the oldest of them is trimmed before it is read (the default policy fails the shard).
    const late = changes(records, 2, 2);
    streams.append('shard-1', late).trim('shard-1', late[0]?.dynamodb.SequenceNumber as string);
    await until(() => worker.status()[0]?.state === 'failed');
    const failed = await healthz(server);

    // Assess
    expect(live).toEqual({ status: 200, body: 'ok\n' });
    expect(failed.status).toBe(503);
    const body = JSON.parse(failed.body) as { status: string; reason: string; shards: { shardId: string; state: string }[] };
    expect(body.status).toBe('unavailable');
    expect(body.shards).toContainEqual(expect.objectContaining({ shardId: 'shard-1', state: 'failed' }));
    expect(sample(await scrape(server), 'dynamo_cdc_live')).toBe(0);
    expect(sample(await scrape(server), 'dynamo_cdc_trimmed_gaps_total')).toBe(1);
  });

  it('answers /healthz 503 once the worker stopped, and 404 off its two paths', async () => {
    // Prepare
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' });
    const { worker, server } = await setUp({ streams, sink: new MemorySink() });
    await worker.start();
    await until(() => worker.status()[0]?.lastReadAt !== undefined);
    const live = await healthz(server);

    // Act: liveness is measured from the last coordination round, which a stopped worker no longer runs.
    await worker.stop();
    await until(async () => (await healthz(server)).status === 503, 8000);
    const other = await fetch(`http://127.0.0.1:${server.port}/`);

    // Assess
    expect(live.status).toBe(200);
    expect((await healthz(server)).status).toBe(503);
    expect(other.status).toBe(404);
  });
});

describe('runWorker metrics server against DynamoDB Local', () => {
  let client: DynamoDBClient;
  const tables: string[] = [];

  beforeAll(() => {
    client = localClient();
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
  });

  it('serves the documented metrics while the worker runs and closes the server when it stops', async () => {
    // Prepare: a table with a stream and three items in it; the worker's server on a free port.
    const table = await createTable(client, { tableName: uniqueTableName('metrics'), partitionKey: 'PK', streamViewType: 'NEW_AND_OLD_IMAGES' });
    const leaseTable = uniqueTableName('metrics-leases');
    tables.push(table, leaseTable);
    const put = (pk: string) => client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: pk }, Version: { N: '1' } } }));
    for (let i = 0; i < 3; i++) await put(`ITEM#${i}`);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    const sink = new MemorySink();
    const entries: LogEntry[] = [];
    const { endpoint, region, credentials } = localClientConfig(inject('dynamoEndpoint'));
    const worker = await runWorker({
      app: defineApp({ table, routes: [route('*').to(sink)] }),
      streamArn: Table?.LatestStreamArn as string,
      leaseTable,
      createLeaseTable: true,
      endpoint,
      region,
      credentials,
      handleSignals: false,
      metricsPort: 0,
      pollIntervalMs: 50,
      coordinationIntervalMs: 200,
      logger: memoryLogger(entries),
    });
    const port = entries.find((e) => e.msg.startsWith('metrics server listening'))?.obj['port'] as number;
    const server = { port };
    await until(() => sink.delivered.length === 3);
    const first = await scrape(server);

    // Act
    for (let i = 3; i < 6; i++) await put(`ITEM#${i}`);
    await until(() => sink.delivered.length === 6);
    const second = await scrape(server);
    const health = await healthz(server);
    await worker.stop();

    // Assess
    expect(port).toBeGreaterThan(0);
    expect(sample(first, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBe(3);
    expect(sample(second, 'dynamo_cdc_delivered_total', { sink: 'memory' })).toBe(6);
    expect(sample(second, 'dynamo_cdc_records_in_total')).toBe(6);
    expect(sample(second, 'dynamo_cdc_owned_shards')).toBe(1);
    expect(sample(second, 'dynamo_cdc_lease_changes_total', { change: 'taken' })).toBe(1);
    expect(health.status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});
