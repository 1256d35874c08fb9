/**
 * Worker benchmark against DynamoDB Local. Prints JSON lines; the last one is
 *   {"bench":"worker","writesPerSec":N,"p50Ms":N,"p99Ms":N,"pollIntervalMs":N,"failoverMs":N,"handoffMs":N}
 *
 * - Latency: a worker in this process (`runWorker`, poll interval 250 ms) reads a table that gets
 *   PutItems at a steady rate (50/s for 20 s after a 2 s warm-up that is not counted). Latency of an
 *   item = the sink's acknowledgement (Date.now() as its send() resolves) - Date.now() before its
 *   PutItem was sent: the write, the stream, the poll, the engine and the sink together.
 *   Target: p99 <= poll interval + 250 ms.
 * - Failover: two worker processes (test/support/worker-process.ts) share a table's one shard;
 *   `kill -9` the owner, PutItem one item at once, and time until the survivor's file sink has
 *   written it. Target: within two lease durations (2 x 2000 ms here).
 * - Hand-off: the same with SIGTERM. Target: under 2 s.
 * Failover and hand-off run three rounds each; the last line gives the worst round.
 * The processes use the library's default coordination interval, min(1000, leaseDuration / 3).
 *
 * Environment: BENCH_RATE (writes/s, default 50), BENCH_SECONDS (default 20), BENCH_ROUNDS (default 3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import pino from 'pino';
import { createLogger, defineApp, route } from '../src/index.js';
import type { ChangeEvent, Sink } from '../src/index.js';
import { startDynamoDbLocal } from '../src/local/dynamodb-local.js';
import type { DynamoDbLocal } from '../src/local/dynamodb-local.js';
import { dynamoDbLeaseStore, runWorker } from '../src/worker/index.js';
import type { Worker } from '../src/worker/index.js';
import { createLeaseTable, createSourceTable } from '../src/local/tables.js';
import { readDeliveries } from '../test/support/deliveries.js';
import { spawnWorkerProcess } from '../test/support/spawn-worker-process.js';
import type { WorkerProcess } from '../test/support/spawn-worker-process.js';

const RATE = Number(process.env['BENCH_RATE'] ?? 50);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 20);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const WARM_UP_MS = 2000;
const POLL_INTERVAL_MS = 250;
const LEASE_DURATION_MS = 2000;
const COORDINATION_INTERVAL_MS = Math.min(1000, LEASE_DURATION_MS / 3);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;

const put = (client: DynamoDBClient, table: string, pk: string) => client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: pk }, SK: { S: 'A' }, Note: { S: 'benchmark item' } } }));

/** A sink that notes when each item's delivery was acknowledged. */
class AckTimesSink implements Sink {
  readonly name = 'ack-times';
  readonly limits = { maxRecords: 100, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = true;
  readonly ackedAt = new Map<string, number>();
  async send(events: readonly ChangeEvent[]) {
    JSON.stringify(events); // what any real sink does first
    const now = Date.now();
    for (const e of events) this.ackedAt.set(String(e.key['PK']), now);
    return { failed: [] };
  }
}

const measureLatency = async (local: DynamoDbLocal) => {
  const table = 'bench-latency';
  await createSourceTable(local.client, table);
  const sink = new AckTimesSink();
  const worker: Worker = await runWorker({
    metricsPort: false,
    app: defineApp({ table, routes: [route('*').to(sink)] }),
    leaseTable: 'bench-latency-leases',
    createLeaseTable: true,
    endpoint: local.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    pollIntervalMs: POLL_INTERVAL_MS,
    handleSignals: false,
    logger: createLogger({ level: 'warn', destination: pino.destination({ dest: 2, sync: true }) }),
  });
  const putAt = new Map<string, number>();
  const measured: string[] = [];
  const begin = Date.now();
  const total = Math.round(((WARM_UP_MS + SECONDS * 1000) / 1000) * RATE);
  const writes: Promise<unknown>[] = [];
  for (let n = 0; n < total; n++) {
    const due = begin + (n * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    const pk = `ITEM#${n}`;
    putAt.set(pk, Date.now());
    if (Date.now() - begin >= WARM_UP_MS) measured.push(pk);
    writes.push(put(local.client, table, pk));
  }
  await Promise.all(writes);
  const writeSeconds = (Date.now() - begin - WARM_UP_MS) / 1000;
  const deadline = Date.now() + 30_000;
  while (measured.some((pk) => !sink.ackedAt.has(pk)) && Date.now() < deadline) await sleep(50);
  await worker.stop();
  const latencies = measured.filter((pk) => sink.ackedAt.has(pk)).map((pk) => (sink.ackedAt.get(pk) as number) - (putAt.get(pk) as number));
  latencies.sort((a, b) => a - b);
  const missing = measured.length - latencies.length;
  if (missing > 0) throw new Error(`${missing} of ${measured.length} items were not delivered within 30 s`);
  return {
    writesPerSec: Math.round(measured.length / writeSeconds),
    items: measured.length,
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
  };
};

/** kill -9 or SIGTERM the owner of the shard, write an item, time until the survivor delivered it. */
const measureTakeovers = async (local: DynamoDbLocal, dir: string) => {
  const table = 'bench-takeover';
  const streamArn = await createSourceTable(local.client, table);
  const leaseTable = await createLeaseTable(local.client, 'bench-takeover-leases');
  const leases = dynamoDbLeaseStore({ tableName: leaseTable, client: local.client });
  const running: WorkerProcess[] = [];
  let generation = 0;
  const start = async () => {
    const workerId = `bench-${++generation}`;
    const p = spawnWorkerProcess({
      endpoint: local.endpoint,
      leaseTable,
      streamArns: [streamArn],
      output: join(dir, `${workerId}.ndjson`),
      workerId,
      leaseDurationMs: LEASE_DURATION_MS,
      pollIntervalMs: POLL_INTERVAL_MS,
      coordinationIntervalMs: COORDINATION_INTERVAL_MS,
      logFile: join(dir, `${workerId}.log`),
    });
    running.push(p);
    await p.ready;
  };
  const samples: Record<'SIGKILL' | 'SIGTERM', number[]> = { SIGKILL: [], SIGTERM: [] };
  try {
    await start();
    await start();
    let marker = 0;
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      for (let round = 1; round <= ROUNDS; round++) {
        // Wait until one of the two owns the shard and has read up to now.
        const pk = `WARM#${++marker}`;
        await put(local.client, table, pk);
        let owner: WorkerProcess | undefined;
        for (const until = Date.now() + 20_000; !owner; await sleep(20)) {
          if (Date.now() > until) throw new Error('no process owns the shard');
          const [lease] = await leases.list(streamArn);
          owner = running.find((p) => p.running && p.workerId === lease?.owner && readDeliveries(join(dir, `${p.workerId}.ndjson`)).some((d) => d.key === `${pk}|A`));
        }
        const survivor = running.find((p) => p.running && p !== owner) as WorkerProcess;
        const signalledAt = Date.now();
        owner.signal(signal);
        const probe = `PROBE#${++marker}`;
        await put(local.client, table, probe);
        const file = join(dir, `${survivor.workerId}.ndjson`);
        for (const until = Date.now() + 20_000; !readDeliveries(file).some((d) => d.key === `${probe}|A`); await sleep(10)) {
          if (Date.now() > until) throw new Error(`${signal}: the survivor did not deliver within 20 s`);
        }
        const tookMs = Date.now() - signalledAt;
        const exit = await owner.exited;
        samples[signal].push(tookMs);
        console.log(JSON.stringify({ part: signal === 'SIGKILL' ? 'failover' : 'handoff', round, signal, ms: tookMs, exit, leaseDurationMs: LEASE_DURATION_MS, coordinationIntervalMs: Math.round(COORDINATION_INTERVAL_MS), pollIntervalMs: POLL_INTERVAL_MS }));
        running.splice(running.indexOf(owner), 1);
        await start();
      }
    }
  } finally {
    await Promise.all(running.map((p) => p.kill()));
  }
  return { failoverMs: Math.max(...samples.SIGKILL), handoffMs: Math.max(...samples.SIGTERM) };
};

const main = async () => {
  const local = await startDynamoDbLocal();
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-bench-worker-'));
  try {
    const latency = await measureLatency(local);
    console.log(JSON.stringify({ part: 'latency', ...latency, pollIntervalMs: POLL_INTERVAL_MS, targetP99Ms: POLL_INTERVAL_MS + 250 }));
    const takeovers = await measureTakeovers(local, dir);
    console.log(
      JSON.stringify({
        bench: 'worker',
        writesPerSec: latency.writesPerSec,
        p50Ms: latency.p50Ms,
        p99Ms: latency.p99Ms,
        pollIntervalMs: POLL_INTERVAL_MS,
        failoverMs: takeovers.failoverMs,
        handoffMs: takeovers.handoffMs,
      }),
    );
  } finally {
    await local.stop();
    rmSync(dir, { recursive: true, force: true });
  }
};

await main();
