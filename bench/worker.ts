/**
 * Worker benchmark against DynamoDB Local. Prints JSON lines; the last one is
 *   {"bench":"worker","writesPerSec":N,"p50Ms":N,"p99Ms":N,"pollIntervalMs":N,"failoverMs":N,"handoffMs":N,"consumeVsBare":R}
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
 * - Consumption: 20,000 changes (2,000 items of about 300 B, 10 writes each: an insert, then
 *   modifies with both images) are written to a table first; then, in turn, each in a fresh plain
 *   `node` process:
 *   - bare: a loop of GetRecords calls (limit 1,000) on the table's shard from TRIM_HORIZON, each
 *     200 ms after the previous one started at the earliest (the service's 5 calls a second per
 *     shard, which the worker keeps too), timed from before DescribeStream and GetShardIterator
 *     until the last record came back. Nothing is done with the records.
 *   - worker: `runWorker` (defaults: pages of 1,000, one page per delivery, checkpoints every 5 s)
 *     with a new lease table, into a sink that JSON-serialises each request of up to 100 events
 *     and counts them, timed from the `runWorker` call to the acknowledgement of the last record
 *     (`startMs`: until `runWorker` resolved, its first discovery and lease take done).
 *     Measured is the built code: `src/` bundled once by esbuild (dependencies external) and run
 *     by plain `node`, not tsx-transformed sources.
 *   - slow sink: the worker again, with a sink whose requests take 50 ms (BENCH_SLOW_SINK_MS), about
 *     an AWS request's round trip: deliveries long enough that reading only after each one would
 *     fall behind the service's pace, which read-ahead is for. Reported as `slowSinkVsBare`.
 *   - unpaced: the bare loop without the 200 ms gap (what DynamoDB Local serves when asked as fast
 *     as it answers; the real service's limit would throttle it), for reference.
 *   Rounds are interleaved (bare, worker, slow sink, unpaced, bare, ...), each worker with a new
 *   lease table; `consumeVsBare` is the median worker records/s over the median bare records/s.
 *   Target: >= 0.9.
 *
 * Environment: BENCH_RATE (writes/s, default 50), BENCH_SECONDS (default 20), BENCH_ROUNDS (default 3),
 * BENCH_CONSUME_ROUNDS (default 5), BENCH_PARTS (default `latency,takeover,consume`: the parts to run;
 * the last line has the keys of those run), BENCH_CPU_PROF (a directory: the consumption's worker
 * processes write CPU profiles there, `node --cpu-prof`), BENCH_WORKER_SRC (the `src` directory to bundle for the
 * worker side, default this repository's: to measure another version of the reader),
 * BENCH_COMPARE_SRC (`name=directory,...`: more builds of the worker, each run in every round as
 * `worker@name` and `slowSink@name`, with a `consume-compare` line of their ratios).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { DynamoDBClient, WriteRequest } from '@aws-sdk/client-dynamodb';
import { BatchWriteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { build } from 'esbuild';
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
const CONSUME_ROUNDS = Number(process.env['BENCH_CONSUME_ROUNDS'] ?? 5);
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'latency,takeover,consume').split(','));
const CONSUME_CHANGES = 20_000;
const CONSUME_ITEMS = 2_000;
const MIN_READ_GAP_MS = 200;
const SLOW_SINK_MS = Number(process.env['BENCH_SLOW_SINK_MS'] ?? 50);
const repo = resolve(import.meta.dirname, '..');
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

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** `CONSUME_CHANGES` changes: every item written once per round, rounds in turn, 25 puts a request, a few requests at once. */
const preWrite = async (client: DynamoDBClient, table: string) => {
  const note = 'x'.repeat(200);
  for (let version = 1; version <= CONSUME_CHANGES / CONSUME_ITEMS; version++) {
    const requests: WriteRequest[][] = [];
    for (let i = 0; i < CONSUME_ITEMS; i += 25) {
      requests.push(
        Array.from({ length: Math.min(25, CONSUME_ITEMS - i) }, (_, j) => ({
          PutRequest: { Item: { PK: { S: `USER#${i + j}` }, SK: { S: 'TASK#1' }, Version: { N: String(version) }, Status: { S: version % 2 ? 'OPEN' : 'DONE' }, Note: { S: note } } },
        })),
      );
    }
    const send = async (items: WriteRequest[]) => {
      let left: WriteRequest[] | undefined = items;
      while (left && left.length > 0) left = (await client.send(new BatchWriteItemCommand({ RequestItems: { [table]: left } }))).UnprocessedItems?.[table];
    };
    for (let i = 0; i < requests.length; i += 8) await Promise.all(requests.slice(i, i + 8).map(send));
  }
};

/** Plain-node scripts for the consumption rounds; each prints one JSON line `{"records":N,"ms":N}`. */
const BARE_SCRIPT = `
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
const [endpoint, streamArn, expected, gapMs] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = performance.now();
const client = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 3 });
const shards = (await client.send(new DescribeStreamCommand({ StreamArn: streamArn }))).StreamDescription.Shards;
const shardId = shards[0].ShardId;
let iterator = (await client.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
let records = 0;
let calls = 0;
let last = -Infinity;
while (records < Number(expected) && iterator) {
  const wait = last + Number(gapMs) - performance.now();
  if (wait > 0) await sleep(wait);
  last = performance.now();
  const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
  calls++;
  records += page.Records.length;
  iterator = page.NextShardIterator;
}
const ms = performance.now() - t0;
client.destroy();
console.log(JSON.stringify({ records, ms, calls }));
`;

const WORKER_SCRIPT = `
import pino from 'pino';
import { createLogger, defineApp, route, runWorker } from './worker-bundle.mjs';
const [endpoint, streamArn, table, leaseTable, expected, latencyMs] = process.argv.slice(2);
let records = 0;
let lastAt = 0;
let done;
const finished = new Promise((r) => (done = r));
const sink = {
  name: 'count',
  limits: { maxRecords: 100, maxBytes: Infinity },
  preservesOrderWithinRequest: true,
  async send(events) {
    JSON.stringify(events);
    if (Number(latencyMs) > 0) await new Promise((r) => setTimeout(r, Number(latencyMs)));
    records += events.length;
    if (records >= Number(expected)) {
      lastAt = performance.now();
      done();
    }
    return { failed: [] };
  },
};
const t0 = performance.now();
const worker = await runWorker({
  app: defineApp({ table, routes: [route('*').to(sink)] }),
  streamArn,
  leaseTable,
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  metricsPort: false,
  handleSignals: false,
  logger: createLogger({ level: 'warn', destination: pino.destination({ dest: 2, sync: true }) }),
});
const startMs = performance.now() - t0;
await finished;
const ms = lastAt - t0;
await worker.stop();
console.log(JSON.stringify({ records, ms, startMs }));
process.exit(0);
`;

/** Runs one plain-node script of `dir` and returns its last stdout line, parsed. */
const runScript = (dir: string, script: string, args: readonly string[]) =>
  new Promise<{ records: number; ms: number; startMs?: number }>((resolvePromise, reject) => {
    const profile = process.env['BENCH_CPU_PROF'] && script === 'worker.mjs' ? ['--cpu-prof', '--cpu-prof-dir', resolve(process.env['BENCH_CPU_PROF'])] : [];
    const child = spawn(process.execPath, [...profile, join(dir, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`${script} exited with ${String(code)}: ${out}`));
      resolvePromise(JSON.parse(line) as { records: number; ms: number; startMs?: number });
    });
  });

/** Pre-writes the changes, then times the bare loop, the worker and the unpaced loop in turn (see the header). */
const measureConsumption = async (local: DynamoDbLocal) => {
  const table = 'bench-consume';
  const streamArn = await createSourceTable(local.client, table);
  const writeStart = Date.now();
  await preWrite(local.client, table);
  console.log(JSON.stringify({ part: 'consume-prewrite', changes: CONSUME_CHANGES, ms: Date.now() - writeStart }));
  const dir = join(repo, '.tmp', 'bench-worker');
  mkdirSync(dir, { recursive: true });
  // The worker's build under test ('' names it), and the builds it is compared with.
  const builds = new Map<string, string>([['', resolve(process.env['BENCH_WORKER_SRC'] ?? join(repo, 'src'))]]);
  for (const pair of (process.env['BENCH_COMPARE_SRC'] ?? '').split(',').filter(Boolean)) {
    const [name, path] = pair.split('=');
    if (!name || !path) throw new Error(`BENCH_COMPARE_SRC: expected name=directory pairs, got \`${pair}\``);
    builds.set(name, resolve(path));
  }
  for (const [name, src] of builds) {
    const bundle = `worker-bundle${name && `-${name}`}.mjs`;
    await build({
      stdin: {
        contents: `export { createLogger, defineApp, route } from ${JSON.stringify(join(src, 'index.ts'))};\nexport { runWorker } from ${JSON.stringify(join(src, 'worker', 'index.ts'))};\n`,
        resolveDir: repo,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: join(dir, bundle),
      logLevel: 'warning',
    });
    writeFileSync(join(dir, `worker${name && `-${name}`}.mjs`), WORKER_SCRIPT.replace('./worker-bundle.mjs', `./${bundle}`));
  }
  writeFileSync(join(dir, 'bare.mjs'), BARE_SCRIPT);
  const contenders = ['bare', ...[...builds.keys()].flatMap((name) => [`worker${name && `@${name}`}`, `slowSink${name && `@${name}`}`]), 'unpaced'];
  const rates = new Map<string, number[]>(contenders.map((c) => [c, []]));
  for (let round = 1; round <= CONSUME_ROUNDS; round++) {
    for (const contender of contenders) {
      const [kind, name = ''] = contender.split('@') as [string, string | undefined];
      const worker = kind === 'worker' || kind === 'slowSink';
      const leaseTable = worker ? await createLeaseTable(local.client, `bench-consume-leases-${round}-${contender.replace('@', '-')}`) : '';
      const result = worker
        ? await runScript(dir, `worker${name && `-${name}`}.mjs`, [local.endpoint, streamArn, table, leaseTable, String(CONSUME_CHANGES), String(kind === 'slowSink' ? SLOW_SINK_MS : 0)])
        : await runScript(dir, 'bare.mjs', [local.endpoint, streamArn, String(CONSUME_CHANGES), String(kind === 'bare' ? MIN_READ_GAP_MS : 0)]);
      if (result.records < CONSUME_CHANGES) throw new Error(`${contender}: ${result.records} of ${CONSUME_CHANGES} records`);
      const recordsPerSec = Math.round((result.records / result.ms) * 1000);
      rates.get(contender)?.push(recordsPerSec);
      const startMs = result.startMs === undefined ? {} : { startMs: Math.round(result.startMs) };
      console.log(JSON.stringify({ part: 'consume', round, contender, records: result.records, ms: Math.round(result.ms), recordsPerSec, ...startMs }));
    }
  }
  const medianOf = (contender: string) => median(rates.get(contender) ?? []);
  const bare = medianOf('bare');
  const ratio = (contender: string) => Math.round((medianOf(contender) / bare) * 100) / 100;
  for (const name of [...builds.keys()].filter(Boolean)) {
    console.log(JSON.stringify({ part: 'consume-compare', build: name, src: relative(repo, builds.get(name) ?? ''), workerRecordsPerSec: medianOf(`worker@${name}`), consumeVsBare: ratio(`worker@${name}`), slowSinkVsBare: ratio(`slowSink@${name}`) }));
  }
  return {
    bareRecordsPerSec: bare,
    workerRecordsPerSec: medianOf('worker'),
    slowSinkRecordsPerSec: medianOf('slowSink'),
    unpacedRecordsPerSec: medianOf('unpaced'),
    consumeVsBare: ratio('worker'),
    slowSinkVsBare: ratio('slowSink'),
    slowSinkMs: SLOW_SINK_MS,
  };
};

const main = async () => {
  const local = await startDynamoDbLocal();
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-bench-worker-'));
  try {
    const latency = PARTS.has('latency') ? await measureLatency(local) : undefined;
    if (latency) console.log(JSON.stringify({ part: 'latency', ...latency, pollIntervalMs: POLL_INTERVAL_MS, targetP99Ms: POLL_INTERVAL_MS + 250 }));
    const takeovers = PARTS.has('takeover') ? await measureTakeovers(local, dir) : undefined;
    const consumption = PARTS.has('consume') ? await measureConsumption(local) : undefined;
    if (consumption) console.log(JSON.stringify({ part: 'consume', ...consumption, changes: CONSUME_CHANGES, rounds: CONSUME_ROUNDS, target: 0.9 }));
    console.log(
      JSON.stringify({
        bench: 'worker',
        ...(latency ? { writesPerSec: latency.writesPerSec, p50Ms: latency.p50Ms, p99Ms: latency.p99Ms, pollIntervalMs: POLL_INTERVAL_MS } : {}),
        ...(takeovers ? { failoverMs: takeovers.failoverMs, handoffMs: takeovers.handoffMs } : {}),
        ...(consumption ? { consumeVsBare: consumption.consumeVsBare } : {}),
      }),
    );
  } finally {
    await local.stop();
    rmSync(dir, { recursive: true, force: true });
  }
};

await main();
