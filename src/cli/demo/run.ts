/**
 * `dynamo-cdc demo`: starts DynamoDB Local and s3rver, runs a worker over the TaskApp table while the
 * workload writes to it, shows its progress, then reads the outputs back and reports.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { backfill } from '../../backfill/backfill.js';
import type { App } from '../../app.js';
import { createLogger } from '../../index.js';
import type { EngineObserver } from '../../index.js';
import { localClientConfig, startDynamoDbLocal } from '../../local/dynamodb-local.js';
import type { DynamoDbLocal } from '../../local/dynamodb-local.js';
import { readWholeStream } from '../../local/read-stream.js';
import { startS3rver } from '../../local/s3rver.js';
import type { LocalS3 } from '../../local/s3rver.js';
import { createSourceTable } from '../../local/tables.js';
import { Worker, dynamoDbLeaseStore, dynamoDbStreamsApi, ensureLeaseTable } from '../../worker/index.js';
import type { CommandSpec, FlagSpec } from '../args.js';
import { helpText, integerFlag, parseFlags } from '../args.js';
import { UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { BUCKET, buildApp, LEASE_TABLE, TABLE } from './app.js';
import type { Paths } from './app.js';
import type { Outputs } from './report.js';
import { accountFor, downloadExport, idsOf, readLines, seconds, summaryLines } from './report.js';
import type { Tally } from './workload.js';
import { runWorkload, seedExisting } from './workload.js';

const PROGRESS_EVERY_MS = 500;
const CATCH_UP_TIMEOUT_MS = 60_000;

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  summary: 'the whole thing on this machine with DynamoDB Local: no AWS account needed',
  usage: ['demo [--users N] [--tasks-per-user N] [--batch-size N] [--out DIR]', '(or: npm run demo -- [flags])'],
  description: [
    'Runs dynamo-cdc end to end on this machine: DynamoDB Local (needs Java) and s3rver, the TaskApp table with a stream and some items already in it, a backfill that sends those items through the routes, then a workload of users and tasks and a worker delivering every change to an S3 export, NDJSON files and the console. Ends with a summary on stderr and one JSON line on stdout.',
  ],
  flags: [
    { name: 'users', type: 'string', value: '<n>', default: '4', help: 'Users to create (1 to 10000).' },
    { name: 'tasks-per-user', type: 'string', value: '<n>', default: '6', help: 'Tasks per user (1 to 10000).' },
    { name: 'batch-size', type: 'string', value: '<n>', default: '1000', help: 'Records per GetRecords call of the worker (1 to 1000).' },
    { name: 'out', type: 'string', value: '<dir>', default: 'out/demo', help: 'Where the files and the downloaded S3 export go.' },
  ],
  examples: ['dynamo-cdc demo --users 2 --tasks-per-user 3'],
};

interface Options {
  readonly users: number;
  readonly tasks: number;
  readonly batchSize: number;
  readonly out: string;
}

const flagOf = (name: string): FlagSpec => DEMO_SPEC.flags.find((f) => f.name === name) as FlagSpec;

/** The demo's flags, parsed like every other command's; a mistake is a {@link UsageError}. */
const parseOptions = (argv: readonly string[], io: CliIo): Options | 'help' => {
  const { values } = parseFlags(DEMO_SPEC, argv);
  if (values['help']) return 'help';
  const out = typeof values['out'] === 'string' ? values['out'] : 'out/demo';
  if (out.trim() === '') throw new UsageError('--out must be a directory, got an empty string.');
  return {
    users: integerFlag(values, io, flagOf('users'), 1, 10_000) ?? 4,
    tasks: integerFlag(values, io, flagOf('tasks-per-user'), 1, 10_000) ?? 6,
    batchSize: integerFlag(values, io, flagOf('batch-size'), 1, 1000) ?? 1000,
    out,
  };
};

/** What the demo started, so that all of it is stopped, whatever failed. */
interface Running {
  local?: DynamoDbLocal;
  s3?: LocalS3;
  streamsClient?: DynamoDBStreamsClient;
  worker?: Worker;
  progress?: NodeJS.Timeout;
}

/** What the engine reported while the worker ran. */
interface Seen {
  readonly acked: Map<string, number>;
  retries: number;
  throttles: number;
}

type Say = (line: string) => void;

/** Starts DynamoDB Local and s3rver side by side; whichever started is in `running` even when the other fails. */
const startServices = async (running: Running, say: Say, started: number): Promise<{ local: DynamoDbLocal; s3: LocalS3 }> => {
  say('starting DynamoDB Local and s3rver ...');
  const [dynamo, lake] = await Promise.allSettled([startDynamoDbLocal(), startS3rver({ buckets: [BUCKET] })]);
  if (dynamo.status === 'fulfilled') running.local = dynamo.value;
  if (lake.status === 'fulfilled') running.s3 = lake.value;
  if (dynamo.status === 'rejected') throw dynamo.reason;
  if (lake.status === 'rejected') throw lake.reason;
  say(`  DynamoDB Local and s3rver (bucket ${BUCKET}) answer, in ${seconds(Date.now() - started)}`);
  return { local: dynamo.value, s3: lake.value };
};

const observerOf = (seen: Seen): EngineObserver => ({
  delivered: (sink, count) => void seen.acked.set(sink, (seen.acked.get(sink) ?? 0) + count),
  retried: () => void seen.retries++,
});

const startWorker = async (running: Running, services: { local: DynamoDbLocal; s3: LocalS3 }, app: App, streamArn: string, options: Options, io: CliIo, seen: Seen): Promise<Worker> => {
  const observer = observerOf(seen);
  const streamsClient = (running.streamsClient ??= new DynamoDBStreamsClient(localClientConfig(services.local.endpoint)));
  const worker = new Worker({
    app,
    streamArn,
    streams: dynamoDbStreamsApi({ client: streamsClient }),
    leases: dynamoDbLeaseStore({ tableName: LEASE_TABLE, client: services.local.client }),
    pollIntervalMs: 100,
    leaseDurationMs: 3000,
    maxRecordsPerRead: options.batchSize,
    observer,
    logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'error', destination: io.stderr }),
  });
  running.worker = worker;
  await worker.start();
  return worker;
};

/**
 * The progress line: what the worker finished against what the workload wrote, and the lag: how
 * long the oldest change not yet done has been written. The worker's own measure, the shard's
 * iterator age (status().iteratorAgeMs), is the one to watch on AWS, where change times have whole
 * seconds; DynamoDB Local stamps them to the minute, so here it would read up to 60 s.
 */
class Progress {
  maxLagMs = 0;
  #lastLine = '';
  readonly #worker: Worker;
  readonly #tally: Tally;
  readonly #seen: Seen;
  readonly #say: Say;

  constructor(worker: Worker, tally: Tally, seen: Seen, say: Say) {
    this.#worker = worker;
    this.#tally = tally;
    this.#seen = seen;
    this.#say = say;
  }

  lagNow(): number {
    const { delivered, deadLettered } = this.#worker.counters;
    const oldest = this.#tally.writtenAt[delivered + deadLettered];
    const lag = oldest === undefined ? 0 : Math.max(0, Date.now() - oldest);
    this.maxLagMs = Math.max(this.maxLagMs, lag);
    return lag;
  }

  tick(): void {
    const lag = this.lagNow();
    const c = this.#worker.counters;
    const line = `  delivered ${c.delivered}/${this.#tally.changes} · dead-lettered ${c.deadLettered} · throttled ${this.#seen.throttles} · lag ${seconds(lag)}`;
    if (line !== this.#lastLine) this.#say(line);
    this.#lastLine = line;
  }
}

/** Waits until the worker delivered or dead-lettered every change; false after the timeout. */
const waitForCatchUp = async (worker: Worker, tally: Tally, progress: Progress, signal: AbortSignal): Promise<boolean> => {
  const deadline = Date.now() + CATCH_UP_TIMEOUT_MS;
  while (!signal.aborted) {
    const c = worker.counters;
    if (c.delivered + c.deadLettered >= tally.changes) return true;
    const failed = worker.status().find((s) => s.state === 'failed');
    if (failed) throw new Error(`the worker's reader of shard ${failed.shardId} failed; run with LOG_LEVEL=warn to see why`);
    if (Date.now() >= deadline) return false;
    progress.lagNow();
    await sleep(50);
  }
  return false;
};

/**
 * Reads back the stream and every output. The stream is read for one record more than expected, so
 * an unexpected extra record would show.
 */
const readOutputs = async (streamsClient: DynamoDBStreamsClient, streamArn: string, s3: LocalS3, paths: Paths, expected: number): Promise<Outputs> => ({
  stream: idsOf(await readWholeStream(streamsClient, streamArn, expected + 1)),
  allChanges: await readLines(paths.changes),
  statusEvents: await readLines(paths.taskStatus),
  letters: await readLines(paths.deadLetters),
  exported: await downloadExport(s3.client, paths.s3),
});

/** Stops everything started; each step runs even when one before it fails, so nothing is left running. */
const shutdown = async (running: Running, say: Say): Promise<void> => {
  clearInterval(running.progress);
  const { worker, streamsClient, s3, local } = running;
  const steps: [string, (() => Promise<void>) | undefined][] = [
    ['the worker', worker ? () => worker.stop() : undefined],
    ['the streams client', streamsClient ? async () => streamsClient.destroy() : undefined],
    ['s3rver', s3?.stop],
    ['DynamoDB Local', local?.stop],
  ];
  for (const [name, step] of steps) {
    try {
      await step?.();
    } catch (error) {
      say(`stopping ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (local || s3) say('DynamoDB Local and s3rver stopped');
};

interface Verdict {
  readonly ok: boolean;
  readonly reason?: string;
  readonly code: number;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly backfilled: number;
}

/** The demo from the services' start to the summary; everything it starts is recorded in `running`. */
const runDemo = async (options: Options, paths: Paths, io: CliIo, running: Running, tally: Tally, signal: AbortSignal, say: Say): Promise<Verdict> => {
  const started = Date.now();
  // Only the files this demo writes: --out may be a directory that holds other things.
  await Promise.all(Object.values(paths).map((path) => rm(path, { recursive: true, force: true })));
  const services = await startServices(running, say, started);

  const streamArn = await createSourceTable(services.local.client, TABLE);
  await ensureLeaseTable({ client: services.local.client, tableName: LEASE_TABLE, create: true });
  say(`  table ${TABLE} with a stream of new and old images; lease table ${LEASE_TABLE}`);

  const seen: Seen = { acked: new Map(), retries: 0, throttles: 0 };
  const app = buildApp(paths, services.s3.client, io.stderr, () => void seen.throttles++);

  // Data from before: the table is not empty when dynamo-cdc arrives. The backfill sends it, and
  // puts the stream's lease at TRIM_HORIZON first, so the worker below misses no change.
  const seeded = await seedExisting(services.local.client, options.users, tally);
  say(`  ${seeded} items already in the table, written before dynamo-cdc was set up`);
  say('backfilling: a segmented Scan sends each item through the routes as a `backfill` event ...');
  running.streamsClient ??= new DynamoDBStreamsClient(localClientConfig(services.local.endpoint));
  const filled = await backfill({
    app,
    leaseTable: LEASE_TABLE,
    client: services.local.client,
    streams: dynamoDbStreamsApi({ client: running.streamsClient }),
    segments: 2,
    observer: observerOf(seen),
    logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'error', destination: io.stderr }),
    signal,
  });
  if (filled.status !== 'done') throw signal.reason ?? new Error('the backfill stopped before the end');
  say(`  backfill ${filled.id}: ${filled.counts.delivered} items delivered, ${filled.counts['dead-lettered']} dead-lettered, in ${seconds(filled.durationMs)}; lease created at TRIM_HORIZON: ${filled.leasesCreated}`);

  const worker = await startWorker(running, services, app, streamArn, options, io, seen);
  say(`worker ${worker.workerId.split(':').at(-1) ?? ''} started; it reads shard ${worker.ownedShards.join(', ') || '(none yet)'}`);
  const progress = new Progress(worker, tally, seen, say);
  running.progress = setInterval(() => progress.tick(), PROGRESS_EVERY_MS);

  say(`writing the workload: ${options.users} users with ${options.tasks} tasks each ...`);
  const workloadStarted = Date.now();
  await runWorkload(services.local.client, { users: options.users, tasks: options.tasks }, tally, signal);
  say(
    `  ${tally.changes} changes written in ${seconds(Date.now() - workloadStarted)}: ${tally.conflicts} stale updates rejected by optimistic locking (no stream record), ${tally.expired} expired tasks deleted`,
  );

  say('waiting for the worker to catch up ...');
  const caughtUp = await waitForCatchUp(worker, tally, progress, signal);
  clearInterval(running.progress);
  progress.tick();
  if (signal.aborted) throw signal.reason;
  if (!caughtUp) {
    const c = worker.counters;
    say(`timed out after ${seconds(CATCH_UP_TIMEOUT_MS)}: ${c.delivered + c.deadLettered} of ${tally.changes} changes accounted for. Run with LOG_LEVEL=warn to see why.`);
  }

  say('stopping the worker: drain, checkpoint, release the lease ...');
  await worker.stop();
  say(`  stopped; ${worker.counters.leasesReleased} lease released`);

  // Read back everything and account for each stream record by its eventID.
  say('reading back the stream, the files and the S3 export ...');
  const outputs = await readOutputs(running.streamsClient as DynamoDBStreamsClient, streamArn, services.s3, paths, tally.changes);
  const accounting = accountFor(outputs);
  const facts = {
    changes: tally.changes,
    conflicts: tally.conflicts,
    consoleLines: seen.acked.get('console') ?? 0,
    throttles: seen.throttles,
    retries: seen.retries,
    maxLagMs: progress.maxLagMs,
    tookMs: Date.now() - started,
    paths,
  };
  for (const line of summaryLines(outputs, accounting, facts)) say(line);
  const backfillOk = accounting.backfilled === seeded && accounting.backfillMissing.length === 0;
  const ok = caughtUp && backfillOk && outputs.stream.size === tally.changes && accounting.unaccounted.length === 0 && accounting.strangers.length === 0;
  const counts = { delivered: accounting.delivered, deadLettered: accounting.deadLettered, backfilled: accounting.backfilled };
  const reason = !caughtUp ? 'timed out waiting for the worker' : !backfillOk ? `the backfill delivered ${accounting.backfilled} of ${seeded} items to both outputs` : 'not every change was accounted for exactly once';
  return ok ? { ok, code: 0, ...counts } : { ok, code: 1, reason, ...counts };
};

/**
 * Runs the demo and resolves with the process exit code: 0 when every change written was
 * delivered (to the all-changes file and the S3 export) or dead-lettered, 1 otherwise, 130 when
 * interrupted; a bad flag is a {@link UsageError} for `main` to report (exit 2). Progress and the
 * summary go to `io.stderr`; `io.stdout` gets one JSON line,
 * `{"demo":"ok"|"failed","changes":N,"delivered":N,"deadLettered":N,"backfilled":N}`.
 *
 * @example
 * process.exitCode = await main(['demo', '--users', '2']);
 */
export async function demoCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const say: Say = (line) => void io.stderr.write(`${line}\n`);
  const options = parseOptions(argv, io);
  if (options === 'help') {
    io.stdout.write(helpText(DEMO_SPEC));
    return 0;
  }
  const paths: Paths = {
    changes: join(options.out, 'changes.ndjson'),
    taskStatus: join(options.out, 'task-status.ndjson'),
    deadLetters: join(options.out, 'dead-letters.ndjson'),
    s3: join(options.out, 's3'),
  };
  const tally: Tally = { changes: 0, writtenAt: [], conflicts: 0, expired: 0 };

  // Ctrl-C stops the run, and everything started is still shut down.
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const running: Running = {};
  let verdict: Verdict;
  try {
    verdict = await runDemo(options, paths, io, running, tally, interrupt.signal, say);
  } catch (error) {
    const interrupted = interrupt.signal.aborted;
    const reason = interrupted ? 'interrupted' : error instanceof Error ? error.message : String(error);
    say(interrupted ? 'interrupted; shutting down' : `demo failed: ${reason}`);
    verdict = { ok: false, reason, code: interrupted ? 130 : 1, delivered: 0, deadLettered: 0, backfilled: 0 };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await shutdown(running, say);
  }
  // Written once everything is shut down, so that it is the last line of the run.
  const result = { changes: tally.changes, delivered: verdict.delivered, deadLettered: verdict.deadLettered, backfilled: verdict.backfilled };
  io.stdout.write(`${JSON.stringify({ demo: verdict.ok ? 'ok' : 'failed', ...result, ...(verdict.reason ? { reason: verdict.reason } : {}) })}\n`);
  return verdict.code;
}
