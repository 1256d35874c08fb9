/**
 * `dynamo-cdc demo` (and `npm run demo`): the whole pipeline on this machine, no AWS account.
 *
 * DynamoDB Local and s3rver start in this process's care; the TaskApp table (users and their tasks,
 * from DynamoDB's getting-started lab) gets a stream of new and old images; a worker leases its
 * shard and routes typed events to an S3 data-lake export, NDJSON files and the console while a
 * realistic workload runs against the table. Once every change is delivered or dead-lettered the
 * worker stops gracefully, the outputs are read back and checked against the stream, and the last
 * line on stdout is machine-readable:
 *   {"demo":"ok","changes":N,"delivered":N,"deadLettered":N}
 *
 * Usage: npm run demo [-- --users N --tasks-per-user N --out DIR]
 */
import { realpathSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ConditionalCheckFailedException, DeleteItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { marshall } from '@aws-sdk/util-dynamodb';
import { z } from 'zod';
import { consoleSink, createLogger, defineApp, entity, fileDeadLetterQueue, fileSink, route } from '../index.js';
import type { App, EngineObserver, Sink } from '../index.js';
import { localClientConfig, startDynamoDbLocal } from '../local/dynamodb-local.js';
import type { DynamoDbLocal } from '../local/dynamodb-local.js';
import { readWholeStream } from '../local/read-stream.js';
import { createSourceTable } from '../local/tables.js';
import { startS3rver } from '../local/s3rver.js';
import type { LocalS3 } from '../local/s3rver.js';
import { s3Export } from '../sinks/s3/index.js';
import { throttlingError } from '../testing/sinks.js';
import { Worker, dynamoDbLeaseStore, dynamoDbStreamsApi, ensureLeaseTable } from '../worker/index.js';
import type { CommandSpec, FlagSpec } from './args.js';
import { helpText, integerFlag, parseFlags } from './args.js';
import { UsageError } from './errors.js';
import type { CliIo } from './io.js';

const TABLE = 'TaskApp';
const LEASE_TABLE = 'dynamo-cdc-demo-leases';
const BUCKET = 'taskapp-lake';
const PREFIX = 'cdc/';
const PROGRESS_EVERY_MS = 500;
const CATCH_UP_TIMEOUT_MS = 60_000;
const DAY_S = 24 * 60 * 60;

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  summary: 'the whole thing on this machine with DynamoDB Local: no AWS account needed',
  usage: ['demo [--users N] [--tasks-per-user N] [--batch-size N] [--out DIR]', '(or: npm run demo -- [flags])'],
  description: [
    'Runs dynamo-cdc end to end on this machine: DynamoDB Local (needs Java) and s3rver, the TaskApp table with a stream, a workload of users and tasks, and a worker delivering every change to an S3 export, NDJSON files and the console. Ends with a summary on stderr and one JSON line on stdout.',
  ],
  flags: [
    { name: 'users', type: 'string', value: '<n>', default: '4', help: 'Users to create (1 to 10000).' },
    { name: 'tasks-per-user', type: 'string', value: '<n>', default: '6', help: 'Tasks per user (1 to 10000).' },
    { name: 'batch-size', type: 'string', value: '<n>', default: '1000', help: 'Records per GetRecords call of the worker (1 to 1000).' },
    { name: 'out', type: 'string', value: '<dir>', default: 'out/demo', help: 'Where the files and the downloaded S3 export go.' },
  ],
  examples: ['dynamo-cdc demo --users 2 --tasks-per-user 3'],
};

// ---------------------------------------------------------------------------------------------
// The app: typed entities and routes, as a user of dynamo-cdc writes them.

const TaskSchema = z.object({
  PK: z.string(),
  SK: z.string(),
  TaskId: z.string(),
  Title: z.string(),
  Status: z.enum(['OPEN', 'IN_PROGRESS', 'DONE']),
  Version: z.number().int(),
  /** Epoch seconds: DynamoDB's time to live deletes the task after this. */
  ExpiresAt: z.number().optional(),
});
const UserSchema = z.object({ PK: z.string(), SK: z.literal('PROFILE'), UserId: z.string(), Name: z.string() });

const Task = entity('Task', { key: { PK: 'USER#', SK: 'TASK#' }, schema: TaskSchema });
const User = entity('User', { key: { PK: 'USER#', SK: 'PROFILE' }, schema: UserSchema });

/** Fails every fifth request with a throttle, as a busy destination does, so retries show; the retry is a new request. */
const flaky = <E>(inner: Sink<E>, onThrottle: () => void): Sink<E> => {
  let requests = 0;
  return {
    ...inner,
    send: async (events, signal) => {
      requests++;
      if (requests % 5 === 0) {
        onThrottle();
        throw throttlingError();
      }
      return inner.send(events, signal);
    },
  };
};

/** A Writable for `consoleSink` that prefixes each line and forwards it to `target`. */
const prefixedLines = (target: NodeJS.WritableStream, prefix: string): Writable =>
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8').replace(/^(?=.)/gm, prefix);
      target.write(text, (error) => done(error ?? null));
    },
  });

interface Paths {
  readonly changes: string;
  readonly taskStatus: string;
  readonly deadLetters: string;
  readonly s3: string;
}

const buildApp = (paths: Paths, s3: S3Client, stderr: NodeJS.WritableStream, onThrottle: () => void): App =>
  defineApp({
    table: TABLE,
    routes: [
      // Status changes, as domain events.
      route(Task)
        .on('modify')
        .when((e) => e.changed.includes('Status'))
        .transform((e) => ({
          type: `Task.${e.newImage.Status}`,
          taskId: e.newImage.TaskId,
          from: e.oldImage?.Status,
          version: e.newImage.Version,
          eventID: e.eventID,
          at: new Date(e.meta.approximateCreationTime).toISOString(),
        }))
        .to(fileSink({ name: 'task-status', path: paths.taskStatus })),
      // Every change to the data lake: gzip NDJSON under Hive partitions; short objects for a short demo.
      route('*').to(s3Export({ bucket: BUCKET, prefix: PREFIX, client: s3, rollover: { maxAgeMs: 500 } })),
      // Every change, as it is, to a file; this destination throttles now and then.
      route('*').to(flaky(fileSink({ name: 'all-changes', path: paths.changes }), onThrottle)),
      // A short line per user change, to watch.
      route(User).to(consoleSink({ name: 'console', format: 'summary', stream: prefixedLines(stderr, '  [console] ') })),
    ],
    retry: { maxAttempts: 6, baseDelayMs: 50, maxDelayMs: 1000, throttlingBaseDelayMs: 200 },
    deadLetter: fileDeadLetterQueue({ path: paths.deadLetters }),
  });

// ---------------------------------------------------------------------------------------------
// The table and the workload.

// No UpdateTimeToLive on the table: DynamoDB Local's own sweeper runs at moments of its choosing
// and writes its deletes with an event name the SDK does not know; the workload expires items itself.

/** What the workload did so far; the progress line reads it while the workload runs. */
interface Tally {
  /** Writes that changed an item, so one stream record each. */
  changes: number;
  /** When each of those writes was acknowledged, in order (epoch ms). */
  readonly writtenAt: number[];
  /** Updates refused by optimistic locking: no change, so no stream record. */
  conflicts: number;
  /** Tasks deleted because their `ExpiresAt` passed. */
  expired: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Users and their tasks; status changes under optimistic locking on `Version` where some stale
 * writers lose; deletes; one item that breaks the Task schema; and the deletes of expired tasks.
 */
const runWorkload = async (client: DynamoDBClient, size: { users: number; tasks: number }, tally: Tally, signal: AbortSignal): Promise<void> => {
  const changed = () => {
    tally.changes++;
    tally.writtenAt.push(Date.now());
  };
  const put = async (item: Record<string, unknown>) => {
    signal.throwIfAborted();
    await client.send(new PutItemCommand({ TableName: TABLE, Item: marshall(item, { removeUndefinedValues: true }) }));
    changed();
  };
  const setStatus = async (user: number, task: number, status: string, expectedVersion: number) => {
    signal.throwIfAborted();
    try {
      await client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { PK: { S: `USER#${user}` }, SK: { S: `TASK#${task}` } },
          UpdateExpression: 'SET #status = :status, Version = :next',
          ConditionExpression: 'Version = :expected',
          ExpressionAttributeNames: { '#status': 'Status' },
          ExpressionAttributeValues: { ':status': { S: status }, ':next': { N: String(expectedVersion + 1) }, ':expected': { N: String(expectedVersion) } },
        }),
      );
      changed();
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      tally.conflicts++;
    }
  };

  // Every fourth task (from the second) is a reminder that lapses a second after it is created;
  // every fourth (from the fourth) lives a week. The others never expire.
  let lastExpiry = 0;
  const expiryOf = (task: number): number | undefined => {
    if (task % 4 === 1) return (lastExpiry = nowSeconds() + 1);
    if (task % 4 === 3) return nowSeconds() + 7 * DAY_S;
    return undefined;
  };
  for (let u = 0; u < size.users; u++) {
    await put({ PK: `USER#${u}`, SK: 'PROFILE', UserId: `${u}`, Name: `User ${u}` });
    for (let t = 0; t < size.tasks; t++) {
      await put({ PK: `USER#${u}`, SK: `TASK#${t}`, TaskId: `${u}-${t}`, Title: `Task ${t} of user ${u}`, Status: 'OPEN', Version: 1, ExpiresAt: expiryOf(t) });
    }
  }
  for (let u = 0; u < size.users; u++) {
    for (let t = 0; t < size.tasks; t++) {
      await setStatus(u, t, 'IN_PROGRESS', 1);
      if (t % 3 === 0) await setStatus(u, t, 'DONE', 1); // a stale writer: it read Version 1 before the change above
      await setStatus(u, t, 'DONE', 2);
    }
  }
  for (let u = 0; u < size.users; u++) {
    signal.throwIfAborted();
    await client.send(new DeleteItemCommand({ TableName: TABLE, Key: { PK: { S: `USER#${u}` }, SK: { S: 'TASK#0' } } }));
    changed();
  }
  // One item that breaks the Task schema: it must reach the dead-letter queue, not stop the rest.
  await put({ PK: 'USER#0', SK: 'TASK#bad', TaskId: 'bad', Title: 'Archived by an old client', Status: 'ARCHIVED', Version: 1 });

  // Time-to-live expiry. On AWS, with TTL enabled on `ExpiresAt`, DynamoDB's own TTL process deletes
  // these items some time after they expire; their stream records carry the DynamoDB service as
  // userIdentity, and dynamo-cdc marks them `expired: true`. DynamoDB Local does not run that process
  // on demand, so the demo makes the same deletes itself, conditional on the expiry as the TTL
  // process's are. They are ordinary deletes in the stream (`expired: false`): the demo does not fake
  // the service's identity.
  // A timer may fire a millisecond before the wall clock turns the second: wait on the clock itself.
  while (nowSeconds() <= lastExpiry) await sleep(Math.max(1, (lastExpiry + 1) * 1000 - Date.now()), undefined, { signal });
  const now = { ':now': { N: String(nowSeconds()) } };
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    signal.throwIfAborted();
    const page = await client.send(
      new ScanCommand({ TableName: TABLE, FilterExpression: 'ExpiresAt < :now', ExpressionAttributeValues: now, ProjectionExpression: 'PK, SK', ExclusiveStartKey: startKey }),
    );
    for (const key of page.Items ?? []) {
      try {
        await client.send(new DeleteItemCommand({ TableName: TABLE, Key: key, ConditionExpression: 'ExpiresAt < :now', ExpressionAttributeValues: now }));
        changed();
        tally.expired++;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
};

// ---------------------------------------------------------------------------------------------
// Reading the results back.

type Line = Record<string, unknown>;

const readLines = async (path: string): Promise<Line[]> => {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);
};

const eventIdOf = (line: unknown): string | undefined => {
  const id = (line as { eventID?: unknown } | null | undefined)?.eventID;
  return typeof id === 'string' ? id : undefined;
};

const idsOf = (lines: readonly unknown[]): Set<string> => new Set(lines.map(eventIdOf).filter((id): id is string => id !== undefined));

/** Lists the export's objects, downloads each into `directory`, and returns their lines. */
const downloadExport = async (client: S3Client, directory: string): Promise<{ objects: number; lines: Line[] }> => {
  const lines: Line[] = [];
  let objects = 0;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX, ContinuationToken: token }));
    for (const { Key: key } of page.Contents ?? []) {
      if (!key) continue;
      const { Body } = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      if (!Body) throw new Error(`s3://${BUCKET}/${key} has no body`);
      const stored = Buffer.from(await Body.transformToByteArray());
      const file = join(directory, BUCKET, ...key.split('/'));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, stored);
      const text = (key.endsWith('.gz') ? gunzipSync(stored) : stored).toString('utf8');
      for (const line of text.split('\n')) if (line) lines.push(JSON.parse(line) as Line);
      objects++;
    }
    token = page.NextContinuationToken;
  } while (token);
  return { objects, lines };
};

// ---------------------------------------------------------------------------------------------
// The command.

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

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Runs the demo and resolves with the process exit code: 0 when every change written was
 * delivered (to the all-changes file and the S3 export) or dead-lettered, 1 otherwise, 130 when
 * interrupted; a bad flag is a {@link UsageError} for `main` to report (exit 2). Progress and the summary go to `io.stderr`; `io.stdout` gets
 * one JSON line, `{"demo":"ok"|"failed","changes":N,"delivered":N,"deadLettered":N}`.
 *
 * @example
 * process.exitCode = await main(['demo', '--users', '2']);
 */
export async function demoCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const say = (line: string) => void io.stderr.write(`${line}\n`);
  const options = parseOptions(argv, io);
  if (options === 'help') {
    io.stdout.write(helpText(DEMO_SPEC));
    return 0;
  }

  const started = Date.now();
  const paths: Paths = {
    changes: join(options.out, 'changes.ndjson'),
    taskStatus: join(options.out, 'task-status.ndjson'),
    deadLetters: join(options.out, 'dead-letters.ndjson'),
    s3: join(options.out, 's3'),
  };
  const tally: Tally = { changes: 0, writtenAt: [], conflicts: 0, expired: 0 };
  const result = { changes: 0, delivered: 0, deadLettered: 0 };
  // Written to stdout once everything is shut down, so that it is the last line of the run.
  let verdict: { ok: boolean; reason?: string; code: number } = { ok: false, reason: 'did not finish', code: 1 };

  // Ctrl-C stops the run, and everything started is still shut down.
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let local: DynamoDbLocal | undefined;
  let s3: LocalS3 | undefined;
  let streamsClient: DynamoDBStreamsClient | undefined;
  let worker: Worker | undefined;
  let progress: NodeJS.Timeout | undefined;
  try {
    // Only the files this demo writes: --out may be a directory that holds other things.
    await Promise.all(Object.values(paths).map((path) => rm(path, { recursive: true, force: true })));

    say('starting DynamoDB Local and s3rver ...');
    const [dynamo, lake] = await Promise.allSettled([startDynamoDbLocal(), startS3rver({ buckets: [BUCKET] })]);
    if (dynamo.status === 'fulfilled') local = dynamo.value;
    if (lake.status === 'fulfilled') s3 = lake.value;
    if (dynamo.status === 'rejected') throw dynamo.reason;
    if (lake.status === 'rejected') throw lake.reason;
    const db = dynamo.value;
    const lakeS3 = lake.value;
    say(`  DynamoDB Local and s3rver (bucket ${BUCKET}) answer, in ${seconds(Date.now() - started)}`);

    const streamArn = await createSourceTable(db.client, TABLE);
    await ensureLeaseTable({ client: db.client, tableName: LEASE_TABLE, create: true });
    say(`  table ${TABLE} with a stream of new and old images; lease table ${LEASE_TABLE}`);

    // What each sink acknowledged and the entries retried, as the engine reports them.
    const acked = new Map<string, number>();
    let retries = 0;
    let throttles = 0;
    const observer: EngineObserver = {
      delivered: (sink, count) => void acked.set(sink, (acked.get(sink) ?? 0) + count),
      retried: () => void retries++,
    };
    streamsClient = new DynamoDBStreamsClient(localClientConfig(db.endpoint));
    worker = new Worker({
      app: buildApp(paths, lakeS3.client, io.stderr, () => void throttles++),
      streamArn,
      streams: dynamoDbStreamsApi({ client: streamsClient }),
      leases: dynamoDbLeaseStore({ tableName: LEASE_TABLE, client: db.client }),
      pollIntervalMs: 100,
      leaseDurationMs: 3000,
      maxRecordsPerRead: options.batchSize,
      observer,
      logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'error', destination: io.stderr }),
    });
    await worker.start();
    say(`worker ${worker.workerId.split(':').at(-1) ?? ''} started; it reads shard ${worker.ownedShards.join(', ') || '(none yet)'}`);

    // Progress: what the worker finished against what the workload wrote, and the lag: how long
    // the oldest change not yet done has been written. The worker's own measure, the shard's
    // iterator age (status().iteratorAgeMs), is the one to watch on AWS, where change times have
    // whole seconds; DynamoDB Local stamps them to the minute, so here it would read up to 60 s.
    let maxLagMs = 0;
    let lastLine = '';
    const running = worker;
    const lagNow = (): number => {
      const { delivered, deadLettered } = running.counters;
      const oldest = tally.writtenAt[delivered + deadLettered];
      const lag = oldest === undefined ? 0 : Math.max(0, Date.now() - oldest);
      maxLagMs = Math.max(maxLagMs, lag);
      return lag;
    };
    const tick = () => {
      const lag = lagNow();
      const c = running.counters;
      const line = `  delivered ${c.delivered}/${tally.changes} · dead-lettered ${c.deadLettered} · throttled ${throttles} · lag ${seconds(lag)}`;
      if (line !== lastLine) say(line);
      lastLine = line;
    };
    progress = setInterval(tick, PROGRESS_EVERY_MS);

    say(`writing the workload: ${options.users} users with ${options.tasks} tasks each ...`);
    const workloadStarted = Date.now();
    await runWorkload(db.client, { users: options.users, tasks: options.tasks }, tally, interrupt.signal);
    result.changes = tally.changes;
    say(
      `  ${tally.changes} changes written in ${seconds(Date.now() - workloadStarted)}: ${tally.conflicts} stale updates rejected by optimistic locking (no stream record), ${tally.expired} expired tasks deleted`,
    );

    say('waiting for the worker to catch up ...');
    const deadline = Date.now() + CATCH_UP_TIMEOUT_MS;
    let caughtUp = false;
    while (!interrupt.signal.aborted) {
      const c = worker.counters;
      if (c.delivered + c.deadLettered >= tally.changes) {
        caughtUp = true;
        break;
      }
      const failed = worker.status().find((s) => s.state === 'failed');
      if (failed) throw new Error(`the worker's reader of shard ${failed.shardId} failed; run with LOG_LEVEL=warn to see why`);
      if (Date.now() >= deadline) break;
      lagNow();
      await sleep(50);
    }
    clearInterval(progress);
    tick();
    if (interrupt.signal.aborted) throw interrupt.signal.reason;
    if (!caughtUp) {
      const c = worker.counters;
      say(`timed out after ${seconds(CATCH_UP_TIMEOUT_MS)}: ${c.delivered + c.deadLettered} of ${tally.changes} changes accounted for. Run with LOG_LEVEL=warn to see why.`);
    }

    say('stopping the worker: drain, checkpoint, release the lease ...');
    await worker.stop();
    say(`  stopped; ${worker.counters.leasesReleased} lease released`);

    // Read back everything and account for each stream record by its eventID. The stream is read
    // for one record more than expected, so an unexpected extra record would show.
    say('reading back the stream, the files and the S3 export ...');
    const stream = idsOf(await readWholeStream(streamsClient, streamArn, tally.changes + 1));
    const allChanges = await readLines(paths.changes);
    const statusEvents = await readLines(paths.taskStatus);
    const letters = await readLines(paths.deadLetters);
    const exported = await downloadExport(lakeS3.client, paths.s3);
    const inFile = idsOf(allChanges);
    const inLake = idsOf(exported.lines);
    const lettered = idsOf(letters.map((l) => l['record']));

    let delivered = 0;
    let deadLettered = 0;
    const unaccounted: string[] = [];
    for (const id of stream) {
      const sent = inFile.has(id) && inLake.has(id);
      const dead = lettered.has(id);
      if (sent && !dead) delivered++;
      else if (dead && !inFile.has(id) && !inLake.has(id)) deadLettered++;
      else unaccounted.push(id);
    }
    const strangers = [...new Set([...inFile, ...inLake, ...lettered])].filter((id) => !stream.has(id));
    Object.assign(result, { delivered, deadLettered });
    const ok = caughtUp && stream.size === tally.changes && unaccounted.length === 0 && strangers.length === 0;

    const row = (label: string, value: number | string, where = '') => say(`  ${label.padEnd(24)} ${String(value).padStart(6)}  ${where}`.trimEnd());
    say('');
    say('summary');
    row('changes written', tally.changes, `${stream.size} records in the stream`);
    row('delivered', delivered, 'to the all-changes file and the S3 export');
    row('  all-changes file', inFile.size, `${allChanges.length} lines -> ${paths.changes}`);
    row('  S3 export', inLake.size, `${exported.lines.length} lines in ${exported.objects} objects -> s3://${BUCKET}/${PREFIX} (copied to ${paths.s3})`);
    row('  task-status events', statusEvents.length, `-> ${paths.taskStatus}`);
    row('  console (users)', acked.get('console') ?? 0, 'lines on stderr');
    row('dead-lettered', deadLettered, `-> ${paths.deadLetters}`);
    for (const l of letters) {
      const error = l['error'] as { name?: string; message?: string } | undefined;
      say(`    ${eventIdOf(l['record']) ?? '?'}: ${error?.name ?? 'Error'}: ${error?.message ?? ''}`);
    }
    row('throttled requests', throttles, `of the all-changes file, ${retries} entries retried`);
    row('stale updates rejected', tally.conflicts, 'by optimistic locking on Version');
    row('max lag seen', seconds(maxLagMs));
    row('time taken', seconds(Date.now() - started));
    const some = (ids: readonly string[]) => `${ids.slice(0, 5).join(', ')}${ids.length > 5 ? `, and ${ids.length - 5} more` : ''}`;
    if (unaccounted.length > 0) say(`  not accounted for exactly once: ${unaccounted.length} records, ${some(unaccounted)}`);
    if (strangers.length > 0) say(`  in the outputs but not in the stream: ${strangers.length} records, ${some(strangers)}`);
    if (stream.size !== tally.changes) say(`  the stream holds ${stream.size} records for ${tally.changes} changes written`);
    say('');
    verdict = ok ? { ok, code: 0 } : { ok, code: 1, reason: caughtUp ? 'not every change was accounted for exactly once' : 'timed out waiting for the worker' };
  } catch (error) {
    const interrupted = interrupt.signal.aborted;
    const reason = interrupted ? 'interrupted' : error instanceof Error ? error.message : String(error);
    say(interrupted ? 'interrupted; shutting down' : `demo failed: ${reason}`);
    result.changes = tally.changes;
    verdict = { ok: false, reason, code: interrupted ? 130 : 1 };
  } finally {
    clearInterval(progress);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // Each step runs even when one before it fails, so nothing is left running.
    const steps: [string, (() => Promise<void>) | undefined][] = [
      ['the worker', worker ? () => (worker as Worker).stop() : undefined],
      ['the streams client', streamsClient ? async () => streamsClient?.destroy() : undefined],
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
  }
  io.stdout.write(`${JSON.stringify({ demo: verdict.ok ? 'ok' : 'failed', ...result, ...(verdict.reason ? { reason: verdict.reason } : {}) })}\n`);
  return verdict.code;
}

const isEntryPoint = (): boolean => {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
};

// `npm run demo` runs this file: through `main`, so its flags and errors read as `dynamo-cdc demo`'s.
if (isEntryPoint()) process.exitCode = await (await import('./main.js')).main(['demo', ...process.argv.slice(2)]);
