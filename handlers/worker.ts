/**
 * Composition root of the worker shape (ECS task, VM, laptop): reads the stream of the table in
 * dynamo-cdc.config.ts, sharing its shards with peers through the lease table.
 *
 * Environment:
 * - LEASE_TABLE (required): the lease table; CREATE_LEASE_TABLE=true creates it when missing.
 * - STREAM_ARN: the stream to read; default the table's latest stream.
 * - AWS_REGION, DYNAMODB_ENDPOINT (for DynamoDB Local), LOG_LEVEL, LOG_IMAGES=true.
 * - POLL_INTERVAL_MS, LEASE_DURATION_MS, DRAIN_TIMEOUT_MS, INITIAL_POSITION (TRIM_HORIZON | LATEST), ON_TRIMMED_DATA (fail | skip).
 * - BATCH_SIZE (records per delivery, up to 10,000), BATCH_WINDOW_MS (how long a delivery may gather pages).
 * - METRICS_PORT: port of GET /metrics and GET /healthz, default 9464; `false` turns them off.
 */
import app from '../dynamo-cdc.config.js';
import { createLogger } from '../src/index.js';
import { runWorker } from '../src/worker/index.js';

const env = process.env;
const num = (name: string) => (env[name] ? Number(env[name]) : undefined);

await runWorker({
  app,
  leaseTable: env['LEASE_TABLE'] ?? '',
  createLeaseTable: env['CREATE_LEASE_TABLE'] === 'true',
  ...(env['STREAM_ARN'] ? { streamArn: env['STREAM_ARN'] } : {}),
  ...(env['AWS_REGION'] ? { region: env['AWS_REGION'] } : {}),
  ...(env['DYNAMODB_ENDPOINT'] ? { endpoint: env['DYNAMODB_ENDPOINT'] } : {}),
  ...(num('POLL_INTERVAL_MS') ? { pollIntervalMs: num('POLL_INTERVAL_MS') } : {}),
  ...(num('LEASE_DURATION_MS') ? { leaseDurationMs: num('LEASE_DURATION_MS') } : {}),
  ...(num('DRAIN_TIMEOUT_MS') ? { drainTimeoutMs: num('DRAIN_TIMEOUT_MS') } : {}),
  ...(num('BATCH_SIZE') ? { batchSize: num('BATCH_SIZE') } : {}),
  ...(env['BATCH_WINDOW_MS'] ? { batchWindowMs: num('BATCH_WINDOW_MS') } : {}),
  ...(env['INITIAL_POSITION'] ? { initialPosition: env['INITIAL_POSITION'] as 'TRIM_HORIZON' | 'LATEST' } : {}),
  ...(env['ON_TRIMMED_DATA'] ? { onTrimmedData: env['ON_TRIMMED_DATA'] as 'fail' | 'skip' } : {}),
  ...(env['METRICS_PORT'] ? { metricsPort: env['METRICS_PORT'] === 'false' ? false : Number(env['METRICS_PORT']) } : {}),
  logger: createLogger({ logImages: env['LOG_IMAGES'] === 'true' }),
});
