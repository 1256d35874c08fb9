/**
 * S3 export throughput: uncompressed NDJSON bytes acknowledged per second when 10,000 change
 * events of about 1 KB each (one per item, so every lane holds one record) go through the engine
 * into `s3Export` writing to s3rver in this process. The clock runs from `engine.process` to its
 * outcome, so it covers serialising, gzip, the PutObject round trips and s3rver's disk writes.
 * s3rver is far slower than S3 per request and has no network in between: read the figure as a
 * regression guard for this code, not as a prediction of S3's throughput.
 *
 * Objects per 100,000 changes ({@link measureWorkerS3Objects}): a real `Worker` reads a scripted
 * stream (one shard) that gets changes at a steady rate, on a virtual clock that stands still while
 * an S3 write is in flight, and exports them with `s3Export` (default rollover) to s3rver; the
 * figure is the objects written once every change is acknowledged, with the worker's default
 * batching (one GetRecords page per delivery) and with a batching window.
 *
 * `bench/sinks.ts` calls both; run on its own this file prints one JSON line:
 *   {"bench":"s3-export","s3BytesPerSec":N,...,"s3ObjectsPer100kDefault":N,"s3ObjectsPer100kWindowed":N}
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../src/core/clock.js';
import { decodeRecord, defineApp, Engine, route } from '../src/index.js';
import type { ChangeEvent, Clock, Sink } from '../src/index.js';
import { startS3rver } from '../src/local/s3rver.js';
import { s3Export } from '../src/sinks/s3/index.js';
import type { S3ExportRollover } from '../src/sinks/s3/index.js';
import { MemoryLeaseStore, silentLogger, streamRecords, toGetRecordsShape } from '../src/testing/index.js';
import type { LambdaStreamRecord } from '../src/testing/index.js';
import type { IteratorPosition, RecordsPage, ShardDescription, StreamsApi } from '../src/worker/ports.js';
import { Worker } from '../src/worker/worker.js';

const BUCKET = 'bench-lake';

/** Options of {@link measureS3Export}; the defaults are what `npm run bench:sinks` measures. */
export interface MeasureS3ExportOptions {
  /** @default 10_000 */
  readonly events?: number;
  /** Target bytes of one NDJSON line. @default 1024 */
  readonly lineBytes?: number;
  /** @default true */
  readonly gzip?: boolean;
  /**
   * @default the sink's defaults: each request leaves once the lanes
   * in flight (the app's `concurrency`) have added to it, so the figure measures writing rather
   * than waiting for the age rollover
   */
  readonly rollover?: S3ExportRollover;
}

export interface S3ExportMeasurement {
  /** Uncompressed NDJSON bytes acknowledged per second through the engine. */
  readonly s3BytesPerSec: number;
  readonly events: number;
  /** Uncompressed NDJSON bytes of all lines. */
  readonly bytes: number;
  /** Bytes stored (compressed when `gzip`). */
  readonly storedBytes: number;
  readonly objects: number;
  readonly ms: number;
}

const makeRecords = (n: number, lineBytes: number) => {
  const records = streamRecords();
  const make = (i: number, body: string) => records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1, Body: body });
  // The line without a body, to size the body so the whole line is about `lineBytes`.
  const probe = s3Export({ bucket: BUCKET });
  const overhead = probe.sizeOf(decodeRecord(streamRecords().insert({ PK: `USER#${n}`, SK: `TASK#${n}`, Status: 'OPEN', Version: 1, Body: '' })));
  probe.client.destroy();
  // Multi-byte text, as user data holds: 14 bytes a unit, padded with ASCII to the exact size.
  const unit = 'änderung-✓-';
  const target = Math.max(0, lineBytes - overhead);
  const units = Math.floor(target / Buffer.byteLength(unit));
  const body = unit.repeat(units) + 'x'.repeat(target - units * Buffer.byteLength(unit));
  return Array.from({ length: n }, (_, i) => make(i, body));
};

/** Runs the measurement against a fresh s3rver and stops it afterwards. */
export const measureS3Export = async (options: MeasureS3ExportOptions = {}): Promise<S3ExportMeasurement> => {
  const n = options.events ?? 10_000;
  const records = makeRecords(n, options.lineBytes ?? 1024);
  const s3 = await startS3rver({ buckets: [BUCKET] });
  try {
    const sink = s3Export({ bucket: BUCKET, prefix: 'bench/', client: s3.client, gzip: options.gzip ?? true, rollover: options.rollover ?? {} });
    const bytes = records.reduce((sum, r) => sum + sink.sizeOf(decodeRecord(r)), 0);
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: silentLogger, clock: systemClock });

    const started = performance.now();
    const outcome = await engine.process(records);
    const ms = performance.now() - started;
    if (outcome.counts.delivered !== n) throw new Error(`s3-export: ${outcome.counts.delivered} of ${n} delivered`);

    let objects = 0;
    let storedBytes = 0;
    let token: string | undefined;
    do {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'bench/', ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        objects++;
        storedBytes += o.Size ?? 0;
      }
      token = page.NextContinuationToken;
    } while (token);
    return { s3BytesPerSec: Math.round(bytes / (ms / 1000)), events: n, bytes, storedBytes, objects, ms: Math.round(ms) };
  } finally {
    await s3.stop();
  }
};

/**
 * Virtual time, as `FakeClock` (it jumps to the next timer once the process has been quiet for a
 * few event-loop turns) but standing still while work it is told about (`during`) is in flight:
 * S3 writes go through real sockets, which an event-loop turn count cannot see, and the stream
 * must not run ahead of the worker while it writes.
 */
class SteppedClock implements Clock {
  #now = Date.UTC(2026, 0, 1);
  #timers: { at: number; resolve: () => void }[] = [];
  #busy = 0;
  #pending = false;
  #quiet = 0;

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const timer = {
        at: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#timers.push(timer);
      this.#quiet = 0;
      this.#schedule();
    });
  }

  /** Runs `work` with time standing still until it settles. */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.#busy++;
    try {
      return await work();
    } finally {
      this.#busy--;
      this.#quiet = 0;
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#pending) return;
    this.#pending = true;
    setImmediate(this.#tick);
  }

  readonly #tick = (): void => {
    this.#pending = false;
    if (this.#timers.length === 0 || this.#busy > 0) return; // `during` schedules again when the work is done
    if (++this.#quiet < 4) {
      this.#schedule();
      return;
    }
    this.#quiet = 0;
    this.#now = Math.max(this.#now, Math.min(...this.#timers.map((t) => t.at)));
    const due = this.#timers.filter((t) => t.at <= this.#now).sort((a, b) => a.at - b.at);
    this.#timers = this.#timers.filter((t) => t.at > this.#now);
    for (const t of due) t.resolve();
    if (this.#timers.length > 0) this.#schedule();
  };
}

/**
 * One open shard whose records are written at set times: each becomes readable once the clock
 * reaches it. A minimal `StreamsApi` (iterators are indexes) rather than `ScriptedStreams`, whose
 * reads scan the whole shard: here they cost what they return, so 100,000 changes take seconds.
 */
class SteadyStream implements StreamsApi {
  static readonly SHARD = 'shardId-00000001';
  readonly #clock: Clock;
  readonly #count: number;
  readonly #atOf: (i: number) => number;
  readonly #make: (i: number) => LambdaStreamRecord;
  /** Records made so far (in order, as they become readable), in the GetRecords shape. */
  readonly #made: unknown[] = [];
  readonly #indexOf = new Map<string, number>();

  /** Record `i` of `count` is written at `atOf(i)` (rising) and made by `make(i)`, in order, when first readable. */
  constructor(clock: Clock, count: number, atOf: (i: number) => number, make: (i: number) => LambdaStreamRecord) {
    this.#clock = clock;
    this.#count = count;
    this.#atOf = atOf;
    this.#make = make;
  }

  /** Records written by now. */
  get #written(): number {
    let lo = 0;
    let hi = this.#count;
    const now = this.#clock.now();
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#atOf(mid) <= now) lo = mid + 1;
      else hi = mid;
    }
    while (this.#made.length < lo) {
      const record = this.#make(this.#made.length);
      this.#indexOf.set(record.dynamodb.SequenceNumber, this.#made.length);
      this.#made.push(toGetRecordsShape(record));
    }
    return lo;
  }

  async describeShards(): Promise<ShardDescription[]> {
    return [{ shardId: SteadyStream.SHARD, parentShardId: undefined, startingSequenceNumber: undefined, endingSequenceNumber: undefined }];
  }

  async childShards(): Promise<ShardDescription[]> {
    return [];
  }

  async getShardIterator(_streamArn: string, _shardId: string, position: IteratorPosition): Promise<string> {
    if (!('sequenceNumber' in position)) return position.type === 'TRIM_HORIZON' ? '0' : String(this.#written);
    const index = this.#indexOf.get(position.sequenceNumber);
    if (index === undefined) throw Object.assign(new Error(`No record ${position.sequenceNumber}`), { name: 'ValidationException' });
    return String(position.type === 'AT_SEQUENCE_NUMBER' ? index : index + 1);
  }

  async getRecords(iterator: string, limit: number): Promise<RecordsPage> {
    const from = Number(iterator);
    const to = Math.min(from + limit, this.#written);
    return { records: this.#made.slice(from, to), nextIterator: String(to) };
  }
}

/** Options of {@link measureWorkerS3Objects}; the defaults are what `npm run bench:sinks` measures. */
export interface MeasureWorkerS3ObjectsOptions {
  /** @default 100_000 */
  readonly changes?: number;
  /** Changes a second, evenly spaced. @default 100 */
  readonly ratePerSec?: number;
  /** Distinct items the changes go to, round-robin. @default 1000 */
  readonly items?: number;
  /** The worker's `batchSize`. @default the worker's (one page) */
  readonly batchSize?: number;
  /** The worker's `batchWindowMs`. @default the worker's (0) */
  readonly batchWindowMs?: number;
  /** The app's `concurrency`. @default the app's (256) */
  readonly concurrency?: number;
}

export interface WorkerS3ObjectsMeasurement {
  readonly changes: number;
  readonly objects: number;
  /** Engine calls (deliveries) the worker made. */
  readonly deliveries: number;
  /** Virtual seconds from the first change to the last acknowledgement. */
  readonly virtualSeconds: number;
  readonly ms: number;
}

/** Objects `s3Export` writes for `changes` changes at a steady rate through a worker, against a fresh s3rver. */
export const measureWorkerS3Objects = async (options: MeasureWorkerS3ObjectsOptions = {}): Promise<WorkerS3ObjectsMeasurement> => {
  const n = options.changes ?? 100_000;
  const rate = options.ratePerSec ?? 100;
  const items = options.items ?? 1000;
  const clock = new SteppedClock();
  const t0 = clock.now();
  const records = streamRecords({ startTime: t0 });
  const atOf = (i: number) => t0 + Math.floor((i * 1000) / rate);
  const make = (i: number) => {
    const item = i % items;
    const v = Math.floor(i / items) + 1;
    const record = records.modify({ PK: `USER#${item}`, SK: 'TASK#1', Status: 'OPEN', Version: v - 1 }, { PK: `USER#${item}`, SK: 'TASK#1', Status: 'OPEN', Version: v });
    // The change time follows the rate (the factory spaces records a second apart), so the
    // objects' hour partitions are those of a real table changing at this rate.
    record.dynamodb.ApproximateCreationDateTime = Math.floor(atOf(i) / 1000);
    return record;
  };
  const streamArn = records.streamArn;
  const s3 = await startS3rver({ buckets: [BUCKET] });
  const started = performance.now();
  try {
    // Objects are counted as the keys S3 stored (a rewrite of a key is one object), not listed:
    // s3rver's continuation tokens use a cipher that Node 20's OpenSSL refuses.
    const written = new Set<string>();
    s3.client.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        const key = (args.input as { Key?: unknown }).Key;
        if ((context.commandName === 'PutObjectCommand' || context.commandName === 'CompleteMultipartUploadCommand') && typeof key === 'string') written.add(key);
        return result;
      },
      { step: 'initialize', name: 'countStoredObjects' },
    );
    const inner = s3Export({ bucket: BUCKET, prefix: 'worker/', client: s3.client });
    const acknowledged = new Set<string>();
    let deliveries = 0;
    let lastAckAt = t0;
    const sink: Sink<ChangeEvent> = {
      ...inner,
      send: async (events, signal) => {
        const result = await clock.during(() => inner.send(events, signal));
        const failed = new Set(result.failed.map((f) => f.index));
        events.forEach((e, i) => !failed.has(i) && acknowledged.add(e.eventID));
        lastAckAt = clock.now();
        return result;
      },
    };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...(options.concurrency ? { concurrency: options.concurrency } : {}) });
    const worker = new Worker({
      app,
      streamArn,
      streams: new SteadyStream(clock, n, atOf, make),
      leases: new MemoryLeaseStore(),
      logger: silentLogger,
      clock,
      observer: { batch: () => void deliveries++ },
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.batchWindowMs !== undefined ? { batchWindowMs: options.batchWindowMs } : {}),
    });
    await worker.start();
    while (acknowledged.size < n) await new Promise((resolve) => setTimeout(resolve, 20));
    await worker.stop();
    const objects = written.size;
    return { changes: n, objects, deliveries, virtualSeconds: Math.round((lastAckAt - t0) / 1000), ms: Math.round(performance.now() - started) };
  } finally {
    await s3.stop();
  }
};

/** The two settings `bench:sinks` reports: the worker's default batching, and a one-minute window of up to 10,000 records. */
export const WINDOWED = { batchSize: 10_000, batchWindowMs: 60_000, concurrency: 10_000 } as const;

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await measureS3Export();
  const byDefault = await measureWorkerS3Objects();
  console.log(JSON.stringify({ part: 'worker-default', ...byDefault }));
  const windowed = await measureWorkerS3Objects(WINDOWED);
  console.log(JSON.stringify({ part: 'worker-windowed', ...WINDOWED, ...windowed }));
  console.log(JSON.stringify({ bench: 's3-export', ...result, s3ObjectsPer100kDefault: byDefault.objects, s3ObjectsPer100kWindowed: windowed.objects }));
}
