import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { App } from '../app.js';
import { ConfigError, describeError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { Logger } from '../ports.js';
import { dynamoDbLeaseStore, ensureLeaseTable } from './dynamodb-lease-store.js';
import { dynamoDbStreamsApi } from './dynamodb-streams-api.js';
import { Worker } from './worker.js';
import type { WorkerOptions } from './worker.js';

/** Options of {@link runWorker}: where the stream and the lease table are, and the worker's tuning. */
export interface RunWorkerOptions extends Partial<Omit<WorkerOptions, 'app' | 'streams' | 'leases' | 'streamArn'>> {
  readonly app: App;
  /** The stream to read. @default the table's LatestStreamArn, looked up from `app.table` */
  readonly streamArn?: string;
  /** Lease table name. */
  readonly leaseTable: string;
  /** Create the lease table when it is missing (never done silently otherwise). @default false */
  readonly createLeaseTable?: boolean;
  readonly region?: string;
  /** A DynamoDB (and Streams) endpoint, such as DynamoDB Local's. */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Stop gracefully on SIGTERM and SIGINT, then exit. @default true */
  readonly handleSignals?: boolean;
}

/**
 * Builds the AWS clients, checks the lease table, resolves the stream, and starts a {@link Worker}.
 * With `handleSignals`, SIGTERM and SIGINT stop it gracefully (drain, checkpoint, release leases).
 *
 * @example
 * await runWorker({ app, leaseTable: 'dynamo-cdc-leases', createLeaseTable: true });
 */
export const runWorker = async (options: RunWorkerOptions): Promise<Worker> => {
  const logger: Logger = options.logger ?? createLogger();
  const clientConfig = {
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 3,
  };
  const dynamo = new DynamoDBClient(clientConfig);
  const streamsClient = new DynamoDBStreamsClient(clientConfig);
  await ensureLeaseTable({ client: dynamo, tableName: options.leaseTable, create: options.createLeaseTable ?? false });

  let streamArn = options.streamArn;
  if (!streamArn) {
    let table;
    try {
      table = (await dynamo.send(new DescribeTableCommand({ TableName: options.app.table }))).Table;
    } catch (error) {
      throw new ConfigError('table', `\`${options.app.table}\` could not be described (${describeError(error).message}). Check the table name, the region and the endpoint, or pass the stream ARN.`, { cause: error });
    }
    streamArn = table?.LatestStreamArn;
    if (!streamArn) throw new ConfigError('table', `\`${options.app.table}\` has no stream. Enable a stream with view type NEW_AND_OLD_IMAGES (or NEW_IMAGE).`);
  }

  const { app, leaseTable: _t, createLeaseTable: _c, region: _r, endpoint: _e, credentials: _k, handleSignals, ...tuning } = options;
  const worker = new Worker({
    ...tuning,
    app,
    logger,
    streamArn,
    streams: dynamoDbStreamsApi({ client: streamsClient }),
    leases: dynamoDbLeaseStore({ tableName: options.leaseTable, client: dynamo }),
  });
  await worker.start();
  if (handleSignals ?? true) {
    const stop = (signal: string) => {
      logger.info({ signal }, 'signal received; stopping gracefully');
      void worker.stop().then(
        () => {
          dynamo.destroy();
          streamsClient.destroy();
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: describeError(error) }, 'graceful stop failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  }
  return worker;
};
