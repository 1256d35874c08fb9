/**
 * Backfill benchmark against DynamoDB Local. Prints JSON lines; the last one is
 *   {"bench":"backfill","items":N,"itemsPerSec":N,"vsBareScan":R,"replicaDiffs":0}
 *
 * - A table of BENCH_ITEMS items (default 100,000, about 300 bytes each) is filled.
 * - Bare Scan: a parallel Scan loop with BENCH_SEGMENTS segments (default 4) that only counts the
 *   items of each page: the ceiling the backfill is measured against.
 * - Backfill: `backfill()` with the same segments into a sink that applies every event to an
 *   in-memory projection (a new backfill each run).
 * - Both warm up (the backfill on a small table of its own, the bare Scan three times on the
 *   measured table: DynamoDB Local's JIT keeps warming), then run BENCH_RUNS times (default 5)
 *   in turn, which one first alternating, in this process, against the same DynamoDB Local. `vsBareScan` is the median over the
 *   runs of (backfill items/s / the bare Scan's items/s just before it): the machine's load drifts
 *   between runs, so each backfill is compared with its neighbour. `itemsPerSec` is the median of
 *   the backfill runs. Goal >= 0.8.
 * - During both measured runs a writer updates, deletes and adds items at BENCH_WRITE_RATE writes/s
 *   (default 100), so the backfill runs against a table that changes under it. Each run's line
 *   gives this process's CPU time (`nodeCpuMs`): DynamoDB Local runs on the same cores.
 * - Then a worker on the backfill's lease table reads the stream (from the leases the backfill put
 *   at TRIM_HORIZON) until it has delivered every change written, and the projection, built by the
 *   rule of docs/backfill.md (versions: a change's creation time, a backfilled item's
 *   `backfillVersion`), is compared with the table: `replicaDiffs` must be 0.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteItemCommand, DeleteItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import pino from 'pino';
import { backfill } from '../src/backfill/index.js';
import { createLogger, defineApp, route } from '../src/index.js';
import type { ChangeEvent, Sink } from '../src/index.js';
import { startDynamoDbLocal } from '../src/local/dynamodb-local.js';
import { createLeaseTable, createSourceTable } from '../src/local/tables.js';
import { runWorker } from '../src/worker/index.js';
import { BackfillProjection, scanTable } from '../test/support/backfill-projection.js';

const ITEMS = Number(process.env['BENCH_ITEMS'] ?? 100_000);
const SEGMENTS = Number(process.env['BENCH_SEGMENTS'] ?? 4);
const WRITE_RATE = Number(process.env['BENCH_WRITE_RATE'] ?? 100);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/** This process's CPU time (user + system) in a `process.cpuUsage()` delta, ms. */
const cpuMs = (usage: NodeJS.CpuUsage): number => Math.round((usage.user + usage.system) / 1000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const body = 'x'.repeat(240);

const fill = async (client: DynamoDBClient, table: string, items = ITEMS): Promise<void> => {
  const batches: Promise<unknown>[] = [];
  for (let start = 0; start < items; start += 25) {
    const puts = Array.from({ length: Math.min(25, items - start) }, (_, i) => ({
      PutRequest: { Item: { PK: { S: `USER#${start + i}` }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' }, Version: { N: '1' }, Body: { S: body } } },
    }));
    batches.push(client.send(new BatchWriteItemCommand({ RequestItems: { [table]: puts } })));
    if (batches.length >= 8) await Promise.all(batches.splice(0));
  }
  await Promise.all(batches);
};

/** Writes at a steady rate until stopped; counts the writes, each of which makes one stream record. */
class Writer {
  writes = 0;
  #stop = false;
  #done: Promise<void> | undefined;
  #next = 0;
  readonly #deleted = new Set<number>();

  start(client: DynamoDBClient, table: string): void {
    this.#stop = false;
    this.#done = (async () => {
      const begin = Date.now();
      let n = 0;
      while (!this.#stop) {
        if (WRITE_RATE <= 0) break;
        const due = begin + (n * 1000) / WRITE_RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        n++;
        const op = this.#next++ % 10;
        // Updates always change the item (Version + 1) and deletes hit live items: every write is one stream record.
        let k = (this.#next * 7919) % ITEMS;
        while (this.#deleted.has(k)) k = (k + 1) % ITEMS;
        const key = { PK: { S: `USER#${k}` }, SK: { S: 'TASK#1' } };
        if (op < 7) {
          await client.send(new UpdateItemCommand({ TableName: table, Key: key, UpdateExpression: 'SET Version = Version + :one, #s = :s', ExpressionAttributeNames: { '#s': 'Status' }, ExpressionAttributeValues: { ':one': { N: '1' }, ':s': { S: 'DONE' } } }));
        } else if (op < 8) {
          this.#deleted.add(k);
          await client.send(new DeleteItemCommand({ TableName: table, Key: key }));
        } else {
          await client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: `NEW#${this.#next}` }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' }, Version: { N: '1' }, Body: { S: body } } }));
        }
        this.writes++;
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

const bareScan = async (client: DynamoDBClient, table: string): Promise<{ items: number; ms: number }> => {
  const started = Date.now();
  const counts = await Promise.all(
    Array.from({ length: SEGMENTS }, async (_, segment) => {
      let items = 0;
      let start: Record<string, AttributeValue> | undefined;
      do {
        const page = await client.send(new ScanCommand({ TableName: table, Segment: segment, TotalSegments: SEGMENTS, ReturnConsumedCapacity: 'TOTAL', ExclusiveStartKey: start }));
        items += page.Items?.length ?? 0;
        start = page.LastEvaluatedKey;
      } while (start);
      return items;
    }),
  );
  return { items: counts.reduce((a, b) => a + b, 0), ms: Date.now() - started };
};

/** Applies every event to the projection; counts stream changes. */
class ProjectionSink implements Sink {
  readonly name = 'projection';
  readonly limits = { maxRecords: 500, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = true;
  readonly projection = new BackfillProjection();
  async send(events: readonly ChangeEvent[]) {
    for (const e of events) this.projection.apply(e);
    return { failed: [] };
  }
}

const main = async () => {
  const local = await startDynamoDbLocal();
  const { client, endpoint } = local;
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const logger = createLogger({ level: 'warn', destination: pino.destination({ dest: 2, sync: true }) });
  try {
    const table = 'bench-backfill';
    const streamArn = await createSourceTable(client, table);
    const leaseTable = await createLeaseTable(client, 'bench-backfill-leases');
    await fill(client, table);
    console.log(JSON.stringify({ part: 'fill', items: ITEMS }));

    // Warm-up of both contenders on a small table of their own.
    const warmTable = 'bench-backfill-warm';
    await createSourceTable(client, warmTable);
    await fill(client, warmTable, 4000);
    await bareScan(client, warmTable);
    const warmSink = new ProjectionSink();
    await backfill({ app: defineApp({ table: warmTable, routes: [route('*').to(warmSink)] }), leaseTable, segments: SEGMENTS, endpoint, region: 'us-east-1', credentials, logger });

    const sink = new ProjectionSink();
    const app = defineApp({ table, routes: [route('*').to(sink)] });
    const writer = new Writer();
    const bareRates: number[] = [];
    const rates: number[] = [];
    let items = 0;
    // DynamoDB Local's JIT keeps warming for a while: a few Scans of the measured table first.
    for (let i = 0; i < 3; i++) await bareScan(client, table);
    const measureBare = async (run: number) => {
      const before = writer.writes;
      const cpu = process.cpuUsage();
      writer.start(client, table);
      const bare = await bareScan(client, table);
      await writer.stop();
      bareRates.push((bare.items / bare.ms) * 1000);
      console.log(JSON.stringify({ part: 'bare-scan', run, segments: SEGMENTS, items: bare.items, ms: bare.ms, itemsPerSec: Math.round(bareRates.at(-1) as number), nodeCpuMs: cpuMs(process.cpuUsage(cpu)), writesDuring: writer.writes - before }));
    };
    const measureBackfill = async (run: number) => {
      const before = writer.writes;
      const cpu = process.cpuUsage();
      writer.start(client, table);
      const result = await backfill({ app, leaseTable, streamArn, segments: SEGMENTS, endpoint, region: 'us-east-1', credentials, logger, resume: false });
      await writer.stop();
      rates.push((result.items / result.durationMs) * 1000);
      items = result.items;
      console.log(JSON.stringify({ part: 'backfill', run, id: result.id, segments: SEGMENTS, items: result.items, ms: result.durationMs, itemsPerSec: Math.round(rates.at(-1) as number), consumedReadUnits: result.consumedReadUnits, nodeCpuMs: cpuMs(process.cpuUsage(cpu)), writesDuring: writer.writes - before }));
    };
    // Alternate which goes first, so a drift of the machine's speed favours neither.
    for (let run = 1; run <= RUNS; run++) {
      if (run % 2 === 1) {
        await measureBare(run);
        await measureBackfill(run);
      } else {
        await measureBackfill(run);
        await measureBare(run);
      }
    }
    const rate = median(rates);
    const vsBareScan = median(rates.map((r, i) => r / (bareRates[i] as number)));

    // Every write (the fill, and the writer's during both runs) is one stream record: wait for all of them.
    const expected = ITEMS + writer.writes;
    const worker = await runWorker({ app, leaseTable, streamArn, endpoint, region: 'us-east-1', credentials, logger, handleSignals: false, metricsPort: false, pollIntervalMs: 100, batchSize: 5000 });
    const caughtUpStart = Date.now();
    try {
      for (const until = Date.now() + 300_000; sink.projection.changes < expected; await sleep(200)) {
        if (Date.now() > until) throw new Error(`the worker delivered ${sink.projection.changes} of ${expected} stream changes within 300 s`);
      }
    } finally {
      await worker.stop();
    }
    const diff = sink.projection.diff(await scanTable(client, table));
    console.log(JSON.stringify({ part: 'stream', changes: sink.projection.changes, expected, ms: Date.now() - caughtUpStart, replicaDiffs: diff.guarded, lastWriteWinsDiffs: diff.lastWriteWins, examples: diff.examples }));
    console.log(JSON.stringify({ bench: 'backfill', items, itemsPerSec: Math.round(rate), vsBareScan: Math.round(vsBareScan * 100) / 100, replicaDiffs: diff.guarded }));
  } finally {
    await local.stop();
  }
};

await main();
