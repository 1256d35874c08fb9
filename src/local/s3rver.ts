import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { HeadBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/** A running s3rver, in this process, on its own port and in its own temporary directory. */
export interface LocalS3 {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** A client for `endpoint` that s3rver understands (see {@link localS3ClientConfig}). */
  readonly client: S3Client;
  /** The temporary directory holding buckets and objects; `stop` deletes it. */
  readonly directory: string;
  /** Closes the server, destroys the client and deletes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartS3rverOptions {
  /** Buckets to create before the server answers; each name needs at least 3 characters. @default [] */
  readonly buckets?: readonly string[];
  /** @default 10_000 */
  readonly readyTimeoutMs?: number;
}

/**
 * Options for an AWS SDK v3 client of s3rver: path-style addressing (no bucket subdomains on
 * 127.0.0.1), checksums only where an operation requires them (s3rver rejects the SDK's default
 * aws-chunked trailers), s3rver's documented dummy credentials, and no SDK retries.
 */
export const localS3ClientConfig = (endpoint: string): S3ClientConfig => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  maxAttempts: 1,
});

const reasonOf = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * Starts s3rver in this process on a free port of 127.0.0.1, with a fresh temporary directory
 * and the given buckets, and resolves once it answers for each bucket. Throws with the reason
 * when it cannot start or answer: integration tests fail loudly instead of being skipped.
 */
export const startS3rver = async (options: StartS3rverOptions = {}): Promise<LocalS3> => {
  const buckets = options.buckets ?? [];
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const short = buckets.filter((name) => name.length < 3);
  if (short.length > 0) throw new Error(`s3rver bucket names need at least 3 characters, got ${short.map((n) => `\`${n}\``).join(', ')}`);

  const directory = await mkdtemp(join(tmpdir(), 'dynamo-cdc-s3rver-'));
  // The directory must go with the test run even when nobody calls stop().
  const onParentExit = () => rmSync(directory, { recursive: true, force: true });
  process.once('exit', onParentExit);

  const server = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
  });

  // Tears down whatever was set up so far; `client` exists only once the server listens.
  let stopping: Promise<void> | undefined;
  const stopWith = (client: S3Client | undefined) => {
    stopping ??= (async () => {
      client?.destroy();
      const http = server.httpServer;
      if (http?.listening) {
        const closed = server.close();
        // Idle keep-alive sockets would hold close() open until they time out.
        http.closeAllConnections();
        await closed;
      }
      await rm(directory, { recursive: true, force: true });
      process.off('exit', onParentExit);
    })();
    return stopping;
  };

  let port: number;
  try {
    port = (await server.run()).port;
  } catch (error) {
    await stopWith(undefined);
    throw new Error(`s3rver could not start on 127.0.0.1: ${reasonOf(error)}`, { cause: error });
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client(localS3ClientConfig(endpoint));
  const stop = () => stopWith(client);
  try {
    const signal = AbortSignal.timeout(readyTimeoutMs);
    await client.send(new ListBucketsCommand({}), { abortSignal: signal });
    for (const name of buckets) await client.send(new HeadBucketCommand({ Bucket: name }), { abortSignal: signal });
  } catch (error) {
    await stop();
    throw new Error(`s3rver started on ${endpoint} but did not answer for buckets [${buckets.join(', ')}] within ${readyTimeoutMs} ms: ${reasonOf(error)}`, { cause: error });
  }
  return { endpoint, client, directory, stop };
};
