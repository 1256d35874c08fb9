import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { PutObjectCommandInput } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, PoisonRecordError, describeError } from '../../errors.js';
import type { ChangeEvent } from '../../events.js';
import type { SinkFailure } from '../../ports.js';
import { toJson } from '../../serialize.js';
import { contentName, defaultLine, exportPositionOf, isChangeEvent, partitionPath, positionedName, tableOf } from './export-layout.js';
import type { ExportPosition } from './export-layout.js';
import type { S3ExportOptions, S3ExportSink } from './export-types.js';
import { perEvent, prepareEach } from '../per-event.js';
import { checkS3Connection, s3ClientFor } from './client.js';

const gzip = promisify(gzipCallback);

const MIB = 1024 * 1024;
/** S3's smallest multipart part (all but the last) and most parts per upload. */
const MIN_PART_BYTES = 5 * MIB;
const MAX_PARTS = 10_000;

const DEFAULT_PREFIX = 'cdc/';
const DEFAULT_MAX_RECORDS = 10_000;
const DEFAULT_MAX_BYTES = 64 * MIB;
const DEFAULT_MAX_AGE_MS = 60_000;
const DEFAULT_MULTIPART_THRESHOLD = 8 * MIB;

/** One event's line, made once per event object and reused by `sizeOf`, `send` and every retry. */
interface Prepared {
  /** The JSON line, newline included. */
  readonly text: string;
  /** UTF-8 bytes of `text`. */
  readonly bytes: number;
  readonly position: ExportPosition | undefined;
}

/** The events of one request that go into one object. */
interface Group {
  readonly directory: string;
  /** Set for events with a stream position; `undefined` for a transform's output without one. */
  readonly stream: string | undefined;
  readonly indexes: number[];
  readonly sequences: string[];
  readonly texts: string[];
}

const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const integer = (field: string, value: unknown, min: number, fix: string): void => {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new ConfigError(field, `must be an integer >= ${min}, got ${show(value)}. ${fix}`);
};

const validate = <E>(options: S3ExportOptions<E>): void => {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('s3Export', `must be an options object, got ${show(options)}. Call s3Export({ bucket: 'my-data-lake' }).`);
  }
  const { bucket, prefix, rollover } = options;
  if (typeof bucket !== 'string' || bucket.length < 3) {
    throw new ConfigError(
      's3Export.bucket',
      `must be the name of an S3 bucket (at least 3 characters), got ${show(bucket)}. Set it to the bucket of the data lake, for example s3Export({ bucket: process.env.LAKE_BUCKET! }).`,
    );
  }
  if (bucket.startsWith('s3://')) {
    throw new ConfigError('s3Export.bucket', `must be a bucket name, not a URI, got \`${bucket}\`. Give the name alone and put any path in \`prefix\`.`);
  }
  if (prefix !== undefined && (typeof prefix !== 'string' || (prefix !== '' && !prefix.endsWith('/')) || prefix.startsWith('/'))) {
    throw new ConfigError('s3Export.prefix', `must be '' or a path ending in '/' (not starting with one), such as 'cdc/', got ${show(prefix)}. Partitions are folders under it.`);
  }
  if (options.gzip !== undefined && typeof options.gzip !== 'boolean') throw new ConfigError('s3Export.gzip', `must be true or false, got ${show(options.gzip)}.`);
  if (rollover !== undefined && (rollover === null || typeof rollover !== 'object')) {
    throw new ConfigError('s3Export.rollover', `must be an object such as { maxRecords: 10_000, maxBytes: 67_108_864, maxAgeMs: 60_000 }, got ${show(rollover)}.`);
  }
  integer('s3Export.rollover.maxRecords', rollover?.maxRecords, 1, 'It bounds the lines of one object.');
  integer('s3Export.rollover.maxBytes', rollover?.maxBytes, 1, 'It bounds the uncompressed bytes of one object; keep it above the largest line (an item of 400 KB with both images makes a line of about 1 MB).');
  integer('s3Export.rollover.maxAgeMs', rollover?.maxAgeMs, 0, 'It bounds how long a request that is not full waits for more events; 0 writes at once.');
  integer('s3Export.multipartThresholdBytes', options.multipartThresholdBytes, MIN_PART_BYTES, `S3's multipart parts are at least 5 MiB (${MIN_PART_BYTES} bytes).`);
  if (options.line !== undefined && typeof options.line !== 'function') throw new ConfigError('s3Export.line', `must be a function (event) => object, got ${show(options.line)}.`);
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw new ConfigError('s3Export.name', `must be a non-empty string, got ${show(options.name)}. Give the sink a name unique among the sinks of the app, or leave it out.`);
  }
  checkS3Connection('s3Export', options);
};

const eventIdOf = (event: unknown): string => {
  const id = (event as { eventID?: unknown } | null | undefined)?.eventID;
  return typeof id === 'string' ? id : '(no eventID)';
};

/**
 * Exports change events to S3 as newline-delimited JSON, one line per event, under Hive-style
 * partitions by the time of the change (UTC): `<prefix>table=<table>/dt=YYYY-MM-DD/hr=HH/`.
 * Athena, Spark and Glue read the objects as they are (see docs/s3-export.md for the table).
 *
 * The sink holds nothing between requests. Each request of the engine (at most
 * `rollover.maxRecords` lines and `rollover.maxBytes` uncompressed bytes, sent after at most
 * `rollover.maxAgeMs`) becomes one object per partition it touches, lines in the order given, and
 * `send` resolves only once S3 has stored every object: that is the acknowledgement, so the
 * checkpoint never passes a record that is only in memory. Objects of `multipartThresholdBytes`
 * or more go up as multipart uploads. A failed object fails the events in it (the request
 * rejects when every object failed), and the engine retries them.
 *
 * Keys come from the stream position of the lines in the object: the stream label, the shard
 * (`lambda` when unknown), the lowest and highest sequence number (zero-padded, so keys sort in
 * stream order) and a digest of every sequence number in it. Writing the same records grouped the
 * same way again (a retry, a Lambda re-delivery) overwrites the same object; a different grouping
 * writes a different object, so rows may repeat but are never lost. Every line carries `eventID`
 * to drop repeats in queries.
 *
 * @example
 * import { defineApp, route } from 'dynamo-cdc';
 * import { s3Export } from 'dynamo-cdc/s3';
 *
 * export default defineApp({
 *   table: 'TaskApp',
 *   routes: [route('*').to(s3Export({ bucket: process.env.LAKE_BUCKET!, prefix: 'cdc/', rollover: { maxAgeMs: 30_000 } }))],
 * });
 */
export const s3Export = <E = ChangeEvent>(options: S3ExportOptions<E>): S3ExportSink<E> => {
  validate(options);
  const { bucket, serverSideEncryption, kmsKeyId } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const name = options.name ?? 's3-export';
  const compress = options.gzip ?? true;
  const extension = compress ? '.ndjson.gz' : '.ndjson';
  const contentType = compress ? 'application/gzip' : 'application/x-ndjson';
  const threshold = options.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD;
  const shape = options.line;
  const client = s3ClientFor(options);
  const limits = {
    maxRecords: options.rollover?.maxRecords ?? DEFAULT_MAX_RECORDS,
    maxBytes: options.rollover?.maxBytes ?? DEFAULT_MAX_BYTES,
    maxWaitMs: options.rollover?.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
  };


  const build = (event: E): Prepared => {
    let text: string;
    try {
      const line: unknown = shape ? shape(event) : isChangeEvent(event) ? defaultLine(event) : event;
      text = `${toJson(line)}\n`;
    } catch (error) {
      // The same event fails the same way every time: retrying cannot help.
      throw new PoisonRecordError(`Sink ${name} could not make the line of event ${eventIdOf(event)}${shape ? ' (s3Export.line threw)' : ''}: ${describeError(error).message}`, { cause: error });
    }
    return { text, bytes: Buffer.byteLength(text, 'utf8'), position: exportPositionOf(event) };
  };

  const prepare = perEvent<E, Prepared>(build);

  /** Writes one object; resolves once S3 has stored it. */
  const write = async (group: Group, signal: AbortSignal): Promise<void> => {
    const body = group.texts.join('');
    const objectName = group.stream === undefined ? contentName(body) : positionedName(group.stream, group.sequences);
    const raw = Buffer.from(body, 'utf8');
    const data = compress ? await gzip(raw) : raw;
    signal.throwIfAborted();
    const params: PutObjectCommandInput = {
      Bucket: bucket,
      Key: `${group.directory}${objectName}${extension}`,
      Body: data,
      ContentType: contentType,
      ...(serverSideEncryption !== undefined ? { ServerSideEncryption: serverSideEncryption } : {}),
      ...(kmsKeyId !== undefined ? { SSEKMSKeyId: kmsKeyId } : {}),
    };
    if (data.byteLength < threshold) {
      await client.send(new PutObjectCommand({ ...params, ContentLength: data.byteLength }), { abortSignal: signal });
      return;
    }
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await new Upload({
        client,
        params,
        partSize: Math.max(MIN_PART_BYTES, Math.ceil(data.byteLength / MAX_PARTS)),
        queueSize: 4,
        // A failed upload is aborted, so no unfinished parts are left to pay for.
        leavePartsOnError: false,
        abortController: abort,
      }).done();
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };

  return {
    name,
    bucket,
    prefix,
    client,
    limits,
    preservesOrderWithinRequest: true,

    sizeOf(event) {
      return prepare(event).bytes;
    },

    async send(events, signal) {
      signal.throwIfAborted();
      const failed: SinkFailure[] = [];
      const groups = new Map<string, Group>();
      // Events without a stream position go to the partition of the time they are written.
      const writtenAt = Date.now();
      prepareEach(events, prepare, failed, (prepared, index, event) => {
        const { position } = prepared;
        const directory = partitionPath(prefix, position?.table ?? tableOf(event), position?.time ?? writtenAt);
        const id = `${directory}\n${position?.stream ?? ''}`;
        let group = groups.get(id);
        if (!group) {
          group = { directory, stream: position?.stream, indexes: [], sequences: [], texts: [] };
          groups.set(id, group);
        }
        group.indexes.push(index);
        group.texts.push(prepared.text);
        if (position) group.sequences.push(position.sequence);
      });

      const list = [...groups.values()];
      // Every object is settled before answering, so a retry never races a write still in flight.
      const results = await Promise.allSettled(list.map((group) => write(group, signal)));
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected.length > 0 && rejected.length === list.length) throw rejected[0]?.reason;
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') return;
        for (const index of (list[i] as Group).indexes) failed.push({ index, error: result.reason });
      });
      // Nothing is buffered between requests: every send writes its objects before it resolves, so
      // at shutdown or the Lambda deadline there is nothing left to write.
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
