import { resolve } from 'node:path';
import type { Logger } from '../ports.js';
import type { CommandSpec, FlagSpec, ParsedValues } from './args.js';
import { helpText, integerFlag, parseFlags, stringFlag, urlFlag } from './args.js';
import type { AwsTarget } from './aws.js';
import { loadConfig } from './config.js';
import { UsageError } from './errors.js';
import { CONFIG_FLAG, JSON_FLAG } from './flags.js';
import { clip, isoOrNull, table } from './format.js';
import type { CliIo } from './io.js';
import { isTty, say } from './io.js';
import type { LetterResult } from './dlq-redrive.js';
import { Redrive } from './dlq-redrive.js';
import type { LetterEntry, LetterSource } from './letters.js';
import { claimCheckReader, fileSource, sqsSource } from './letters.js';
import { ProgressBar } from './progress.js';

const FILE: FlagSpec = { name: 'file', type: 'string', value: '<path>', help: 'A dead-letter file written by fileDeadLetterQueue({ path }): one JSON letter per line. Never changed; a redrive records the letters it delivered in <file>.redriven and skips them next time.' };
const QUEUE_URL: FlagSpec = { name: 'queue-url', type: 'string', value: '<url>', env: 'DLQ_URL', help: 'An SQS dead-letter queue written by sqsDeadLetterQueue({ queueUrl }).' };
const SQS_REGION: FlagSpec = { name: 'region', type: 'string', value: '<region>', env: 'AWS_REGION', help: 'Region of the queue (and of S3, for claim-checked letters).' };
const SQS_ENDPOINT: FlagSpec = { name: 'sqs-endpoint', type: 'string', value: '<url>', env: 'SQS_ENDPOINT', help: 'SQS endpoint, for an SQS-compatible server or a VPC endpoint.' };
const SINK: FlagSpec = { name: 'sink', type: 'string', value: '<name>', help: 'Only letters of this sink (the `sink` of the letter).' };
const EVENT_ID: FlagSpec = { name: 'event-id', type: 'string', multiple: true, value: '<id>', help: 'Only the letter(s) with this eventID; repeat for several.' };
const LIMIT: FlagSpec = { name: 'limit', type: 'string', value: '<n>', help: 'Read at most this many letters.' };
const VISIBILITY = (seconds: number): FlagSpec => ({
  name: 'visibility-timeout',
  type: 'string',
  value: '<seconds>',
  default: String(seconds),
  help: 'SQS: how long a received message stays hidden from other consumers while this command handles it. Messages not deleted are made visible again when the command ends.',
});
const DRY_RUN: FlagSpec = { name: 'dry-run', type: 'boolean', short: 'n', help: 'Show what would be sent where, and send nothing (SQS messages are left in the queue).' };
const ONLY_FAILED_SINK: FlagSpec = {
  name: 'only-failed-sink',
  type: 'boolean',
  help: "Send a letter only through the routes to the sink that failed it (the letter's `sink`), so the other sinks do not get a duplicate. On by default; letters that failed before routing (no `sink`) go through every route.",
};
const ALL_ROUTES: FlagSpec = { name: 'all-routes', type: 'boolean', help: 'Send each letter through every route of the config, as a new record would go (turns --only-failed-sink off).' };

const SOURCE_FLAGS = [FILE, QUEUE_URL, SQS_REGION, SQS_ENDPOINT, SINK, EVENT_ID, LIMIT];

export const DLQ_LIST_SPEC: CommandSpec = {
  name: 'dlq list',
  summary: 'list dead-lettered records',
  usage: ['dlq list --file <path> [--json]', 'dlq list --queue-url <url> [--json]'],
  description: [
    'One row per letter: its eventID, the sink that failed it, the error, the attempts and when the last one was. --json prints the letters as they are stored (records included) under `letters`.',
    'SQS: receiving a message hides it for --visibility-timeout seconds and counts as a receive; the command makes every message it read visible again when it ends. If the dead-letter queue has a redrive policy of its own, listing counts toward its maxReceiveCount.',
  ],
  flags: [...SOURCE_FLAGS, VISIBILITY(30), JSON_FLAG],
  examples: ['dynamo-cdc dlq list --file out/dead-letters.ndjson', 'dynamo-cdc dlq list --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/tasks-dlq --json | jq \'.letters[].error\''],
};

export const DLQ_REDRIVE_SPEC: CommandSpec = {
  name: 'dlq redrive',
  summary: 'send dead-lettered records through their routes again',
  usage: ['dlq redrive --file <path> [--config <file>] [--dry-run]', 'dlq redrive --queue-url <url> [--config <file>] [--dry-run]'],
  description: [
    "Each letter's record (the raw stream record, unchanged, so it keeps its eventID) goes through the config's routes with the engine: the same decoding, entities, predicates, transforms, retries and per-item order as in the stream. By default only through the routes to the sink that failed it.",
    'A letter that fails again stays where it is: an SQS message is made visible again, a file keeps it. A delivered SQS message is deleted; a letter delivered from a file is recorded in <file>.redriven, and a redrive of the file again skips it. Letters of the same item are sent in the order they are read. The exit code is 1 when any letter failed again, or with --dry-run would fail.',
  ],
  flags: [CONFIG_FLAG, ...SOURCE_FLAGS, VISIBILITY(300), DRY_RUN, ONLY_FAILED_SINK, ALL_ROUTES, JSON_FLAG],
  examples: [
    'dynamo-cdc dlq redrive --file out/dead-letters.ndjson --dry-run',
    'dynamo-cdc dlq redrive --queue-url "$DLQ_URL" --config dynamo-cdc.config.ts --sink task-status',
  ],
};

export const DLQ_SPEC: CommandSpec = {
  name: 'dlq',
  summary: 'read dead-lettered records and redrive them',
  usage: ['dlq list (--file <path> | --queue-url <url>) [flags]', 'dlq redrive (--file <path> | --queue-url <url>) [--config <file>] [--dry-run] [flags]'],
  description: ['Run `dynamo-cdc dlq list --help` or `dynamo-cdc dlq redrive --help` for the flags of each.'],
  flags: [],
};

const openSource = (values: ParsedValues, io: CliIo, spec: CommandSpec, visibilityDefault: number): Promise<LetterSource> => {
  const file = stringFlag(values, io, FILE);
  const queueUrl = typeof values['queue-url'] === 'string' ? values['queue-url'] : file === undefined ? stringFlag(values, io, QUEUE_URL) : undefined;
  if (file !== undefined && queueUrl !== undefined) throw new UsageError(`pass --file or --queue-url, not both. Run \`dynamo-cdc ${spec.name} --help\` for its flags.`);
  if (file !== undefined) return fileSource(resolve(io.cwd, file), file);
  if (queueUrl === undefined) throw new UsageError(`\`dynamo-cdc ${spec.name}\` needs --file <path> or --queue-url <url> (or DLQ_URL). Run \`dynamo-cdc ${spec.name} --help\` for its flags.`);
  const target: AwsTarget = { region: stringFlag(values, io, SQS_REGION) ?? io.env['AWS_DEFAULT_REGION'], endpoint: urlFlag(values, io, SQS_ENDPOINT, 'http://127.0.0.1:9324') };
  const visibilityTimeout = integerFlag(values, io, { ...VISIBILITY(visibilityDefault) }, 1, 43_200) ?? visibilityDefault;
  return Promise.resolve(sqsSource({ queueUrl, target, visibilityTimeout, limit: integerFlag(values, io, LIMIT, 1) }));
};

/** Applies --sink and --event-id; an entry that is not a letter is always kept, so it is reported. */
const filterOf = (values: ParsedValues) => {
  const sink = typeof values['sink'] === 'string' ? values['sink'] : undefined;
  const ids = Array.isArray(values['event-id']) ? new Set(values['event-id'].map(String)) : undefined;
  return (entry: LetterEntry): boolean => {
    const letter = entry.letter;
    if (!letter) return sink === undefined && ids === undefined;
    if (sink !== undefined && letter.sink !== sink) return false;
    return ids === undefined || ids.has(letter.position.eventID);
  };
};

/** `dynamo-cdc dlq list`. */
const listCommand = async (argv: readonly string[], io: CliIo): Promise<number> => {
  const { values } = parseFlags(DLQ_LIST_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(DLQ_LIST_SPEC));
    return 0;
  }
  const source = await openSource(values, io, DLQ_LIST_SPEC, 30);
  const keep = filterOf(values);
  const limit = integerFlag(values, io, LIMIT, 1);
  const entries: LetterEntry[] = [];
  const received: LetterEntry[] = [];
  try {
    outer: for await (const batch of source.batches()) {
      received.push(...batch);
      for (const entry of batch) {
        if (!keep(entry)) continue;
        if (limit !== undefined && entries.length >= limit) break outer;
        entries.push(entry);
      }
    }
  } finally {
    try {
      await source.release(received);
    } finally {
      source.close();
    }
  }
  const skipped = source.skipped();
  const hidden = skipped ? ` (${skipped} redriven before, not shown)` : '';
  if (values['json']) {
    const letters = entries.map((e) => (e.letter ? { id: e.id, ...e.letter } : { id: e.id, invalid: e.invalid }));
    io.stdout.write(`${JSON.stringify({ source: source.description, count: entries.length, redrivenBefore: skipped, letters }, null, 2)}\n`);
    return 0;
  }
  if (entries.length === 0) {
    say(io.stdout, `No dead letters in ${source.description}${values['sink'] || values['event-id'] ? ' that match the filters' : ''}${hidden}.`);
    return 0;
  }
  const rows = entries.map((e) => {
    const l = e.letter;
    if (!l) return [e.id, '-', '-', clip(`not a dead letter: ${e.invalid ?? ''}`, 80), '-', '-'];
    const when = isoOrNull(l.lastAttemptAt ?? l.firstAttemptAt) ?? '-';
    return [e.id, l.position.eventID, l.sink ?? '(before routing)', clip(`${l.error.name} (${l.error.class})${l.claimCheck ? ' [claim-checked]' : ''}`, 60), String(l.attempts), when];
  });
  for (const line of table(['ID', 'EVENT ID', 'SINK', 'ERROR', 'ATTEMPTS', 'LAST ATTEMPT'], rows)) say(io.stdout, line);
  const invalid = entries.filter((e) => !e.letter).length;
  const valid = entries.length - invalid;
  say(io.stdout, `${valid} dead letter${valid === 1 ? '' : 's'} in ${source.description}${invalid ? ` (and ${invalid} entr${invalid === 1 ? 'y that is' : 'ies that are'} not a dead letter)` : ''}${hidden}`);
  return 0;
};

const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silentLogger };

/** Logs as JSON lines to a stream (with --verbose), for the engine's retries and failures. */
const streamLogger = (stream: NodeJS.WritableStream, bindings: Record<string, unknown> = {}): Logger => {
  const at =
    (level: string) =>
    (a: object | string, b?: string): void => {
      const entry = typeof a === 'string' ? { level, msg: a, ...bindings } : { level, msg: b ?? '', ...bindings, ...a };
      stream.write(`${JSON.stringify(entry)}\n`);
    };
  return { debug: () => {}, info: at('info'), warn: at('warn'), error: at('error'), child: (more) => streamLogger(stream, { ...bindings, ...more }) };
};

/** `<eventID> (line 2, sink all)`: a letter in a message. */
const nameOf = (r: LetterResult): string => (r.eventID ? `${r.eventID} (${r.id}${r.sink ? `, sink ${r.sink}` : ''})` : r.id);

/** Prints what a redrive did (or would do); resolves with the exit code. */
const reportRedrive = (io: CliIo, values: ParsedValues, source: LetterSource, results: readonly LetterResult[], undeletable: number): number => {
  const dryRun = values['dry-run'] === true;
  const failed = results.filter((r) => r.outcome === 'failed');
  const sent = results.filter((r) => r.outcome === 'delivered');
  if (values['json'] === true) {
    io.stdout.write(
      `${JSON.stringify({ source: source.description, dryRun, total: results.length, delivered: sent.length, failed: failed.length, duplicates: results.filter((r) => r.outcome === 'duplicate').length, redrivenBefore: source.skipped(), letters: results }, null, 2)}\n`,
    );
  } else if (dryRun) {
    if (results.length === 0) say(io.stdout, `No dead letters in ${source.description}${values['sink'] || values['event-id'] ? ' that match the filters' : ''}.`);
    else {
      const rows = results.map((r) => [r.id, r.eventID ?? '-', r.kind ?? '-', r.key === undefined ? '-' : clip(JSON.stringify(r.key), 60), r.outcome === 'would-send' ? r.sinks.join(', ') : r.outcome === 'duplicate' ? '(duplicate: skipped)' : `(would fail: ${clip(r.error ?? '', 70)})`]);
      for (const line of table(['ID', 'EVENT ID', 'KIND', 'KEY', 'WOULD SEND TO'], rows)) say(io.stdout, line);
      say(io.stdout, `dry run: ${results.filter((r) => r.outcome === 'would-send').length} of ${results.length} letters would be sent; nothing was sent`);
    }
  } else {
    for (const r of failed) say(io.stderr, `failed ${nameOf(r)}: ${r.error ?? ''}`);
    const skipped = source.skipped();
    say(io.stdout, `redrove ${sent.length} of ${results.length} letters from ${source.description}${failed.length ? `; ${failed.length} failed` : ''}${skipped ? ` (${skipped} redriven before, skipped)` : ''}`);
  }
  if (undeletable > 0) say(io.stderr, `dynamo-cdc: ${undeletable} redriven messages could not be deleted from the queue; a later redrive sends them again (same eventIDs)`);
  if (failed.length > 0 && dryRun) {
    const names = failed.slice(0, 5).map(nameOf).join('; ');
    say(io.stderr, `dynamo-cdc: ${failed.length} of ${results.length} letters would fail: ${names}${failed.length > 5 ? `; and ${failed.length - 5} more` : ''}. Fix the cause before the redrive`);
    return 1;
  }
  if (failed.length > 0) {
    say(io.stderr, `dynamo-cdc: ${failed.length} of ${results.length} letters were not redriven; ${source.leftBehind}. Fix the cause and run dlq redrive again`);
    return 1;
  }
  return 0;
};

/** `dynamo-cdc dlq redrive`. */
const redriveCommand = async (argv: readonly string[], io: CliIo, verbose: boolean): Promise<number> => {
  const { values } = parseFlags(DLQ_REDRIVE_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(DLQ_REDRIVE_SPEC));
    return 0;
  }
  if (values['all-routes'] && values['only-failed-sink']) throw new UsageError('--all-routes and --only-failed-sink contradict each other; pass one.');
  const dryRun = values['dry-run'] === true;
  const limit = integerFlag(values, io, LIMIT, 1);
  const { app, file } = await loadConfig(io.cwd, stringFlag(values, io, CONFIG_FLAG));
  const source = await openSource(values, io, DLQ_REDRIVE_SPEC, 300);
  const keep = filterOf(values);
  const redrive = new Redrive({
    app,
    configFile: file,
    onlyFailedSink: values['all-routes'] !== true,
    dryRun,
    logger: verbose ? streamLogger(io.stderr) : silentLogger,
    withRecord: claimCheckReader({ region: stringFlag(values, io, SQS_REGION) ?? io.env['AWS_DEFAULT_REGION'], endpoint: undefined }),
  });

  const received: LetterEntry[] = [];
  const removed = new Set<LetterEntry>();
  let undeletable = 0;
  // JSON is for scripts: a bar only when a person watches stderr.
  const showBar = !dryRun && (values['json'] !== true || isTty(io.stderr));
  const counted = showBar ? await source.count().catch(() => undefined) : undefined;
  const total = limit !== undefined && counted !== undefined ? Math.min(limit, counted) : counted;
  const progress = showBar ? new ProgressBar(io.stderr, 'redrive', total) : undefined;
  let handled = 0;
  progress?.update(0);
  try {
    let full = false;
    for await (const batch of source.batches()) {
      received.push(...batch);
      const selected: LetterEntry[] = [];
      for (const entry of batch) {
        if (!keep(entry)) continue;
        if (limit !== undefined && handled >= limit) {
          full = true;
          break;
        }
        handled++;
        selected.push(entry);
      }
      const done = await redrive.batch(selected);
      if (done.length) {
        undeletable += await source.remove(done);
        for (const e of done) removed.add(e);
      }
      progress?.update(handled, total !== undefined && handled > total ? handled : undefined);
      if (full) break;
    }
  } finally {
    progress?.finish();
    try {
      await source.release(received.filter((e) => !removed.has(e)));
    } finally {
      source.close();
    }
  }
  return reportRedrive(io, values, source, redrive.results, undeletable);
};

/** `dynamo-cdc dlq <list|redrive>`. */
export const dlqCommand = async (argv: readonly string[], io: CliIo, verbose = false): Promise<number> => {
  const [sub, ...rest] = argv;
  if (sub === 'list') return listCommand(rest, io);
  if (sub === 'redrive') return redriveCommand(rest, io, verbose);
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(helpText(DLQ_SPEC));
    return 0;
  }
  if (sub === undefined) throw new UsageError('`dynamo-cdc dlq` needs a command: list or redrive. Run `dynamo-cdc dlq --help`.');
  throw new UsageError(`unknown dlq command \`${sub}\`. Use \`dynamo-cdc dlq list\` or \`dynamo-cdc dlq redrive\` (--help for their flags).`);
};
