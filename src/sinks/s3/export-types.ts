import type { S3Client } from '@aws-sdk/client-s3';
import type { ChangeEvent } from '../../events.js';
import type { Sink } from '../../ports.js';
import type { S3ConnectionOptions } from './client.js';

/**
 * When an object is cut. The engine fills one request up to `maxRecords` and `maxBytes`, or sends
 * it after `maxAgeMs`, whichever comes first; each request becomes one object per partition it
 * touches (usually one).
 */
export interface S3ExportRollover {
  /**
   * Most lines in one object (the sink's `limits.maxRecords`).
   * @default 10_000
   */
  readonly maxRecords?: number;
  /**
   * Most bytes of uncompressed NDJSON in one object (the sink's `limits.maxBytes`). A single line
   * larger than this cannot be written: the engine fails that event PERMANENT (`OversizedEventError`).
   * @default 67_108_864 (64 MiB)
   */
  readonly maxBytes?: number;
  /**
   * How long a request that is not full waits for more events before it is written (the sink's
   * `limits.maxWaitMs`). The lanes whose events wait are held too, and the Lambda deadline cuts the
   * wait short. 0 writes at the end of the current turn of the event loop.
   * @default 60_000
   */
  readonly maxAgeMs?: number;
}

/** Options of {@link s3Export}. Only `bucket` is required. */
export interface S3ExportOptions<E = ChangeEvent> extends S3ConnectionOptions {
  /**
   * The bucket to write to: its name (at least 3 characters) or an access point ARN. The writer
   * needs `s3:PutObject` (and the multipart actions) on `<bucket>/<prefix>*`. Required.
   */
  readonly bucket: string;
  /**
   * Prepended to every key: `''` or a path ending in `/`. Objects go to
   * `<prefix>table=<table>/dt=YYYY-MM-DD/hr=HH/<name>.ndjson.gz`.
   * @default 'cdc/'
   */
  readonly prefix?: string;
  /**
   * Write gzip files (`.ndjson.gz`, `Content-Type: application/gzip`, no `Content-Encoding`), as
   * Athena, Spark and Glue read them by their extension; `false` writes plain `.ndjson`.
   * @default true
   */
  readonly gzip?: boolean;
  /** When an object is cut: by lines, by uncompressed bytes and by age. */
  readonly rollover?: S3ExportRollover;
  /**
   * Objects of at least this many bytes (as stored, so compressed when `gzip`) go up as multipart
   * uploads (`Upload` from `@aws-sdk/lib-storage`, parts of at least 5 MiB); smaller ones with one
   * PutObject. At least 5 MiB (5_242_880), S3's smallest part.
   * @default 8_388_608 (8 MiB)
   */
  readonly multipartThresholdBytes?: number;
  /**
   * Shapes one line. Return an object with `eventID` in it: it is how queries drop duplicates.
   * @default for a {@link ChangeEvent}, `{ eventID, kind, table, key, newImage, oldImage, changed,
   * expired, entity, sequenceNumber, shardId, approximateCreationTime, sizeBytes }` (absent values
   * as `null`, the time as an ISO 8601 string); for anything else (a route's transform output),
   * the value itself
   */
  readonly line?: (event: E) => unknown;
  /** Unique among the sinks of an app; names the sink in logs and dead letters. @default 's3-export' */
  readonly name?: string;
}

/** The sink {@link s3Export} returns: a {@link Sink} with its bucket, prefix and client in sight. */
export interface S3ExportSink<E = ChangeEvent> extends Sink<E> {
  readonly bucket: string;
  readonly prefix: string;
  /** The client that writes the objects: the one given, or the one the sink built. */
  readonly client: S3Client;
  /** Bytes of the event's NDJSON line, newline included, before compression. */
  sizeOf(event: E): number;
}
