import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { backfill } from '../backfill/backfill.js';
import type { BackfillProgress, BackfillResult } from '../backfill/backfill.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { CommandSpec, FlagSpec, ParsedValues } from './args.js';
import { choiceFlag, helpText, integerFlag, parseFlags, requiredFlag, stringFlag } from './args.js';
import { awsTarget, ENDPOINT_FLAG, explainAwsError, REGION_FLAG } from './aws.js';
import { loadConfig } from './config.js';
import { CliError, UsageError } from './errors.js';
import { CONFIG_FLAG, JSON_FLAG, LEASE_TABLE_FLAG, STREAM_ARN_FLAG } from './flags.js';
import type { CliIo } from './io.js';
import { isTty, say } from './io.js';
import { ProgressBar } from './progress.js';

const SEGMENTS: FlagSpec = { name: 'segments', type: 'string', value: '<n>', default: '4', help: 'Parallel Scan segments (Scan\'s TotalSegments), 1 to 1000.' };
const MAX_RCU: FlagSpec = {
  name: 'max-rcu',
  type: 'string',
  value: '<units/s>',
  default: 'no limit',
  help: "Read capacity units per second the Scan may consume across all segments (measured from ReturnConsumedCapacity), so the table's own traffic is not throttled.",
};
const PAGE_SIZE: FlagSpec = { name: 'page-size', type: 'string', value: '<items>', default: 'up to 1 MB a page', help: "Items per Scan page (Scan's Limit)." };
const CONSISTENT_READ: FlagSpec = { name: 'consistent-read', type: 'boolean', help: 'Strongly consistent Scan pages (twice the read units); see docs/backfill.md for when it matters.' };
const RESUME: FlagSpec = {
  name: 'resume',
  type: 'string',
  value: '<id>',
  help: 'Continue the unfinished backfill with this id. Without it, an unfinished backfill of the same table and --segments is continued; with --no-resume a new one starts.',
};
const NO_RESUME: FlagSpec = { name: 'no-resume', type: 'boolean', help: 'Start a new backfill even when an unfinished one of the same table exists.' };
const DRY_RUN: FlagSpec = { name: 'dry-run', type: 'boolean', help: 'Check the table, the stream and the lease table, estimate the time, and say what would be done; read no item, write nothing.' };
const CREATE_LEASE_TABLE: FlagSpec = { name: 'create-lease-table', type: 'boolean', help: 'Create the lease table when it is missing (as `run --create-lease-table` does).' };
const LOG_LEVEL: FlagSpec = { name: 'log-level', type: 'string', value: '<level>', env: 'LOG_LEVEL', default: 'warn', help: 'Level of the JSON log lines on stdout: trace, debug, info, warn, error, fatal or silent.' };

export const BACKFILL_SPEC: CommandSpec = {
  name: 'backfill',
  summary: "send every item of the table through the routes as a `backfill` event, then hand off to the stream with no gap",
  usage: ['backfill --lease-table <name> [--config dynamo-cdc.config.ts] [--segments N] [--max-rcu N] [--dry-run]'],
  description: [
    "Before the Scan starts, every shard of the table's stream gets a lease in the lease table at a position no later than now (TRIM_HORIZON for a shard without one), so the worker (`dynamo-cdc run` with the same --lease-table) delivers every change made during and after the backfill. Items go through the config's routes as events of kind `backfill`: a route without .on() takes them, a route with .on(...) only when it lists 'backfill'.",
    "Each segment's position is kept in the lease table once a page is done, so a stopped or killed backfill continues where it stopped when run again. A backfill that cannot finish within the stream's 24 h retention at --max-rcu is refused before it starts. See docs/backfill.md.",
    'Progress goes to stderr (a bar on a terminal, a line a second otherwise); the summary to stdout. SIGINT or SIGTERM stops it after the pages in flight are done; exit code 130.',
  ],
  flags: [CONFIG_FLAG, LEASE_TABLE_FLAG, CREATE_LEASE_TABLE, STREAM_ARN_FLAG, REGION_FLAG, ENDPOINT_FLAG, SEGMENTS, MAX_RCU, PAGE_SIZE, CONSISTENT_READ, RESUME, NO_RESUME, DRY_RUN, JSON_FLAG, LOG_LEVEL],
  examples: [
    'dynamo-cdc backfill --lease-table tasks-cdc-leases --dry-run',
    'dynamo-cdc backfill --lease-table tasks-cdc-leases --segments 8 --max-rcu 500',
    'dynamo-cdc backfill --lease-table tasks-cdc-leases --resume lx3k9a1b2c3',
  ],
};

/** `--max-rcu`: a number > 0; fractions allowed (a budget below one unit a second is a real, slow budget). */
const maxRcuOf = (values: ParsedValues, io: CliIo): number | undefined => {
  const text = stringFlag(values, io, MAX_RCU);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(text) || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--max-rcu must be a number of read capacity units per second > 0, got \`${text}\`.`);
  }
  return value;
};

const FLAG_OF: Readonly<Record<string, string>> = { maxRcu: '--max-rcu', segments: '--segments', pageSize: '--page-size', resume: '--resume', leaseTable: '--lease-table' };

/** The library's configuration errors in the command's words: the flag instead of the option. */
const explainBackfillError = (error: unknown): unknown => {
  if (!(error instanceof ConfigError)) return error;
  const message = error.message.replace(/^Invalid dynamo-cdc configuration: /, '');
  const flag = FLAG_OF[error.field];
  const text = flag ? message.replace(`\`${error.field}\``, flag) : error.field === 'table' ? message.replace('`table` ', 'table ') : message;
  return new CliError(text.replace('(resume: false, CLI: --no-resume)', '(--no-resume)').replace(/\.$/, ''), { cause: error });
};

const duration = (ms: number): string => {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
};

const progressDetail = (p: BackfillProgress): string =>
  `${Math.round(p.itemsPerSecond)} items/s, ${(p.consumedReadUnits / Math.max(1, p.elapsedMs / 1000)).toFixed(1)} RCU/s, segments ${p.segmentsDone}/${p.totalSegments}${p.etaMs !== undefined ? `, ETA ${duration(p.etaMs)}` : ''}`;

const summary = (r: BackfillResult): string => {
  if (r.status === 'dry-run') {
    const time = r.estimate.durationMs === undefined ? 'no --max-rcu, so no time estimate' : `about ${duration(r.estimate.durationMs)} at --max-rcu`;
    return `dry run: table ${r.table} has about ${r.estimate.items} items (${r.estimate.bytes} bytes, ${r.estimate.readUnits} read units to scan; ${time}); ${r.totalSegments} segments; ${r.leasesCreated} lease(s) would be created at TRIM_HORIZON${r.leasesRewound ? `, ${r.leasesRewound} moved back from LATEST` : ''}. Nothing was read or written.`;
  }
  const c = r.counts;
  return `backfill ${r.id} ${r.status === 'done' ? 'done' : 'stopped'}: ${r.items} items of ${r.table}${r.resumed ? ' (resumed)' : ''}; this run: ${c.delivered} delivered, ${c['dead-lettered']} dead-lettered, ${c.unrouted} unrouted, ${r.consumedReadUnits} read units, ${duration(r.durationMs)}; ${r.leasesCreated} lease(s) created at TRIM_HORIZON.`;
};

/** `dynamo-cdc backfill`: resolves with the exit code. */
export const backfillCommand = async (argv: readonly string[], io: CliIo): Promise<number> => {
  const { values } = parseFlags(BACKFILL_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(BACKFILL_SPEC));
    return 0;
  }
  const leaseTable = requiredFlag(values, io, LEASE_TABLE_FLAG, BACKFILL_SPEC);
  const target = awsTarget(values, io);
  const segments = integerFlag(values, io, SEGMENTS, 1, 1000);
  const maxRcu = maxRcuOf(values, io);
  const pageSize = integerFlag(values, io, PAGE_SIZE, 1);
  const resumeId = stringFlag(values, io, RESUME);
  if (resumeId !== undefined && values['no-resume'] === true) throw new UsageError('--resume and --no-resume exclude each other. Pass one of them.');
  const level = choiceFlag(values, io, LOG_LEVEL, ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const) ?? 'warn';
  const { app } = await loadConfig(io.cwd, stringFlag(values, io, CONFIG_FLAG));

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const bar = new ProgressBar(io.stderr, `backfill ${app.table}`, undefined, isTty(io.stderr));
  let drawn = false;
  const client = new DynamoDBClient({ ...(target.region ? { region: target.region } : {}), ...(target.endpoint ? { endpoint: target.endpoint } : {}), maxAttempts: 3 });
  let result: BackfillResult;
  try {
    const streamArn = stringFlag(values, io, STREAM_ARN_FLAG);
    result = await backfill({
      app,
      leaseTable,
      client,
      createLeaseTable: values['create-lease-table'] === true,
      logger: createLogger({ level }),
      signal: stop.signal,
      resume: values['no-resume'] === true ? false : (resumeId ?? 'auto'),
      dryRun: values['dry-run'] === true,
      consistentRead: values['consistent-read'] === true,
      ...(target.region ? { region: target.region } : {}),
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
      ...(streamArn ? { streamArn } : {}),
      ...(segments !== undefined ? { segments } : {}),
      ...(maxRcu !== undefined ? { maxRcu } : {}),
      ...(pageSize !== undefined ? { pageSize } : {}),
      onProgress: (p) => {
        drawn = true;
        bar.update(p.items, p.estimatedItems, progressDetail(p));
      },
    });
  } catch (error) {
    if (drawn) bar.clear();
    throw explainAwsError(explainBackfillError(error), target);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    client.destroy();
  }
  if (drawn) bar.finish();
  if (values['json'] === true) say(io.stdout, JSON.stringify(result));
  else say(io.stdout, summary(result));
  if (result.status === 'stopped') {
    say(io.stderr, `dynamo-cdc: stopped; run the same command again (or with --resume ${result.id}) to continue where it stopped`);
    return 130;
  }
  if (result.status === 'done') say(io.stderr, `dynamo-cdc: the stream now carries on: run \`dynamo-cdc run --lease-table ${leaseTable}\` (or keep it running) to deliver the changes made since the backfill started`);
  return 0;
};
