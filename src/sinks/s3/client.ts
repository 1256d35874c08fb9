import { S3Client } from '@aws-sdk/client-s3';
import type { S3ClientConfig, ServerSideEncryption } from '@aws-sdk/client-s3';
import { ConfigError } from '../../errors.js';

/** The S3 connection options that `s3Export` and `s3ClaimCheck` share. */
export interface S3ConnectionOptions {
  /**
   * The client to write with. Give it `maxAttempts: 1`: the engine already retries a failed write
   * with backoff (one retry owner per hop). `region`, `endpoint` and `forcePathStyle` must not be
   * given with it; set them on the client.
   * @default a new `S3Client({ maxAttempts: 1 })` with `region`, `endpoint`, `forcePathStyle` below and the credentials of the environment
   */
  readonly client?: S3Client;
  /** Region of the client built when `client` is not given. @default the region of the environment */
  readonly region?: string;
  /** Endpoint of the client built when `client` is not given (an S3-compatible store). @default AWS's endpoint for the region */
  readonly endpoint?: string;
  /** Path-style addressing for the client built when `client` is not given. @default false */
  readonly forcePathStyle?: boolean;
  /**
   * Server-side encryption of the objects, sent to PutObject as `ServerSideEncryption`.
   * @default the bucket's default encryption
   */
  readonly serverSideEncryption?: ServerSideEncryption;
  /**
   * The KMS key for `serverSideEncryption: 'aws:kms'` (or `'aws:kms:dsse'`), sent as `SSEKMSKeyId`.
   * @default the AWS managed key `aws/s3`
   */
  readonly kmsKeyId?: string;
}

const shown = (value: unknown): string => `\`${String(value)}\` (${typeof value})`;

/**
 * Checks the connection options of an S3 sink or store named `owner` (for the field names in
 * errors): client settings given next to a client, and a KMS key without KMS encryption.
 */
export const checkS3Connection = (owner: string, options: S3ConnectionOptions): void => {
  if (options.client !== undefined) {
    for (const field of ['region', 'endpoint', 'forcePathStyle'] as const) {
      if (options[field] !== undefined) {
        throw new ConfigError(`${owner}.${field}`, `applies only to the client ${owner} builds, but \`client\` is given too. Set \`${field}\` on that client instead, or drop \`client\`.`);
      }
    }
  }
  if (options.kmsKeyId !== undefined && options.serverSideEncryption !== 'aws:kms' && options.serverSideEncryption !== 'aws:kms:dsse') {
    throw new ConfigError(`${owner}.kmsKeyId`, `needs \`serverSideEncryption: 'aws:kms'\` (or 'aws:kms:dsse'), got ${shown(options.serverSideEncryption)}. Set it, or drop \`kmsKeyId\`.`);
  }
};

/**
 * The given client, or one built with one attempt per call: the engine owns retries, and SDK
 * retries on top would multiply attempts and hide throttling from it.
 */
export const s3ClientFor = (options: S3ConnectionOptions): S3Client => {
  if (options.client) return options.client;
  const config: S3ClientConfig = { maxAttempts: 1 };
  if (options.region !== undefined) config.region = options.region;
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle;
  return new S3Client(config);
};
