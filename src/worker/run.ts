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
  /**
   * AWS region of the table, its stream and the lease table. Needed with an `endpoint` too (the
   * requests are signed for a region; DynamoDB Local accepts any, such as `us-east-1`).
   * @default the AWS SDK's: `AWS_REGION`, or the region of the profile in the AWS config file
   */
  readonly region?: string;
  /**
   * URL of the DynamoDB and DynamoDB Streams endpoint, for DynamoDB Local or a proxy. DynamoDB Local
   * serves both APIs on one port.
   * @default the region's AWS endpoint (or the SDK's `AWS_ENDPOINT_URL`)
   * @example
   * // DynamoDB Local on its usual port; it accepts any region and any credentials.
   * await runWorker({
   *   app,
   *   leaseTable: 'dynamo-cdc-leases',
   *   createLeaseTable: true,
   *   endpoint: 'http://127.0.0.1:8000',
   *   region: 'us-east-1',
   *   credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
   * });
   */
  readonly endpoint?: string;
  /** @default the AWS SDK's default credential chain (environment, profile, container or instance role) */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Stop gracefully on SIGTERM and SIGINT, then exit. @default true */
  readonly handleSignals?: boolean;
  /**
   * Port of the HTTP server with `GET /metrics` (Prometheus) and `GET /healthz`, started once the
   * worker runs and closed when it stops; `0` picks a free port, `false` runs no server and
   * collects no metrics. See docs/metrics.md.
   * @default the METRICS_PORT variable (a port, or `false` or `off`), else 9464
   */
  readonly metricsPort?: number | false;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT']);

/** The network error code in an error, its causes or an AggregateError's errors (the SDK nests them). */
const networkCode = (error: unknown, depth = 0): string | undefined => {
  if (error === null || typeof error !== 'object' || depth > 6) return undefined;
  const e = error as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return typeof e.code === 'string' ? e.code : 'timeout';
  for (const inner of Array.isArray(e.errors) ? (e.errors as unknown[]) : []) {
    const code = networkCode(inner, depth + 1);
    if (code) return code;
  }
  return networkCode(e.cause, depth + 1);
};

/** Start-up failures a user fixes in the options, as one-line {@link ConfigError}s; others as they were. */
const explainStartError = (error: unknown, options: RunWorkerOptions, region: string): unknown => {
  if (error instanceof ConfigError) return error;
  const code = networkCode(error);
  if (!code) return error;
  // The SDK's own variables set an endpoint too; the line names the one that was used.
  const endpoint = options.endpoint ?? process.env['AWS_ENDPOINT_URL_DYNAMODB'] ?? process.env['AWS_ENDPOINT_URL'];
  if (endpoint) {
    return new ConfigError('endpoint', `\`${endpoint}\` cannot be reached (${code}). Check that DynamoDB Local (or the service) is running there and the URL's scheme, host and port.`, { cause: error });
  }
  return new ConfigError('region', `\`${region}\`: DynamoDB at dynamodb.${region}.amazonaws.com cannot be reached (${code}). Check the region name and this host's network (proxy, VPC endpoint, DNS), or pass \`endpoint\`.`, { cause: error });
};

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
  const fromEnv = process.env['METRICS_PORT'];
  const metricsPort = options.metricsPort ?? (fromEnv === undefined || fromEnv === '' ? 9464 : fromEnv === 'false' || fromEnv === 'off' ? false : Number(fromEnv));
  if (metricsPort !== false && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65_535)) {
    const source = options.metricsPort === undefined && fromEnv ? `METRICS_PORT=${fromEnv}` : `\`${String(metricsPort)}\``;
    throw new ConfigError('metricsPort', `must be an integer from 0 to 65535 (0 picks a free port), or false for no metrics server, got ${source}.`);
  }
  const clientConfig = {
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 3,
  };
  const dynamo = new DynamoDBClient(clientConfig);
  // The SDK resolves the region only at the first request and then fails with a bare "Region is
  // missing"; asked here, the answer can name the option and the variable.
  const region = await dynamo.config.region().catch(() => undefined);
  if (!region) {
    dynamo.destroy();
    throw new ConfigError('region', 'is not set. Pass `region` (DynamoDB Local accepts any, such as `us-east-1`), or set AWS_REGION.');
  }
  const streamsClient = new DynamoDBStreamsClient(clientConfig);
  // Start-up asks through a client with a connect timeout, so an endpoint that is down or drops
  // packets fails in seconds with one line instead of hanging in the SDK's retries.
  const startClient = new DynamoDBClient({ ...clientConfig, requestHandler: { connectionTimeout: 3000 } });
  let streamArn = options.streamArn;
  try {
    await ensureLeaseTable({ client: startClient, tableName: options.leaseTable, create: options.createLeaseTable ?? false });
    if (!streamArn) {
      let table;
      try {
        table = (await startClient.send(new DescribeTableCommand({ TableName: options.app.table }))).Table;
      } catch (error) {
        if (networkCode(error)) throw error;
        throw new ConfigError('table', `\`${options.app.table}\` could not be described (${describeError(error).message}). Check the table name, the region and the endpoint, or pass the stream ARN.`, { cause: error });
      }
      streamArn = table?.LatestStreamArn;
      if (!streamArn) throw new ConfigError('table', `\`${options.app.table}\` has no stream. Enable a stream with view type NEW_AND_OLD_IMAGES (or NEW_IMAGE).`);
    }
  } catch (error) {
    dynamo.destroy();
    streamsClient.destroy();
    throw explainStartError(error, options, region);
  } finally {
    startClient.destroy();
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
