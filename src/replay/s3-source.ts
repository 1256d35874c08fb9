/**
 * Replay from the S3 export: lists the objects `s3Export` wrote for the range, reads them back
 * hour by hour, and sends their records in order. Loads `@aws-sdk/client-s3` (an optional peer).
 */
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { classify, describeError } from '../errors.js';
import type { Clock, Logger } from '../ports.js';
import { escapePartitionValue } from '../sinks/s3/export-layout.js';
import type { Sender } from './sender.js';
import { orderLines, parseExportObject, toStreamRecord } from './export-lines.js';
import type { ExportLine } from './export-lines.js';
import { placeOf } from './range.js';
import type { ReplayRange } from './range.js';

const gunzip = promisify(gunzipCallback);

/** An object that could not be read back, and why. */
export interface UnreadableObject {
  /** `s3://bucket/key` */
  readonly object: string;
  readonly reason: string;
}

export interface S3ReplayInput {
  readonly client: S3Client;
  readonly bucket: string;
  /** The export's prefix (`s3Export`'s `prefix`). */
  readonly prefix: string;
  readonly table: string;
  /** `meta.streamArn` of the replayed events. */
  readonly streamArn: string;
  readonly range: ReplayRange;
  readonly onUnreadable: 'fail' | 'skip';
  readonly dryRun: boolean;
  readonly batchSize: number;
  readonly sender: Sender;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly signal: AbortSignal | undefined;
}

export interface S3ReplayResult {
  readonly objects: number;
  readonly unreadable: UnreadableObject[];
  readonly duplicates: number;
  /** Why the replay stopped before the end of the range, one line each; empty when it did not. */
  readonly problems: string[];
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const OBJECT = /\/dt=(\d{4}-\d{2}-\d{2})\/hr=(\d{2})\/[^/]+\.ndjson(\.gz)?$/;
/** Attempts of a read that failed with a retryable error (the export's client makes one attempt per call). */
const READ_ATTEMPTS = 4;

const dayPrefix = (base: string, time: number): string => `${base}dt=${new Date(time).toISOString().slice(0, 10)}/`;

/** The hour (epoch ms) of an export object's partition, or `undefined` for a key that is not an export object. */
export const hourOfKey = (key: string): number | undefined => {
  const m = OBJECT.exec(key);
  if (!m) return undefined;
  const time = Date.parse(`${m[1] as string}T${m[2] as string}:00:00Z`);
  return Number.isNaN(time) ? undefined : time;
};

const withRetries = async <T>(clock: Clock, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= READ_ATTEMPTS || classify(error) === 'PERMANENT') throw error;
      await clock.sleep(200 * 2 ** attempt * Math.random(), signal);
    }
  }
};

/** The export objects of the range, grouped by their hour partition, hours in order. */
const listObjects = async (input: S3ReplayInput): Promise<Map<number, string[]>> => {
  const { client, bucket, range, clock, signal } = input;
  const base = `${input.prefix}table=${escapePartitionValue(input.table)}/`;
  // A partition holds the hour of the change, so the range's days bound what to list; with no
  // start, everything the table has.
  const prefixes: string[] = [];
  if (range.from === undefined) prefixes.push(base);
  else {
    const end = range.to ?? clock.now();
    for (let day = Math.floor(range.from / DAY) * DAY; day < end; day += DAY) prefixes.push(dayPrefix(base, day));
  }
  const hours = new Map<number, string[]>();
  for (const prefix of prefixes) {
    let token: string | undefined;
    do {
      const page = await withRetries(clock, signal, () =>
        client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: signal }),
      );
      for (const object of page.Contents ?? []) {
        const hour = object.Key === undefined ? undefined : hourOfKey(object.Key);
        if (hour === undefined) continue;
        if (range.from !== undefined && hour + HOUR <= range.from) continue;
        if (range.to !== undefined && hour >= range.to) continue;
        const keys = hours.get(hour) ?? [];
        keys.push(object.Key as string);
        hours.set(hour, keys);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  return new Map([...hours.entries()].sort((a, b) => a[0] - b[0]));
};

/** The lines of one object, or why they cannot be had. */
const readObject = async (input: S3ReplayInput, key: string): Promise<ExportLine[] | string> => {
  let bytes: Uint8Array;
  try {
    bytes = await withRetries(input.clock, input.signal, async () => {
      const answer = await input.client.send(new GetObjectCommand({ Bucket: input.bucket, Key: key }), { abortSignal: input.signal });
      if (!answer.Body) throw new Error('GetObject returned no body');
      return answer.Body.transformToByteArray();
    });
  } catch (error) {
    input.signal?.throwIfAborted();
    const { name, message } = describeError(error);
    return `cannot get it (${name}: ${message})`;
  }
  let text: string;
  try {
    text = Buffer.from(key.endsWith('.gz') ? await gunzip(bytes) : bytes).toString('utf8');
  } catch (error) {
    return `not valid gzip (${describeError(error).message})`;
  }
  return parseExportObject(text);
};

const timeOf = (time: number): string => new Date(time).toISOString();

/**
 * Sends the export's records of the range through the sender, hour partition by hour partition
 * (memory holds one hour of the export at a time). An hour is read whole and ordered (see
 * {@link orderLines}) before any of it is sent. An unreadable object is reported; with `fail`, the
 * replay stops before the hour that holds it, so nothing after a gap is sent. A batch the engine
 * could not finish (a lane blocked: no dead-letter queue, or it failed) stops the replay after it.
 */
export const replayFromS3 = async (input: S3ReplayInput): Promise<S3ReplayResult> => {
  const { sender, range, bucket } = input;
  const hours = await listObjects(input);
  const unreadable: UnreadableObject[] = [];
  const problems: string[] = [];
  let objects = 0;
  let duplicates = 0;
  for (const [hour, keys] of hours) {
    input.signal?.throwIfAborted();
    const lines: ExportLine[] = [];
    const bad: UnreadableObject[] = [];
    for (const key of keys.sort()) {
      const read = await readObject(input, key);
      objects++;
      if (typeof read === 'string') bad.push({ object: `s3://${bucket}/${key}`, reason: read });
      else lines.push(...read);
    }
    unreadable.push(...bad);
    for (const b of bad) input.logger.warn({ object: b.object, reason: b.reason }, 'replay: export object unreadable');
    if (bad.length > 0 && input.onUnreadable === 'fail' && !input.dryRun) {
      problems.push(
        `stopped before the hour ${timeOf(hour)} (it holds ${bad.length} unreadable object${bad.length === 1 ? '' : 's'}); nothing from it on was sent. Fix or remove the object${bad.length === 1 ? '' : 's'} and replay again with --from ${timeOf(hour)}, or pass --on-unreadable skip`,
      );
      break;
    }
    const { ordered, duplicates: copies } = orderLines(lines.filter((l) => placeOf(range, l.time, l.sequenceNumber) === 'in'));
    duplicates += copies;
    for (let start = 0; start < ordered.length; start += input.batchSize) {
      const batch = ordered.slice(start, start + input.batchSize);
      const records = batch.map((line) => {
        const record = toStreamRecord(line, input.streamArn);
        sender.override(record, { shardId: line.shardId, changed: line.changed });
        return record;
      });
      const outcome = await sender.send(records, { streamArn: input.streamArn, ...(input.signal ? { signal: input.signal } : {}) });
      if (outcome.watermark < records.length) {
        const first = batch[outcome.watermark] as ExportLine;
        problems.push(
          `record ${first.eventID} (${timeOf(first.time)}) and others of this batch could not be delivered (no dead-letter queue, or it failed): nothing after this batch was sent. Fix the cause and replay again with --from ${timeOf(first.time)}`,
        );
        return { objects, unreadable, duplicates, problems };
      }
    }
  }
  return { objects, unreadable, duplicates, problems };
};
