import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { ensureLeaseTable } from '../worker/dynamodb-lease-store.js';
import { runWorker } from '../worker/run.js';
import type { CommandSpec, FlagSpec } from './args.js';
import { choiceFlag, helpText, integerFlag, parseFlags, requiredFlag, stringFlag } from './args.js';
import type { AwsTarget } from './aws.js';
import { awsTarget, ENDPOINT_FLAG, explainAwsError, isNotFound, quickClientConfig, REGION_FLAG, whereOf } from './aws.js';
import { loadConfig } from './config.js';
import { CliError, UsageError } from './errors.js';
import { CONFIG_FLAG, LEASE_TABLE_FLAG, STREAM_ARN_FLAG } from './flags.js';
import type { CliIo } from './io.js';
import { say } from './io.js';

const CREATE_LEASE_TABLE: FlagSpec = {
  name: 'create-lease-table',
  type: 'boolean',
  env: 'CREATE_LEASE_TABLE=true',
  help: 'Create the lease table when it is missing (on-demand, point-in-time recovery on). Never done without this flag.',
};
const LOG_IMAGES: FlagSpec = { name: 'log-images', type: 'boolean', env: 'LOG_IMAGES=true', help: 'Let item images into the log lines; they hold user data, so they are redacted without it.' };
const POLL_INTERVAL: FlagSpec = { name: 'poll-interval-ms', type: 'string', value: '<ms>', env: 'POLL_INTERVAL_MS', default: '1000', help: 'Pause after an empty read of a shard, and between reads once it is caught up.' };
const LEASE_DURATION: FlagSpec = {
  name: 'lease-duration-ms',
  type: 'string',
  value: '<ms>',
  env: 'LEASE_DURATION_MS',
  default: '10000',
  help: "A worker whose heartbeat has not moved for this long is expired and its leases taken over by peers; each worker beats at a sixth of it. Use the same value on every worker of a stream.",
};
const INITIAL_POSITION: FlagSpec = {
  name: 'initial-position',
  type: 'string',
  value: '<position>',
  env: 'INITIAL_POSITION',
  default: 'TRIM_HORIZON',
  help: 'Where shards begin at the very first start (an empty lease table): TRIM_HORIZON, the oldest record kept, or LATEST, new records only.',
};
const ON_TRIMMED: FlagSpec = {
  name: 'on-trimmed-data',
  type: 'string',
  value: '<fail|skip>',
  env: 'ON_TRIMMED_DATA',
  default: 'fail',
  help: "When records after a checkpoint were trimmed (past the stream's 24 h retention): stop that shard and say so, or continue from the oldest record kept and log the lost range.",
};
const BATCH_SIZE: FlagSpec = {
  name: 'batch-size',
  type: 'string',
  value: '<records>',
  env: 'BATCH_SIZE',
  default: '1000',
  help: "Most records one delivery carries (1 to 10000): a shard's consecutive GetRecords pages are gathered up to it, like Lambda's BatchSize. An S3 export object holds at most one delivery's records.",
};
const BATCH_WINDOW: FlagSpec = {
  name: 'batch-window-ms',
  type: 'string',
  value: '<ms>',
  env: 'BATCH_WINDOW_MS',
  default: '0',
  help: 'How long to keep gathering pages after the first record of a batch before delivering it (0 to 300000), like Lambda\'s batching window. Every sink waits with the batch.',
};
const METRICS_PORT: FlagSpec = {
  name: 'metrics-port',
  type: 'string',
  value: '<port|false>',
  env: 'METRICS_PORT',
  default: '9464',
  help: 'Port of the HTTP server with GET /metrics (Prometheus) and GET /healthz; 0 picks a free port, false (or off) runs none.',
};
const CHECKPOINT_INTERVAL: FlagSpec = {
  name: 'checkpoint-interval-ms',
  type: 'string',
  value: '<ms>',
  env: 'CHECKPOINT_INTERVAL_MS',
  default: '5000',
  help: 'Most time between two checkpoint writes of a shard while it delivers; a shorter one re-delivers less after a crash and writes the lease table more often.',
};
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const WORKER_ID: FlagSpec = { name: 'worker-id', type: 'string', value: '<id>', env: 'WORKER_ID', default: '<hostname>:<pid>:<random>', help: 'This worker\'s name in the lease table; unique per process.' };
const LOG_LEVEL: FlagSpec = {
  name: 'log-level',
  type: 'string',
  value: '<level>',
  env: 'LOG_LEVEL',
  default: 'info',
  help: `Level of the JSON log lines on stdout: ${LOG_LEVELS.slice(0, -1).join(', ')} or ${LOG_LEVELS.at(-1) ?? ''} (none).`,
};

export const RUN_SPEC: CommandSpec = {
  name: 'run',
  summary: 'run a worker that reads the stream, shares its shards with peers and delivers the changes',
  usage: ['run --lease-table <name> [--config dynamo-cdc.config.ts] [flags]'],
  description: [
    "Loads the config file, checks the lease table (and with --create-lease-table creates it), finds the stream from the config's table unless --stream-arn is given, and runs until SIGTERM or SIGINT (Ctrl-C). Then it stops reading, lets deliveries in flight finish, checkpoints, releases its leases so a peer takes over at once, and exits 0.",
    'Logs are JSON lines on stdout; the first and last lines of what the command itself says go to stderr.',
  ],
  flags: [CONFIG_FLAG, LEASE_TABLE_FLAG, CREATE_LEASE_TABLE, STREAM_ARN_FLAG, REGION_FLAG, ENDPOINT_FLAG, POLL_INTERVAL, LEASE_DURATION, INITIAL_POSITION, ON_TRIMMED, BATCH_SIZE, BATCH_WINDOW, CHECKPOINT_INTERVAL, METRICS_PORT, WORKER_ID, LOG_LEVEL, LOG_IMAGES],
  examples: [
    'dynamo-cdc run --lease-table tasks-cdc-leases --create-lease-table',
    'LEASE_TABLE=tasks-cdc-leases AWS_REGION=eu-west-1 dynamo-cdc run --config config/cdc.ts --metrics-port 9100',
    'dynamo-cdc run --endpoint http://127.0.0.1:8000 --region us-east-1 --lease-table leases --create-lease-table',
    'dynamo-cdc run --lease-table tasks-cdc-leases --batch-size 10000 --batch-window-ms 60000',
  ],
};

/** The table's latest stream, with a one-line error for a missing table or one without a stream. */
export const streamOfTable = async (client: DynamoDBClient, table: string, target: AwsTarget, hint: string): Promise<string> => {
  let arn: string | undefined;
  try {
    arn = (await client.send(new DescribeTableCommand({ TableName: table }))).Table?.LatestStreamArn;
  } catch (error) {
    if (isNotFound(error)) throw new CliError(`table ${table} does not exist in ${whereOf(target)}. ${hint}`, { cause: error });
    throw explainAwsError(error, target);
  }
  if (!arn) throw new CliError(`table ${table} has no stream. Enable one with view type NEW_AND_OLD_IMAGES (or NEW_IMAGE), or pass --stream-arn`);
  return arn;
};

const tableExists = async (client: DynamoDBClient, table: string): Promise<boolean> => {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
};

const metricsPortOf = (text: string | undefined): number | false | undefined => {
  if (text === undefined) return undefined;
  if (/^(off|false|none)$/i.test(text)) return false;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65_535) throw new UsageError(`--metrics-port must be a port from 0 to 65535, or false for none, got \`${text}\`.`);
  return port;
};

/**
 * The worker's failures in the command's words: a busy metrics port names the flag (the library's
 * message speaks of the `metricsPort` option), AWS failures say what to check.
 */
const explainRunError = (error: unknown, target: AwsTarget, port: number): unknown => {
  if (error instanceof ConfigError && error.field === 'metricsPort' && (error.cause as { code?: unknown } | undefined)?.code === 'EADDRINUSE') {
    return new CliError(
      `metrics port ${port} is already in use on this host (another worker?). Pass --metrics-port <n> for another port, --metrics-port 0 for a free one, or --metrics-port false for none`,
      { cause: error },
    );
  }
  return explainAwsError(error, target);
};

/** Waits for SIGTERM or SIGINT; resolves with its name. */
const nextSignal = (): Promise<NodeJS.Signals> =>
  new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => () => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(signal);
    };
    const onTerm = on('SIGTERM');
    const onInt = on('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  });

/** `dynamo-cdc run`: a worker from a config file; resolves with the exit code once it stopped. */
export const runCommand = async (argv: readonly string[], io: CliIo): Promise<number> => {
  const { values } = parseFlags(RUN_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(RUN_SPEC));
    return 0;
  }
  const leaseTable = requiredFlag(values, io, LEASE_TABLE_FLAG, RUN_SPEC);
  const target = awsTarget(values, io);
  const pollIntervalMs = integerFlag(values, io, POLL_INTERVAL, 1);
  const leaseDurationMs = integerFlag(values, io, LEASE_DURATION, 1);
  const initialPosition = choiceFlag(values, io, INITIAL_POSITION, ['TRIM_HORIZON', 'LATEST'] as const);
  const onTrimmedData = choiceFlag(values, io, ON_TRIMMED, ['fail', 'skip'] as const);
  const batchSize = integerFlag(values, io, BATCH_SIZE, 1, 10_000);
  const batchWindowMs = integerFlag(values, io, BATCH_WINDOW, 0, 300_000);
  const checkpointIntervalMs = integerFlag(values, io, CHECKPOINT_INTERVAL, 1);
  const metricsPort = metricsPortOf(stringFlag(values, io, METRICS_PORT));
  const workerId = stringFlag(values, io, WORKER_ID);
  const level = choiceFlag(values, io, LOG_LEVEL, LOG_LEVELS) ?? 'info';
  const { app, file } = await loadConfig(io.cwd, stringFlag(values, io, CONFIG_FLAG));

  // Checked with a one-attempt client first, so a wrong endpoint or a missing table fails in
  // seconds with a line that says what to do, before the worker's own retrying clients start.
  const client = new DynamoDBClient(quickClientConfig(target));
  let streamArn = stringFlag(values, io, STREAM_ARN_FLAG);
  try {
    streamArn ??= await streamOfTable(client, app.table, target, `Check the table in ${file} (or pass --stream-arn), or create the table`);
    const create = values['create-lease-table'] === true || io.env['CREATE_LEASE_TABLE'] === 'true';
    if (!create && !(await tableExists(client, leaseTable))) {
      throw new CliError(`lease table ${leaseTable} does not exist in ${whereOf(target)}. Pass --create-lease-table to create it, or check --lease-table (and --region / --endpoint)`);
    }
    await ensureLeaseTable({ client, tableName: leaseTable, create });
  } catch (error) {
    throw explainAwsError(error, target);
  } finally {
    client.destroy();
  }

  // Listened for from here on, so a signal during start-up still stops the worker gracefully once it runs.
  const signalled = nextSignal();
  const worker = await runWorker({
    app,
    leaseTable,
    streamArn,
    handleSignals: false,
    logger: createLogger({ level, logImages: values['log-images'] === true || io.env['LOG_IMAGES'] === 'true' }),
    ...(target.region ? { region: target.region } : {}),
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
    ...(leaseDurationMs !== undefined ? { leaseDurationMs } : {}),
    ...(initialPosition ? { initialPosition } : {}),
    ...(onTrimmedData ? { onTrimmedData } : {}),
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(batchWindowMs !== undefined ? { batchWindowMs } : {}),
    ...(checkpointIntervalMs !== undefined ? { checkpointIntervalMs } : {}),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    ...(workerId ? { workerId } : {}),
  }).catch((error: unknown) => {
    throw explainRunError(error, target, metricsPort === undefined || metricsPort === false ? 9464 : metricsPort);
  });
  say(io.stderr, `dynamo-cdc: worker ${worker.workerId} is reading ${streamArn} (leases in ${leaseTable}). SIGTERM or Ctrl-C stops it.`);

  const signal = await signalled;
  say(io.stderr, `dynamo-cdc: ${signal}: draining, checkpointing and releasing leases ...`);
  // A second signal while draining means "now": the leases then expire instead of being handed over.
  void nextSignal().then((again) => {
    say(io.stderr, `dynamo-cdc: ${again} again: exiting without a graceful stop`);
    process.exit(130);
  });
  await worker.stop();
  say(io.stderr, 'dynamo-cdc: stopped');
  return 0;
};
