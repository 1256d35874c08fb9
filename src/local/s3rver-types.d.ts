/** The part of s3rver 3.x (CommonJS, untyped) that `startS3rver` uses. */
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';
  import type { Server } from 'node:http';

  namespace S3rver {
    interface BucketConfig {
      readonly name: string;
      /** CORS or website configuration XML documents. */
      readonly configs?: readonly (string | Buffer)[];
    }

    interface Options {
      /** @default 'localhost' */
      readonly address?: string;
      /** 0 picks a free port. @default 4568 */
      readonly port?: number;
      /** @default false */
      readonly silent?: boolean;
      /** Where buckets and objects are kept on disk. */
      readonly directory?: string;
      /** @default false */
      readonly resetOnClose?: boolean;
      /** @default false */
      readonly allowMismatchedSignatures?: boolean;
      /** @default true */
      readonly vhostBuckets?: boolean;
      /** @default [] */
      readonly configureBuckets?: readonly BucketConfig[];
    }
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    /** Creates the configured buckets, then listens; resolves with the bound address. */
    run(): Promise<AddressInfo>;
    /** Rejects with `Not running` when `run` never succeeded. */
    close(): Promise<void>;
    /** Set once `run` listens. */
    httpServer?: Server;
  }

  export = S3rver;
}
