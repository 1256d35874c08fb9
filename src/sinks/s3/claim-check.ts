import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ConfigError } from '../../errors.js';
import type { ClaimCheckPointer, ClaimCheckStore } from '../../ports.js';
import { checkS3Connection, s3ClientFor } from './client.js';
import type { S3ConnectionOptions } from './client.js';

/** Options of {@link s3ClaimCheck}. */
export interface S3ClaimCheckOptions extends S3ConnectionOptions {
  /**
   * The bucket to store oversized payloads in: its name (at least 3 characters), or an access point
   * ARN. The writer needs `s3:PutObject` on `<bucket>/<prefix>*`, readers `s3:GetObject`.
   */
  readonly bucket: string;
  /**
   * Prepended to every key. Keys are `<prefix><id>.json` with `id` escaped to S3's safe characters,
   * so a retry of the same event overwrites the same object.
   * @default 'claim-check/'
   */
  readonly prefix?: string;
}

/** The claim-check store {@link s3ClaimCheck} returns: a {@link ClaimCheckStore} plus what it writes to. */
export interface S3ClaimCheckStore extends ClaimCheckStore {
  readonly bucket: string;
  readonly prefix: string;
  /** The client it writes with; consumers can read pointers with it through {@link readClaimCheck}. */
  readonly client: S3Client;
}

const DEFAULT_PREFIX = 'claim-check/';
/** S3 keys hold at most 1,024 bytes; longer escaped ids are shortened with a hash to stay well below. */
const MAX_ID_LENGTH = 200;
const SAFE_CHARACTER = /[A-Za-z0-9._-]/;

/**
 * Escapes `id` to the characters S3 lists as safe in keys: `[A-Za-z0-9._-]` stay, every other
 * UTF-8 byte becomes `!XX` (hex). The mapping is one-to-one, so distinct ids never share an object,
 * and deterministic, so a retry overwrites. An escaped id over {@link MAX_ID_LENGTH} keeps its
 * start and ends in `!!` plus the SHA-256 of the id; `!!` never occurs in a plain escaped id.
 */
const safeKey = (id: string): string => {
  let out = '';
  for (const char of id) {
    if (SAFE_CHARACTER.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `!${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length <= MAX_ID_LENGTH) return out;
  return `${out.slice(0, 100)}!!${createHash('sha256').update(id, 'utf8').digest('hex')}`;
};

const shown = (value: unknown): string => `\`${String(value)}\` (${typeof value})`;

const validate = (options: S3ClaimCheckOptions): void => {
  const { bucket, prefix } = options;
  if (typeof bucket !== 'string' || bucket.length < 3) {
    throw new ConfigError(
      's3ClaimCheck.bucket',
      `must be the name of an S3 bucket (at least 3 characters), got ${shown(bucket)}. Set it to the bucket that stores oversized payloads, for example s3ClaimCheck({ bucket: process.env.CLAIM_CHECK_BUCKET! }).`,
    );
  }
  if (bucket.startsWith('s3://')) {
    throw new ConfigError('s3ClaimCheck.bucket', `must be a bucket name, not a URI, got \`${bucket}\`. Give the name alone and put any path in \`prefix\`.`);
  }
  if (prefix !== undefined && typeof prefix !== 'string') {
    throw new ConfigError('s3ClaimCheck.prefix', `must be a string such as 'claim-check/', got ${shown(prefix)}.`);
  }
  checkS3Connection('s3ClaimCheck', options);
};

/**
 * A {@link ClaimCheckStore} in S3: `put(id, body)` writes `body` (JSON) with one PutObject to
 * `<bucket>/<prefix><escaped id>.json` and resolves `{ bucket, key, uri, size }` once S3 has
 * stored it. Sinks use it for events and dead letters larger than their destination accepts.
 *
 * @example
 * import { route } from 'dynamo-cdc';
 * import { sqs } from 'dynamo-cdc/sqs';
 * import { s3ClaimCheck } from 'dynamo-cdc/s3';
 *
 * const claimCheck = s3ClaimCheck({ bucket: process.env.CLAIM_CHECK_BUCKET!, prefix: 'cdc/claim-check/' });
 * route('*').to(sqs({ queueUrl: process.env.QUEUE_URL!, claimCheck }));
 */
export const s3ClaimCheck = (options: S3ClaimCheckOptions): S3ClaimCheckStore => {
  validate(options);
  const { bucket, serverSideEncryption, kmsKeyId } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const client = s3ClientFor(options);

  return {
    bucket,
    prefix,
    client,
    async put(id, body, signal) {
      signal.throwIfAborted();
      const key = `${prefix}${safeKey(id)}.json`;
      const bytes = Buffer.from(body, 'utf8');
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: 'application/json',
          ...(serverSideEncryption !== undefined ? { ServerSideEncryption: serverSideEncryption } : {}),
          ...(kmsKeyId !== undefined ? { SSEKMSKeyId: kmsKeyId } : {}),
        }),
        { abortSignal: signal },
      );
      return { bucket, key, uri: `s3://${bucket}/${key}`, size: bytes.byteLength };
    },
  };
};

/**
 * Fetches a claim-checked payload (GetObject) and parses its JSON. Give it the `claimCheck` field
 * of the envelope a sink sent in place of the payload.
 *
 * @example
 * import { readClaimCheck } from 'dynamo-cdc/s3';
 *
 * const message = JSON.parse(record.body);
 * const event = 'claimCheck' in message ? await readClaimCheck(s3, message.claimCheck) : message;
 */
export const readClaimCheck = async (client: S3Client, pointer: ClaimCheckPointer, signal?: AbortSignal): Promise<unknown> => {
  const response = await client.send(new GetObjectCommand({ Bucket: pointer.bucket, Key: pointer.key }), signal ? { abortSignal: signal } : {});
  if (!response.Body) throw new Error(`Claim-check object ${pointer.uri} has no body`);
  const text = await response.Body.transformToString('utf-8');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`Claim-check object ${pointer.uri} does not hold JSON`, { cause: error });
  }
};
