/**
 * S3 export throughput: uncompressed NDJSON bytes acknowledged per second when 10,000 change
 * events of about 1 KB each (one per item, so every lane holds one record) go through the engine
 * into `s3Export` writing to s3rver in this process. The clock runs from `engine.process` to its
 * outcome, so it covers serialising, gzip, the PutObject round trips and s3rver's disk writes.
 * s3rver is far slower than S3 per request and has no network in between: read the figure as a
 * regression guard for this code, not as a prediction of S3's throughput.
 *
 * `bench/sinks.ts` calls {@link measureS3Export}; run on its own it prints one JSON line:
 *   {"bench":"s3-export","s3BytesPerSec":N,...}
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../src/core/clock.js';
import { decodeRecord, defineApp, Engine, route } from '../src/index.js';
import { startS3rver } from '../src/local/s3rver.js';
import { s3Export } from '../src/sinks/s3/index.js';
import type { S3ExportRollover } from '../src/sinks/s3/index.js';
import { silentLogger, streamRecords } from '../src/testing/index.js';

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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await measureS3Export();
  console.log(JSON.stringify({ bench: 's3-export', ...result }));
}
