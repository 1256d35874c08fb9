/**
 * Engine benchmark. Prints one JSON object as its last line:
 *   {"bench":"engine","recordsPerSec":N,"vsFloor":R,"vsPowertoolsParallel":R,"speedupVsSequential":R,"vsChainFloor":R}
 * Every ratio compares against a baseline measured in this same run, so a busy machine moves both.
 *
 * Throughput: a 10,000-record Lambda batch (items of about 1 KB, 500 keys, NEW_AND_OLD_IMAGES)
 * through the Lambda handler into an in-memory sink with no latency that JSON-serialises what it gets.
 * - floor: a bare loop that unmarshalls each record (key and images; its other fields kept as they are)
 *   and JSON-serialises the result.
 * - Powertools: `processPartialResponse` (parallel) with a record handler doing the same decode and push.
 * - own decode floor: the same bare loop with dynamo-cdc's `decodeRecord` instead of `unmarshall`;
 *   the handler over this is the price of lanes, routing, batching and acknowledgement alone.
 * Latency-bound: 1,000 records over 100 keys, a sink that takes 10 ms per request and at most 10
 * records per request.
 * - sequential: in-order, record-by-record delivery.
 * - chain floor: the time ordering forces: 10 records per key one after another, 10 ms each = 100 ms.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Context, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { decodeRecord, defineApp, route } from '../src/index.js';
import type { Sink } from '../src/index.js';
import { createStreamHandler } from '../src/lambda/index.js';
import { MemoryProgressStore, silentLogger, streamRecords } from '../src/testing/index.js';
import type { LambdaStreamRecord } from '../src/testing/index.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);

const item = (k: number, version: number) => ({
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

const makeBatch = (n: number, keys: number): LambdaStreamRecord[] => {
  const records = streamRecords();
  return Array.from({ length: n }, (_, i) => {
    const k = i % keys;
    const v = Math.floor(i / keys);
    return v === 0 ? records.insert(item(k, 0)) : records.modify(item(k, v - 1), item(k, v));
  });
};

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

const time = async (fn: () => Promise<unknown> | unknown): Promise<number> => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};

const throughput = async () => {
  const batch = makeBatch(10_000, 500);
  const event = { Records: batch };
  const bytes = batch.reduce((s, r) => s + JSON.stringify(r.dynamodb.NewImage).length, 0) / batch.length;

  const sink = new CollectingSink();
  const handler = createStreamHandler(defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), { logger: silentLogger, progressStore: new MemoryProgressStore() });
  const ours = async () => {
    sink.out = [];
    const res = await handler(event, context());
    if (res.batchItemFailures.length > 0 || sink.out.length !== batch.length) throw new Error('dynamo-cdc lost records in the benchmark');
  };

  // Our own decoder in the same bare loop: the gap between this and the handler is what lanes,
  // routing, batching and acknowledgement cost.
  let ownOut: string[] = [];
  const ownFloor = () => {
    ownOut = [];
    for (const r of batch) ownOut.push(JSON.stringify(decodeRecord(r)));
    if (ownOut.length !== batch.length) throw new Error('own floor lost records');
  };

  let floorOut: string[] = [];
  const floor = () => {
    floorOut = [];
    for (const r of batch) floorOut.push(JSON.stringify(decodeBare(r)));
    if (floorOut.length !== batch.length) throw new Error('floor lost records');
  };

  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  let ptOut: string[] = [];
  const recordHandler = async (r: DynamoDBRecord) => {
    ptOut.push(JSON.stringify(decodeBare(r)));
  };
  const powertools = async () => {
    ptOut = [];
    const res = await processPartialResponse(event as unknown as DynamoDBStreamEvent, recordHandler, processor, { context: context(), processInParallel: true });
    if (res.batchItemFailures.length > 0 || ptOut.length !== batch.length) throw new Error('Powertools lost records in the benchmark');
  };

  // Warm up all three, then interleave the runs so drift on a shared machine hits each alike.
  for (let i = 0; i < 3; i++) {
    await ours();
    floor();
    await powertools();
    ownFloor();
  }
  const t = { ours: [] as number[], floor: [] as number[], powertools: [] as number[], own: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    t.ours.push(await time(ours));
    t.floor.push(await time(floor));
    t.powertools.push(await time(powertools));
    t.own.push(await time(ownFloor));
  }
  const perSec = (ms: number) => batch.length / (ms / 1000);
  return {
    itemBytes: Math.round(bytes),
    recordsPerSec: Math.round(perSec(median(t.ours))),
    floorRecordsPerSec: Math.round(perSec(median(t.floor))),
    powertoolsRecordsPerSec: Math.round(perSec(median(t.powertools))),
    ownDecodeFloorRecordsPerSec: Math.round(perSec(median(t.own))),
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
  const batch = makeBatch(1000, 100);
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
  const tp = await throughput();
  console.log(JSON.stringify({ part: 'throughput', ...tp }));
  const lb = await latencyBound();
  console.log(JSON.stringify({ part: 'latency', ...lb }));
  const r = (x: number) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify({
      bench: 'engine',
      recordsPerSec: tp.recordsPerSec,
      vsFloor: r(tp.recordsPerSec / tp.floorRecordsPerSec),
      vsPowertoolsParallel: r(tp.recordsPerSec / tp.powertoolsRecordsPerSec),
      vsOwnDecodeFloor: r(tp.recordsPerSec / tp.ownDecodeFloorRecordsPerSec),
      speedupVsSequential: r(lb.sequentialMs / lb.oursMs),
      vsChainFloor: r(lb.oursMs / lb.chainFloorMs),
    }),
  );
};

await main();
