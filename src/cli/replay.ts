import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ConfigError } from '../errors.js';
import type { Logger } from '../ports.js';
import { dynamoDbReplayCheckpoints } from '../replay/checkpoints.js';
import type { KindCounts } from '../replay/sender.js';
import { resolveRange } from '../replay/range.js';
import { replay } from '../replay/replay.js';
import { selectRoutes } from '../replay/select-routes.js';
import type { ReplayOptions, ReplayReport } from '../replay/replay.js';
import { dynamoDbStreamsApi } from '../worker/dynamodb-streams-api.js';
import type { CommandSpec, FlagSpec, ParsedValues } from './args.js';
import { choiceFlag, helpText, integerFlag, parseFlags, stringFlag } from './args.js';
import type { AwsTarget } from './aws.js';
import { awsTarget, ENDPOINT_FLAG, explainAwsError, isNotFound, quickClientConfig, REGION_FLAG, whereOf } from './aws.js';
import { loadConfig } from './config.js';
import { CliError, UsageError } from './errors.js';
import { CONFIG_FLAG, JSON_FLAG, LEASE_TABLE_FLAG, STREAM_ARN_FLAG } from './flags.js';
import { table } from './format.js';
import type { CliIo } from './io.js';
import { say } from './io.js';
import { streamOfTable } from './run.js';

const SINK: FlagSpec = { name: 'sink', type: 'string', multiple: true, value: '<name>', help: 'Send through every route to this sink (its `name`); repeat for several. A --sink or a --route is needed.' };
const ROUTE: FlagSpec = {
  name: 'route',
  type: 'string',
  multiple: true,
  value: '<route>',
  help: "Send through this route: its place in the config's routes (0, routes[0]) or its description (\"Task.modify -> bus\"); repeat for several.",
};
const SOURCE: FlagSpec = {
  name: 'source',
  type: 'string',
  value: '<stream|s3>',
  default: 'stream',
  help: "Where the records come from: the table's stream (the last 24 h), or the objects the config's s3Export sink wrote.",
};
const FROM: FlagSpec = { name: 'from', type: 'string', value: '<time>', help: 'Records created at or after this time: ISO 8601 (2026-01-01T10:00:00Z) or a duration before now (90s, 30m, 2h, 1d). Default: the oldest.' };
const TO: FlagSpec = { name: 'to', type: 'string', value: '<time>', help: 'Records created before this time (same forms). Default: the stream\'s tip when the replay begins; for s3, the newest object.' };
const FROM_SEQUENCE: FlagSpec = { name: 'from-sequence', type: 'string', value: '<n>', help: 'Records at or after this sequence number.' };
const TO_SEQUENCE: FlagSpec = { name: 'to-sequence', type: 'string', value: '<n>', help: 'Records at or before this sequence number.' };
const DRY_RUN: FlagSpec = { name: 'dry-run', type: 'boolean', short: 'n', help: 'Count what would be sent, per sink, route and kind; send nothing and write no checkpoint.' };
const ID: FlagSpec = {
  name: 'id',
  type: 'string',
  value: '<id>',
  help: 'stream: the name of the replay\'s checkpoints in the lease table. Run again with the same id to resume where it stopped (with the range it began with). Default: a new id, printed.',
};
const POLL_INTERVAL: FlagSpec = { name: 'poll-interval-ms', type: 'string', value: '<ms>', default: '1000', help: 'stream: pause after an empty read of an open shard.' };
const EXPORT: FlagSpec = { name: 'export', type: 'string', value: '<sink>', help: 's3: the s3Export sink of the config whose objects are read. Needed only when it has several.' };
const BUCKET: FlagSpec = { name: 'bucket', type: 'string', value: '<name>', help: "s3: read this bucket instead of the sink's (a copy of the export)." };
const PREFIX: FlagSpec = { name: 'prefix', type: 'string', value: '<prefix>', help: "s3: the export's prefix in it, instead of the sink's." };
const ON_UNREADABLE: FlagSpec = {
  name: 'on-unreadable',
  type: 'string',
  value: '<fail|skip>',
  default: 'fail',
  help: 's3: an object that cannot be read back (permission, bad gzip, a line that is not a change event) stops the replay before its hour, or is skipped; either way it is reported and the exit code is 1.',
};

export const REPLAY_SPEC: CommandSpec = {
  name: 'replay',
  summary: 'send a range of changes again to chosen sinks or routes, from the stream or the S3 export',
  usage: [
    'replay --sink <name> --lease-table <name> [--from <time>] [--to <time>] [--dry-run]',
    'replay --source s3 --sink <name> --from <time> [--to <time>] [--dry-run]',
  ],
  description: [
    "Records go through the chosen routes of the config with the engine: the same decoding, entities, predicates, transforms, retries, dead-letter queue and per-item order as the stream's. Other routes get nothing.",
    "stream: reads the table's stream itself, parents before children, from --from (within the 24 h retention) or --from-sequence, to --to or the tip. Its checkpoints are its own, under replay|<id> in the lease table; the worker's leases are never touched. A run that stops (a record that could not be delivered, Ctrl-C) resumes with the same --id.",
    's3: reads back the objects the s3Export sink wrote (gzip NDJSON under table=/dt=/hr=), an hour at a time, each record once, in stream order within a shard and by creation time across shards. The events are rebuilt from the lines (sets come back as lists, binaries as base64 strings).',
    'Prints counts per sink and kind. Exit code 0 when the whole range was done, 1 when part of it was not (each reason is one line on stderr), 2 when the command line is wrong.',
  ],
  flags: [CONFIG_FLAG, SINK, ROUTE, SOURCE, FROM, TO, FROM_SEQUENCE, TO_SEQUENCE, DRY_RUN, LEASE_TABLE_FLAG, ID, STREAM_ARN_FLAG, REGION_FLAG, ENDPOINT_FLAG, POLL_INTERVAL, EXPORT, BUCKET, PREFIX, ON_UNREADABLE, JSON_FLAG],
  examples: [
    'dynamo-cdc replay --sink search --from 2h --dry-run --lease-table tasks-cdc-leases',
    'dynamo-cdc replay --sink search --from 2026-11-30T08:00:00Z --to 2026-11-30T09:00:00Z --lease-table tasks-cdc-leases',
    'dynamo-cdc replay --source s3 --route "Task.modify -> bus" --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z',
  ],
};

/** Library fields as the command's flags, so a bad value is answered in the words the user typed. */
const FLAG_OF: Readonly<Record<string, string>> = {
  sink: '--sink',
  route: '--route',
  from: '--from',
  to: '--to',
  fromSequence: '--from-sequence',
  toSequence: '--to-sequence',
  exportSink: '--export',
  id: '--id',
};

const asFlagError = (error: unknown): unknown => {
  if (!(error instanceof ConfigError)) return error;
  const flag = FLAG_OF[error.field];
  if (flag === undefined) return error;
  const message = error.message.replace(/^Invalid dynamo-cdc configuration: `[^`]+` /, '');
  return new CliError(`${flag} ${message.replace(/\.$/, '')}`, { cause: error });
};

const list = (values: ParsedValues, name: string): string[] => (Array.isArray(values[name]) ? (values[name] as unknown[]).map(String) : []);

const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silentLogger };

/** JSON lines on stderr (with --verbose): the engine's retries and failures, the shards and objects. */
const stderrLogger = (stream: NodeJS.WritableStream, bindings: Record<string, unknown> = {}): Logger => {
  const at =
    (level: string) =>
    (a: object | string, b?: string): void => {
      const entry = typeof a === 'string' ? { level, msg: a, ...bindings } : { level, msg: b ?? '', ...bindings, ...a };
      stream.write(`${JSON.stringify(entry)}\n`);
    };
  return { debug: () => {}, info: at('info'), warn: at('warn'), error: at('error'), child: (more) => stderrLogger(stream, { ...bindings, ...more }) };
};

const KINDS = ['insert', 'modify', 'remove'] as const;

const rowsOf = (counts: Record<string, KindCounts>): string[][] =>
  Object.entries(counts).map(([name, c]) => [name, ...KINDS.map((k) => String(c[k] ?? 0)), String(KINDS.reduce((n, k) => n + (c[k] ?? 0), 0))]);

const printReport = (io: CliIo, report: ReplayReport): void => {
  const where = report.source === 's3' ? `${report.objects} export object${report.objects === 1 ? '' : 's'}` : `${report.shards.length} shard${report.shards.length === 1 ? '' : 's'}`;
  const range = `${report.range.from ?? '(oldest)'} .. ${report.range.to ?? '(newest)'}${report.range.fromSequence || report.range.toSequence ? ` (sequence ${report.range.fromSequence ?? '*'} .. ${report.range.toSequence ?? '*'})` : ''}`;
  say(io.stdout, `${report.dryRun ? 'dry run: ' : ''}replay${report.id ? ` ${report.id}${report.resumed ? ' (resumed)' : ''}` : ''} from ${report.source} ${range}: ${report.records} record${report.records === 1 ? '' : 's'} in ${where}`);
  if (Object.keys(report.bySink).length > 0) {
    for (const line of table(['SINK', 'INSERT', 'MODIFY', 'REMOVE', 'TOTAL'], rowsOf(report.bySink))) say(io.stdout, line);
    for (const line of table(['ROUTE', 'INSERT', 'MODIFY', 'REMOVE', 'TOTAL'], rowsOf(report.byRoute))) say(io.stdout, line);
  }
  const extras = [
    report.unrouted ? `${report.unrouted} taken by no chosen route` : '',
    report.invalid ? `${report.invalid} that cannot be decoded or routed (dead-lettered)` : '',
    report.duplicates ? `${report.duplicates} duplicate copies in the export skipped` : '',
  ].filter(Boolean);
  if (extras.length) say(io.stdout, `records: ${extras.join('; ')}`);
  if (report.finishedBefore) say(io.stdout, `replay ${report.id ?? ''} finished in an earlier run: nothing was sent. Pass a new --id to replay the range again`);
  else if (report.dryRun) say(io.stdout, 'dry run: nothing was sent');
  else {
    const s = report.statuses;
    say(io.stdout, `sent: ${s.delivered} delivered, ${s['dead-lettered']} dead-lettered${s.blocked + s.unfinished ? `, ${s.blocked + s.unfinished} not delivered` : ''}`);
  }
};

const leaseTableExists = async (client: DynamoDBClient, name: string, target: AwsTarget): Promise<void> => {
  try {
    await client.send(new DescribeTableCommand({ TableName: name }));
  } catch (error) {
    if (isNotFound(error)) {
      throw new CliError(`lease table ${name} does not exist in ${whereOf(target)}. The replay keeps its checkpoints in the worker's lease table: check --lease-table (and --region / --endpoint), or create it with dynamo-cdc run --create-lease-table`, { cause: error });
    }
    throw explainAwsError(error, target);
  }
};

/** `dynamo-cdc replay`. */
export const replayCommand = async (argv: readonly string[], io: CliIo, verbose = false): Promise<number> => {
  const { values } = parseFlags(REPLAY_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(REPLAY_SPEC));
    return 0;
  }
  const sinks = list(values, 'sink');
  const routes = list(values, 'route');
  if (sinks.length === 0 && routes.length === 0) throw new UsageError('`dynamo-cdc replay` needs --sink <name> or --route <route>: where to send the range. Run `dynamo-cdc replay --help` for its flags.');
  const source = choiceFlag(values, io, SOURCE, ['stream', 's3'] as const) ?? 'stream';
  const dryRun = values['dry-run'] === true;
  const onUnreadable = choiceFlag(values, io, ON_UNREADABLE, ['fail', 'skip'] as const);
  const pollIntervalMs = integerFlag(values, io, POLL_INTERVAL, 1);
  const only = (flags: readonly FlagSpec[], where: string) => {
    for (const f of flags) if (values[f.name] !== undefined) throw new UsageError(`--${f.name} applies to --source ${where} only.`);
  };
  if (source === 's3') only([ID, POLL_INTERVAL, LEASE_TABLE_FLAG, REGION_FLAG, ENDPOINT_FLAG], 'stream');
  else only([EXPORT, BUCKET, PREFIX, ON_UNREADABLE], 's3');
  const { app, file } = await loadConfig(io.cwd, stringFlag(values, io, CONFIG_FLAG));
  // Checked before any AWS call, so a typo in a name or a time is answered at once.
  try {
    selectRoutes(app, { sinks, routes });
    resolveRange({ from: values['from'] as string | undefined, to: values['to'] as string | undefined, fromSequence: values['from-sequence'] as string | undefined, toSequence: values['to-sequence'] as string | undefined }, Date.now());
  } catch (error) {
    throw asFlagError(error);
  }
  const logger = verbose ? stderrLogger(io.stderr) : silentLogger;
  const common = {
    app,
    sinks,
    routes,
    dryRun,
    logger,
    ...(typeof values['from'] === 'string' ? { from: values['from'] } : {}),
    ...(typeof values['to'] === 'string' ? { to: values['to'] } : {}),
    ...(typeof values['from-sequence'] === 'string' ? { fromSequence: values['from-sequence'] } : {}),
    ...(typeof values['to-sequence'] === 'string' ? { toSequence: values['to-sequence'] } : {}),
  };
  // Ctrl-C stops reading; what was sent stays checkpointed, and the same --id resumes.
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CliError('stopped by a signal; run again with the same --id to resume', { exitCode: 130 }));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let report: ReplayReport;
  const clients: { destroy(): void }[] = [];
  try {
    let options: ReplayOptions;
    let explain: (error: unknown) => unknown;
    if (source === 's3') {
      explain = (error) => {
        if ((error as { name?: unknown } | null)?.name === 'NoSuchBucket') {
          return new CliError(`the export's bucket does not exist (${(error as Error).message}). Check the s3Export sink's bucket in ${file}, or pass --bucket`, { cause: error });
        }
        return explainAwsError(asFlagError(error), { region: undefined, endpoint: undefined }, 'S3');
      };
      options = {
        ...common,
        signal: abort.signal,
        source: {
          type: 's3',
          ...(typeof values['export'] === 'string' ? { exportSink: values['export'] } : {}),
          ...(typeof values['bucket'] === 'string' ? { bucket: values['bucket'] } : {}),
          ...(typeof values['prefix'] === 'string' ? { prefix: values['prefix'] } : {}),
          ...(onUnreadable ? { onUnreadable } : {}),
          // The export does not keep the ARN: the rebuilt events carry this one when given.
          ...(stringFlag(values, io, STREAM_ARN_FLAG) !== undefined ? { streamArn: stringFlag(values, io, STREAM_ARN_FLAG) as string } : {}),
        },
      };
    } else {
      const target = awsTarget(values, io);
      explain = (error) => explainAwsError(asFlagError(error), target);
      const leaseTable = stringFlag(values, io, LEASE_TABLE_FLAG);
      if (leaseTable === undefined && !dryRun) throw new UsageError('`dynamo-cdc replay` from the stream needs --lease-table (or LEASE_TABLE): the replay keeps its checkpoints there. Run `dynamo-cdc replay --help` for its flags.');
      // Checked with a one-attempt client first, so a wrong endpoint or table fails in seconds with one line.
      const quick = new DynamoDBClient(quickClientConfig(target));
      clients.push(quick);
      let streamArn = stringFlag(values, io, STREAM_ARN_FLAG);
      try {
        streamArn ??= await streamOfTable(quick, app.table, target, `Check the table in ${file} (or pass --stream-arn)`);
        if (leaseTable !== undefined) await leaseTableExists(quick, leaseTable, target);
      } catch (error) {
        throw explainAwsError(error, target);
      }
      const region = target.region ? { region: target.region } : {};
      const endpoint = target.endpoint ? { endpoint: target.endpoint } : {};
      const client = new DynamoDBClient({ maxAttempts: 3, ...region, ...endpoint });
      const streamsClient = new DynamoDBStreamsClient({ maxAttempts: 3, ...region, ...endpoint });
      clients.push(client, streamsClient);
      options = {
        ...common,
        signal: abort.signal,
        source: {
          type: 'stream',
          streamArn,
          streams: dynamoDbStreamsApi({ client: streamsClient }),
          ...(leaseTable !== undefined ? { checkpoints: dynamoDbReplayCheckpoints({ tableName: leaseTable, client }) } : {}),
          ...(typeof values['id'] === 'string' ? { id: values['id'] } : {}),
          ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
        },
      };
    }
    try {
      report = await replay(options);
    } catch (error) {
      if (abort.signal.aborted) throw abort.signal.reason;
      throw explain(error);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const c of clients) c.destroy();
  }
  if (values['json'] === true) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printReport(io, report);
  for (const u of report.unreadable) say(io.stderr, `dynamo-cdc: cannot read ${u.object}: ${u.reason}`);
  if (abort.signal.aborted) say(io.stderr, 'dynamo-cdc: stopped by a signal; what was sent is checkpointed');
  else for (const p of report.problems) say(io.stderr, `dynamo-cdc: ${p}`);
  if (!report.dryRun && report.id && !report.complete) say(io.stderr, `dynamo-cdc: replay ${report.id} is not finished; run again with --id ${report.id} to resume`);
  if (abort.signal.aborted) return 130;
  return report.complete ? 0 : 1;
};
