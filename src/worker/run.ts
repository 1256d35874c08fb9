import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { App } from '../app.js';
import { ConfigError, describeError } from '../errors.js';
import type { MetricsServer } from '../observability/http-server.js';
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
  /**
   * Port of the HTTP server with `GET /metrics` (Prometheus) and `GET /healthz`, started once the
   * worker runs and closed when it stops; `0` picks a free port, `false` runs no server and
   * collects no metrics. See docs/metrics.md.
   * @default 9464
   */
  readonly metricsPort?: number | false;
}

/** A worker whose metrics server closes when it stops, whoever stops it. */
class ServedWorker extends Worker {
  metricsServer: MetricsServer | undefined;

  override stop(): Promise<void> {
    return super.stop().finally(() => this.metricsServer?.close());
  }
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
  const metricsPort = options.metricsPort ?? 9464;
  if (metricsPort !== false && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65_535)) {
    throw new ConfigError('metricsPort', `must be an integer from 0 to 65535 (0 picks a free port), or false for no metrics server, got \`${String(metricsPort)}\`.`);
  }
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

  const { app, leaseTable: _t, createLeaseTable: _c, region: _r, endpoint: _e, credentials: _k, handleSignals, metricsPort: _m, observer: own, ...tuning } = options;
  // prom-client is an optional peer: loaded only when metrics are served, naming it when missing.
  const observability = metricsPort === false ? undefined : await import('../observability/index.js');
  const metrics = observability?.createWorkerMetrics();
  const observer = metrics && own ? observability?.combineObservers(own, metrics.observer) : (metrics?.observer ?? own);
  const worker = new ServedWorker({
    ...tuning,
    app,
    logger,
    streamArn,
    streams: dynamoDbStreamsApi({ client: streamsClient }),
    leases: dynamoDbLeaseStore({ tableName: options.leaseTable, client: dynamo }),
    ...(observer ? { observer } : {}),
  });
  metrics?.track(worker);
  await worker.start();
  if (observability && metrics && metricsPort !== false) {
    try {
      worker.metricsServer = await observability.startMetricsServer({ port: metricsPort, registry: metrics.registry, isLive: () => worker.isLive(), notLiveDetails: () => observability.livenessDetails(worker) });
    } catch (error) {
      await worker.stop();
      dynamo.destroy();
      streamsClient.destroy();
      throw error;
    }
    logger.info({ port: worker.metricsServer.port }, 'metrics server listening: GET /metrics, GET /healthz');
  }
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
