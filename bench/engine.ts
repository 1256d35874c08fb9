/**
 * Engine benchmark, measured on the BUILT output: this script (run by tsx) first compiles src/ with
 * `tsc -p tsconfig.build.json --outDir .tmp/bench-engine` and then imports the handler, the decoder
 * and the testing helpers from that JavaScript, so what is timed is the code users run (no tsx
 * transform of src/ in the measured path). `BENCH_NO_BUILD=1` reuses the last build;
 * `BENCH_DIST=<dir>` (with `BENCH_NO_BUILD=1`) measures another build, e.g. an older commit's.
 *
 * Throughput: a matrix of batch shapes, each through four contenders, interleaved within one run
 * (every round times each contender once, in a rotating order; medians of BENCH_RUNS rounds):
 * - ours: `createStreamHandler` (one `route('*')`) into an in-memory sink that JSON-serialises
 *   each event it gets (100 events a request, no latency);
 * - floor: a bare loop that unmarshalls each record with `@aws-sdk/util-dynamodb` (key and images,
 *   its other fields kept as they are) and JSON-serialises the result;
 * - Powertools `BatchProcessor` + `processPartialResponse`, sequential (`processInParallel: false`,
 *   which like us keeps the order) and parallel, with a record handler doing the floor's work;
 * - own decode floor: the floor's loop with dynamo-cdc's `decodeRecord` instead of `unmarshall`.
 * Shapes:
 * - `tiny-distinct`: 10,000 modifies of 10,000 different items of ~100 B;
 * - `hot-keys`: 10,000 changes of ~100 B over 10 items;
 * - `large-items`: 2,000 changes of ~20 KB items over 200 items;
 * - `default`: 10,000 changes of ~1.1 KB items over 500 items (the benchmark's shape before 2026-11-30);
 * - `remove-old-image`: 10,000 removes (half of them TTL expiries) of ~1.1 KB items, stream view OLD_IMAGE.
 * One JSON line per shape, then the latency part, then the last line: today's keys for the WORST
 * shape (the one furthest from its goals: lowest min(vsFloor / 0.8, vsPowertoolsSequential / 1.1)),
 * plus `worstShape` and `vsPowertoolsSequential`.
 *
 * `BENCH_CLOCK=cpu` times the throughput part by CPU time rather than wall time (see `cpuTime`).
 *
 * Latency-bound: 1,000 records over 100 keys, a sink that takes 10 ms per request and at most 10
 * records per request.
 * - sequential: in-order, record-by-record delivery.
 * - chain floor: the time ordering forces: 10 records per key one after another, 10 ms each = 100 ms.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Context, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type * as Root from '../src/index.js';
import type * as LambdaApi from '../src/lambda/index.js';
import type * as Testing from '../src/testing/index.js';
import type { LambdaStreamRecord } from '../src/testing/index.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);
const repo = resolve(import.meta.dirname, '..');
const out = resolve(repo, process.env['BENCH_DIST'] ?? '.tmp/bench-engine');

if (process.env['BENCH_NO_BUILD'] !== '1') {
  execFileSync(process.execPath, [resolve(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out], { cwd: repo, stdio: 'inherit' });
}
const load = async <T>(path: string): Promise<T> => (await import(pathToFileURL(resolve(out, path)).href)) as T;
const { decodeRecord, defineApp, route } = await load<typeof Root>('index.js');
const { createStreamHandler } = await load<typeof LambdaApi>('lambda/index.js');
const { MemoryProgressStore, silentLogger, streamRecords } = await load<typeof Testing>('testing/index.js');
type Sink = Root.Sink;

// ---- items of each shape ----

const taskItem = (k: number, version: number) => ({
  PK: `USER#${String(k).padStart(5, '0')}`,
  SK: `TASK#${String(k).padStart(8, '0')}`,
  TaskId: `task-${k}`,
  Status: (['OPEN', 'IN_PROGRESS', 'DONE'] as const)[version % 3],
  Version: version,
  Title: `Task ${k}: ${'ship the quarterly report to the finance team '.repeat(4)}`,
  Description: 'Collect the figures from every region, reconcile them with the ledger and write the summary. '.repeat(4),
  Tags: ['finance', 'quarterly', 'report', `team-${k % 17}`, 'priority'],
  Assignee: { name: `User ${k}`, email: `user${k}@example.com`, team: `team-${k % 17}` },
  Estimates: [1, 2, 3, 5, 8],
  Priority: k % 5,
  CreatedAt: '2026-01-01T00:00:00.000Z',
  UpdatedAt: `2026-01-01T00:00:${String(version % 60).padStart(2, '0')}.000Z`,
});

const tinyItem = (k: number, version: number) => ({
  PK: `ITEM#${k}`,
  SK: 'A',
  Status: (['OPEN', 'DONE'] as const)[version % 2],
  Version: version,
  Count: k % 1000,
});

const largeItem = (k: number, version: number) => ({
  PK: `ORDER#${String(k).padStart(6, '0')}`,
  SK: 'ORDER',
  Status: (['NEW', 'PACKED', 'SHIPPED'] as const)[version % 3],
  Version: version,
  Customer: { name: `Customer ${k}`, email: `c${k}@example.com`, address: { street: `${k} Main Street`, city: 'Springfield', zip: '12345' } },
  Notes: 'Deliver to the back door; ring twice and wait for an answer before leaving the parcel. '.repeat(20),
  Lines: Array.from({ length: 120 }, (_, j) => ({
    sku: `SKU-${String(j).padStart(5, '0')}`,
    name: `Product ${j} of the catalogue`,
    qty: (j + version) % 7,
    price: 9.99 + j,
    tags: ['a', 'b'],
  })),
  UpdatedAt: `2026-01-01T00:00:${String(version % 60).padStart(2, '0')}.000Z`,
});

/** `n` changes over `keys` items: an insert per item, then modifies with both images. */
const changes = (n: number, keys: number, item: (k: number, v: number) => Record<string, unknown>, modifyOnly = false): LambdaStreamRecord[] => {
  const records = streamRecords();
  return Array.from({ length: n }, (_, i) => {
    const k = i % keys;
    const v = Math.floor(i / keys) + (modifyOnly ? 1 : 0);
    return v === 0 ? records.insert(item(k, 0)) : records.modify(item(k, v - 1), item(k, v));
  });
};

const removes = (n: number): LambdaStreamRecord[] => {
  const records = streamRecords({ viewType: 'OLD_IMAGE' });
  return Array.from({ length: n }, (_, k) => records.remove(taskItem(k, 3), { ttl: k % 2 === 0 }));
};

const SHAPES: { name: string; batch: () => LambdaStreamRecord[] }[] = [
  { name: 'tiny-distinct', batch: () => changes(10_000, 10_000, tinyItem, true) },
  { name: 'hot-keys', batch: () => changes(10_000, 10, tinyItem) },
  { name: 'large-items', batch: () => changes(2_000, 200, largeItem) },
  { name: 'default', batch: () => changes(10_000, 500, taskItem) },
  { name: 'remove-old-image', batch: () => removes(10_000) },
];

const context = (): Context => ({ getRemainingTimeInMillis: () => 900_000, awsRequestId: 'bench' }) as unknown as Context;

/** The in-memory destination every contender writes to: it serialises what it gets, as a real sink would. */
class CollectingSink implements Sink {
  readonly name = 'memory';
  readonly limits = { maxRecords: 100, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = false;
  out: string[] = [];
  async send(events: readonly unknown[]) {
    for (const e of events) this.out.push(JSON.stringify(e));
    return { failed: [] };
  }
}

/**
 * The floor's decode: the stream record unmarshalled, every field kept (what any consumer needs to
 * carry: eventID, eventName, source ARN, region, time, sequence number, size, key, images).
 */
const decodeBare = (r: LambdaStreamRecord | DynamoDBRecord) => {
  const d = r.dynamodb as LambdaStreamRecord['dynamodb'];
  return {
    eventID: r.eventID,
    eventName: r.eventName,
    eventSourceARN: r.eventSourceARN,
    awsRegion: r.awsRegion,
    dynamodb: {
      ApproximateCreationDateTime: d.ApproximateCreationDateTime,
      SequenceNumber: d.SequenceNumber,
      SizeBytes: d.SizeBytes,
      StreamViewType: d.StreamViewType,
      Keys: unmarshall(d.Keys as never),
      NewImage: d.NewImage ? unmarshall(d.NewImage as never) : undefined,
      OldImage: d.OldImage ? unmarshall(d.OldImage as never) : undefined,
    },
  };
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * `BENCH_CLOCK=cpu` times the throughput contenders by the process's CPU time (user + system, the
 * collector's threads included) instead of wall time: on a machine shared with other jobs, waiting
 * for a core then moves no contender. Everything they do is CPU work (the sink has no latency).
 */
const CPU_CLOCK = process.env['BENCH_CLOCK'] === 'cpu';

const time = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};

const cpuTime = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
  const start = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
};

const r2 = (x: number) => Math.round(x * 100) / 100;

type Contender = 'ours' | 'floor' | 'powertoolsSequential' | 'powertoolsParallel' | 'ownDecodeFloor';

const throughput = async (shape: (typeof SHAPES)[number]) => {
  const batch = shape.batch();
  const event = { Records: batch };
  const bytes = batch.reduce((s, r) => s + JSON.stringify(r.dynamodb.NewImage ?? r.dynamodb.OldImage).length, 0) / batch.length;

  const sink = new CollectingSink();
  const handler = createStreamHandler(defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), { logger: silentLogger, progressStore: new MemoryProgressStore() });
  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  let ptOut: string[] = [];
  const recordHandler = async (r: DynamoDBRecord) => {
    ptOut.push(JSON.stringify(decodeBare(r)));
  };
  const powertools = (processInParallel: boolean) => async () => {
    ptOut = [];
    const res = await processPartialResponse(event as unknown as DynamoDBStreamEvent, recordHandler, processor, { context: context(), processInParallel });
    if (res.batchItemFailures.length > 0 || ptOut.length !== batch.length) throw new Error('Powertools lost records in the benchmark');
  };
  const contenders: Record<Contender, () => Promise<void> | void> = {
    ours: async () => {
      sink.out = [];
      const res = await handler(event, context());
      if (res.batchItemFailures.length > 0 || sink.out.length !== batch.length) throw new Error(`dynamo-cdc lost records in the benchmark (${shape.name})`);
    },
    floor: () => {
      const floorOut: string[] = [];
      for (const r of batch) floorOut.push(JSON.stringify(decodeBare(r)));
      if (floorOut.length !== batch.length) throw new Error('floor lost records');
    },
    powertoolsSequential: powertools(false),
    powertoolsParallel: powertools(true),
    // Our own decoder in the same bare loop: the gap between this and the handler is what lanes,
    // routing, batching and acknowledgement cost.
    ownDecodeFloor: () => {
      const ownOut: string[] = [];
      for (const r of batch) ownOut.push(JSON.stringify(decodeRecord(r)));
      if (ownOut.length !== batch.length) throw new Error('own floor lost records');
    },
  };
  const names = Object.keys(contenders) as Contender[];

  for (let i = 0; i < 3; i++) for (const name of names) await contenders[name]();
  const t = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Contender, number[]>;
  for (let i = 0; i < RUNS; i++) {
    // A rotating order, so that no contender always runs right after the same one (and its garbage).
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length] as Contender;
      t[name].push(await (CPU_CLOCK ? cpuTime : time)(contenders[name]));
    }
  }
  const perSec = (name: Contender) => Math.round(batch.length / (median(t[name]) / 1000));
  const rates = Object.fromEntries(names.map((n) => [n, perSec(n)])) as Record<Contender, number>;
  return {
    part: 'throughput',
    shape: shape.name,
    clock: CPU_CLOCK ? 'cpu' : 'wall',
    records: batch.length,
    itemBytes: Math.round(bytes),
    recordsPerSec: rates.ours,
    floorRecordsPerSec: rates.floor,
    powertoolsSequentialRecordsPerSec: rates.powertoolsSequential,
    powertoolsParallelRecordsPerSec: rates.powertoolsParallel,
    ownDecodeFloorRecordsPerSec: rates.ownDecodeFloor,
    vsFloor: r2(rates.ours / rates.floor),
    vsPowertoolsSequential: r2(rates.ours / rates.powertoolsSequential),
    vsPowertoolsParallel: r2(rates.ours / rates.powertoolsParallel),
    vsOwnDecodeFloor: r2(rates.ours / rates.ownDecodeFloor),
  };
};

/** A sink whose every request takes 10 ms of real time and carries at most 10 records. */
class SlowSink implements Sink {
  readonly name = 'slow';
  readonly limits = { maxRecords: 10, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = false;
  requests = 0;
  delivered = 0;
  async send(events: readonly unknown[]) {
    this.requests++;
    await new Promise((resolve) => setTimeout(resolve, 10));
    this.delivered += events.length;
    return { failed: [] };
  }
}

const latencyBound = async () => {
  const batch = changes(1000, 100, taskItem);
  const sink = new SlowSink();
  const handler = createStreamHandler(defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), { logger: silentLogger });
  const oursRuns: number[] = [];
  for (let i = 0; i < 5; i++) {
    sink.delivered = 0;
    oursRuns.push(await time(() => handler({ Records: batch }, context())));
    if (sink.delivered !== 1000) throw new Error('dynamo-cdc lost records in the latency benchmark');
  }
  const ours = median(oursRuns);
  const sequentialSink = new SlowSink();
  const sequential = await time(async () => {
    for (const r of batch) await sequentialSink.send([decodeBare(r)]);
  });
  return { oursMs: Math.round(ours), sequentialMs: Math.round(sequential), chainFloorMs: 100, requests: sink.requests / oursRuns.length };
};

const main = async () => {
  const only = process.env['BENCH_SHAPES']?.split(',');
  const results: Awaited<ReturnType<typeof throughput>>[] = [];
  for (const shape of SHAPES) {
    if (only && !only.includes(shape.name)) continue;
    const tp = await throughput(shape);
    console.log(JSON.stringify(tp));
    results.push(tp);
  }
  const lb = await latencyBound();
  console.log(JSON.stringify({ part: 'latency', ...lb }));
  const margin = (tp: (typeof results)[number]) => Math.min(tp.vsFloor / 0.8, tp.vsPowertoolsSequential / 1.1);
  const worst = results.reduce((a, b) => (margin(b) < margin(a) ? b : a));
  console.log(
    JSON.stringify({
      bench: 'engine',
      recordsPerSec: worst.recordsPerSec,
      vsFloor: worst.vsFloor,
      vsPowertoolsParallel: worst.vsPowertoolsParallel,
      vsOwnDecodeFloor: worst.vsOwnDecodeFloor,
      speedupVsSequential: r2(lb.sequentialMs / lb.oursMs),
      vsChainFloor: r2(lb.oursMs / lb.chainFloorMs),
      worstShape: worst.shape,
      vsPowertoolsSequential: worst.vsPowertoolsSequential,
    }),
  );
};

await main();
