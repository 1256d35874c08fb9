/**
 * The fleet simulation checked against the real service API: worker processes on DynamoDB Local
 * (test/support/worker-process.ts), several source tables standing in for shards (DynamoDB Local
 * gives each table's stream one shard), and the same small fleet simulated in this process on the
 * memory lease table, with the same options, writes and duration. Prints JSON lines; the last is
 *   {"bench":"scale-local","processes":N,"tables":N,"seconds":N,"real":{...},"simulated":{...},"ratio":{...}}
 * where `real` and `simulated` count lease-store calls per method (and, for the real run, the
 * DynamoDB commands and the capacity units DynamoDB Local reports), and `ratio` is real / simulated.
 *
 * Environment: LOCAL_PROCESSES (default 3), LOCAL_TABLES (8), LOCAL_SECONDS (60), LOCAL_LEASE_MS (2000).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { defineApp, route } from '../src/index.js';
import type { Sink } from '../src/index.js';
import { startDynamoDbLocal } from '../src/local/dynamodb-local.js';
import { createLeaseTable, createSourceTable } from '../src/local/tables.js';
import { MemoryLeaseStore, ScriptedStreams, silentLogger, streamRecords } from '../src/testing/index.js';
import { Worker } from '../src/worker/worker.js';
import { spawnWorkerProcess } from '../test/support/spawn-worker-process.js';
import type { WorkerProcess } from '../test/support/spawn-worker-process.js';
import { HeapClock } from './scale-clock.js';

const env = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a number > 0, got \`${String(process.env[name])}\``);
  return value;
};

const PROCESSES = env('LOCAL_PROCESSES', 3);
const TABLES = env('LOCAL_TABLES', 8);
const SECONDS = env('LOCAL_SECONDS', 60);
const D = env('LOCAL_LEASE_MS', 2000);
/** The library's defaults for this lease duration, given explicitly to the processes. */
const OPTIONS = { leaseDurationMs: D, coordinationIntervalMs: Math.min(1000, D / 3), pollIntervalMs: 250, checkpointIntervalMs: 1000 };
/** One PutItem per table this often. */
const WRITE_EVERY_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Counts = Record<string, number>;

const real = async (dir: string) => {
  const local = await startDynamoDbLocal();
  try {
    const tables = Array.from({ length: TABLES }, (_, i) => `scale-local-${i}`);
    const streamArns = await Promise.all(tables.map((t) => createSourceTable(local.client, t)));
    const leaseTable = await createLeaseTable(local.client, 'scale-local-leases');
    const processes: WorkerProcess[] = [];
    for (let p = 0; p < PROCESSES; p++) {
      processes.push(
        spawnWorkerProcess({
          endpoint: local.endpoint,
          leaseTable,
          streamArns,
          output: join(dir, `w${p}.ndjson`),
          workerId: `w${p}`,
          ...OPTIONS,
          logLevel: 'warn',
          logFile: join(dir, `w${p}.log`),
          leaseCallsFile: join(dir, `w${p}.calls.json`),
        }),
      );
    }
    await Promise.all(processes.map((p) => p.ready));
    const begin = Date.now();
    let n = 0;
    while (Date.now() - begin < SECONDS * 1000) {
      await Promise.all(tables.map((table) => local.client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: `ITEM#${n}` }, SK: { S: 'A' } } }))));
      n++;
      await sleep(Math.max(0, begin + n * WRITE_EVERY_MS - Date.now()));
    }
    const seconds = (Date.now() - begin) / 1000;
    await Promise.all(processes.map((p) => p.stop('SIGTERM', 10_000)));
    const methods: Counts = {};
    const commands: Counts = {};
    let readUnits = 0;
    let writeUnits = 0;
    for (let p = 0; p < PROCESSES; p++) {
      const calls = JSON.parse(readFileSync(join(dir, `w${p}.calls.json`), 'utf8')) as { methods: Counts; commands: Counts; readUnits: number; writeUnits: number };
      for (const [k, v] of Object.entries(calls.methods)) methods[k] = (methods[k] ?? 0) + v;
      for (const [k, v] of Object.entries(calls.commands)) commands[k] = (commands[k] ?? 0) + v;
      readUnits += calls.readUnits;
      writeUnits += calls.writeUnits;
    }
    return { seconds, writes: n * TABLES, methods, commands, readUnits: Math.round(readUnits * 10) / 10, writeUnits: Math.round(writeUnits * 10) / 10 };
  } finally {
    await local.stop();
  }
};

/** The same fleet in this process: PROCESSES members, each with one Worker per stream, on virtual time. */
const simulated = async (seconds: number) => {
  const clock = new HeapClock({ quantumMs: 1 });
  const store = new MemoryLeaseStore();
  const nullSink: Sink = { name: 'null', limits: { maxRecords: 1000, maxBytes: Infinity }, preservesOrderWithinRequest: true, send: async () => ({ failed: [] }) };
  const streams = Array.from({ length: TABLES }, (_, i) => {
    const records = streamRecords({ table: `scale-local-${i}` });
    return { records, api: new ScriptedStreams({ streamArn: records.streamArn }).addShard({ shardId: 'shardId-0' }) };
  });
  const workers: Worker[] = [];
  for (let p = 0; p < PROCESSES; p++) {
    for (const { records, api } of streams) {
      workers.push(new Worker({ app: defineApp({ table: 'T', routes: [route('*').to(nullSink)] }), streamArn: records.streamArn, streams: api, leases: store, workerId: `w${p}`, logger: silentLogger, clock, ...OPTIONS }));
    }
  }
  await Promise.all(workers.map((w) => w.start()));
  const begin = clock.now();
  let n = 0;
  while (clock.now() - begin < seconds * 1000) {
    for (const { records, api } of streams) api.append('shardId-0', [records.insert({ PK: `ITEM#${n}`, SK: 'A' })]);
    n++;
    await clock.sleep(begin + n * WRITE_EVERY_MS - clock.now());
  }
  await Promise.all(workers.map((w) => w.stop()));
  const methods = Object.fromEntries(Object.entries(store.calls).filter(([, v]) => v > 0));
  return { seconds, writes: n * TABLES, methods, readUnits: store.capacity.read, writeUnits: store.capacity.write };
};

const main = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scale-local-'));
  try {
    const r = await real(dir);
    console.log(JSON.stringify({ run: 'real', ...r }));
    const s = await simulated(r.seconds);
    console.log(JSON.stringify({ run: 'simulated', ...s }));
    const ratio = Object.fromEntries(
      [...new Set([...Object.keys(r.methods), ...Object.keys(s.methods)])].sort().map((k) => [k, Math.round(((r.methods[k] ?? 0) / Math.max(1, s.methods[k as keyof typeof s.methods] ?? 0)) * 100) / 100]),
    );
    console.log(JSON.stringify({ bench: 'scale-local', processes: PROCESSES, tables: TABLES, seconds: Math.round(r.seconds), real: r.methods, simulated: s.methods, ratio, realUnits: { read: r.readUnits, write: r.writeUnits }, simulatedUnits: { read: s.readUnits, write: s.writeUnits } }));
  } finally {
    if (!process.env["LOCAL_KEEP"]) rmSync(dir, { recursive: true, force: true });
    else console.error(dir);
  }
};

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
