import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine, isDone } from '../core/engine.js';
import type { EngineObserver, RecordStatus } from '../core/engine.js';
import { ConfigError, describeError } from '../errors.js';
import { sequenceOf } from '../events.js';
import type { RawStreamRecord } from '../events.js';
import { createJsonLogger } from '../observability/json-logger.js';
import type { Clock, Logger, Progress, ProgressKey, ProgressStore } from '../ports.js';
import { canonicalSequenceNumber, knownAbout, knowsSomething, latestFor, nextProgress } from './progress.js';

/** The parts of Lambda's DynamoDB stream event the handler reads; `aws-lambda`'s `DynamoDBStreamEvent` fits. */
export interface StreamEventLike {
  readonly Records?: readonly unknown[];
}

/** The parts of Lambda's context the handler reads; `aws-lambda`'s `Context` fits. */
export interface LambdaContextLike {
  getRemainingTimeInMillis(): number;
  readonly awsRequestId?: string;
}

/** What the handler returns: Lambda's partial batch response (`ReportBatchItemFailures`). */
export interface BatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

/** Options of {@link createStreamHandler}. */
export interface StreamHandlerOptions {
  /**
   * Remembers what was done in a batch that ended partly failed, so that no later batch sends a
   * done record again, or a record again to a sink that acknowledged it, however Lambda re-batches
   * the retry. Costs at most one read per batch and one write per partial failure, none on full
   * success (and one write by an invocation that could not read it). Without it, records
   * re-delivered after a partial failure are sent again (at least once, still in order).
   */
  readonly progressStore?: ProgressStore;
  /**
   * Longest wait for one progress-store read or write. A read that has not answered by then is
   * aborted and the batch runs as if nothing were stored; a write is aborted and logged. A write
   * never runs into the last quarter of the deadline margin.
   * @default a quarter of the time before the deadline margin, at most 2 s
   */
  readonly progressTimeoutMs?: number;
  /** @default createJsonLogger(): JSON lines on stdout, no dependencies (pino's `createLogger()` works too) */
  readonly logger?: Logger;
  /** @default the system clock */
  readonly clock?: Clock;
  /** @default Math.random */
  readonly random?: () => number;
  /** Metrics hooks (records delivered and dead-lettered per sink, retries, batch durations). */
  readonly observer?: EngineObserver;
  /**
   * Stop starting new work (records, retries) when this little time is left, and report the rest
   * as unfinished instead of timing out. In-flight requests are aborted at half of it.
   * @default 10% of the time left at the start of the invocation, at least 500 ms and at most 5 s
   */
  readonly deadlineMarginMs?: number;
}

const MAX_PROGRESS_TIMEOUT_MS = 2000;

/**
 * Runs one store call for at most `ms` on `clock`: resolves or rejects with the call, or rejects
 * when the time is up; either way the call's signal is aborted once nobody waits for it.
 */
const within = <T>(clock: Clock, ms: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> => {
  const request = new AbortController();
  const timer = new AbortController();
  let attempt: Promise<T>;
  try {
    attempt = Promise.resolve(call(request.signal));
  } catch (error) {
    attempt = Promise.reject(error);
  }
  // A call that settles after the time is up has nobody waiting for it.
  attempt.catch(() => {});
  const expiry = clock.sleep(Math.max(0, ms), timer.signal).then(() => {
    throw new Error(`No answer within ${Math.round(ms)} ms; the request was aborted`);
  });
  expiry.catch(() => {});
  return Promise.race([attempt, expiry]).finally(() => {
    timer.abort();
    request.abort(new Error('Progress store call no longer awaited'));
  });
};

/**
 * The Lambda handler for a DynamoDB stream event source mapping with `ReportBatchItemFailures`.
 * It returns the lowest sequence number that is not done, so Lambda re-delivers from there, or an
 * empty list when the whole batch is done.
 *
 * @example
 * import app from './dynamo-cdc.config.js';
 * export const handler = createStreamHandler(app, { progressStore: dynamoDbProgressStore({ tableName: process.env.PROGRESS_TABLE! }) });
 */
export const createStreamHandler = (app: App, options: StreamHandlerOptions = {}) => {
  const logger = options.logger ?? createJsonLogger();
  const clock = options.clock ?? systemClock;
  const store = options.progressStore;
  const engine = new Engine({ app, logger, clock, ...(options.random ? { random: options.random } : {}), ...(options.observer ? { observer: options.observer } : {}) });
  const timeoutOption = options.progressTimeoutMs;
  if (timeoutOption !== undefined && !(Number.isFinite(timeoutOption) && timeoutOption > 0)) {
    throw new ConfigError('progressTimeoutMs', `must be a number of milliseconds > 0, got \`${String(timeoutOption)}\` (${typeof timeoutOption}). Leave it out for a quarter of the time left, at most 2 s.`);
  }

  return async (event: StreamEventLike, context: LambdaContextLike): Promise<BatchResponse> => {
    const records = event.Records ?? [];
    if (records.length === 0) return { batchItemFailures: [] };
    const started = clock.now();
    const log = context.awsRequestId ? logger.child({ requestId: context.awsRequestId }) : logger;
    const remaining = context.getRemainingTimeInMillis();
    const margin = options.deadlineMarginMs ?? Math.min(5000, Math.max(500, remaining * 0.1));
    const deadline = started + remaining - margin;
    const abortAt = started + remaining - margin / 2;
    // The write, after the engine stopped, must still leave time to answer.
    const lastWrite = started + remaining - margin / 4;
    const storeTimeout = timeoutOption ?? Math.min(MAX_PROGRESS_TIMEOUT_MS, (remaining - margin) / 4);

    // Malformed records are dead-lettered by the engine; they must not crash the batch here.
    const streamArn = streamArnOf(records);
    const position = positionOf(streamArn, records);
    // Progress is kept in canonical form; the engine is told about the records' own strings.
    // Worked out only when there is progress to use or to keep, off the happy path.
    let sequenceNumbers: string[] | undefined;
    const canonical = (): string[] => (sequenceNumbers ??= records.map((r) => canonicalSequenceNumber(sequenceOf(r))));

    let latest: Progress | undefined;
    // Set when the store could not be read: this batch may send done records again, unknowingly.
    let blind = false;
    // Set once a blind record is stored: no later batch trusts what older records knew.
    let marked = false;
    if (position && store) {
      try {
        const loaded = await within(clock, Math.min(storeTimeout, deadline - clock.now()), (signal) => store.load(position, signal));
        if (loaded.length > 0) latest = latestFor(loaded, new Set(canonical()));
      } catch (error) {
        blind = true;
        log.warn({ err: describeError(error) }, 'progress store read failed; records re-delivered after a partial failure may be sent again');
      }
      if (blind) {
        // Written before anything is sent, so that even a crash cannot leave a replay unrecorded.
        const marker: Progress = { ...position, done: new Set(), acknowledged: new Map(), blind: true };
        try {
          await within(clock, Math.min(storeTimeout, deadline - clock.now()), (signal) => store.save(marker, signal));
          marked = true;
        } catch (error) {
          // Sending now could replay an item's older change unrecorded, and a later batch trusting
          // an older record would then skip the newer one: the older change would stay last.
          // Nothing is sent; Lambda re-delivers the batch once the store answers again.
          log.error(
            { err: describeError(error), sequenceNumber: position.sequenceNumber },
            'progress store can be neither read nor written; nothing sent, Lambda retries the batch. Check the progress table, or remove progressStore to deliver without re-delivery dedupe',
          );
          return { batchItemFailures: [{ itemIdentifier: sequenceOf(records[0]) }] };
        }
      }
    }
    const known = latest ? inRecordsTerms(knownAbout(latest, new Set(canonical())), canonical(), records) : undefined;

    const abort = new AbortController();
    const stopTimer = new AbortController();
    clock.sleep(Math.max(0, abortAt - clock.now()), stopTimer.signal).then(
      () => abort.abort(new Error('Lambda deadline near: in-flight requests aborted')),
      () => {},
    );

    let outcome;
    try {
      outcome = await engine.process(records, {
        ...(known ? { alreadyDone: known.alreadyDone, acknowledged: known.acknowledged } : {}),
        deadline,
        signal: abort.signal,
      });
    } finally {
      stopTimer.abort();
    }

    const summary = { records: records.length, ...outcome.counts, retries: outcome.retries, durationMs: clock.now() - started };
    const done = outcome.watermark >= records.length;
    const failedSeq = done ? '' : sequenceOf(records[outcome.watermark]);
    // One write on a partial failure. A blind batch has marked its start already, or writes its
    // record now whatever the outcome, so that no later batch trusts what older records knew
    // (their items may have been sent again since). A failure point without a sequence number
    // means a whole-batch retry; nothing is kept for it.
    if (position && store && ((blind && !marked) || (!done && failedSeq !== ''))) {
      const statuses = outcome.statuses;
      const progress = nextProgress({ streamArn, sequenceNumbers: canonical(), done: (i) => isDone(statuses[i] as RecordStatus), acknowledged: outcome.acknowledged, blind }, latest);
      if (progress && (blind || knowsSomething(progress))) {
        try {
          const budget = Math.min(storeTimeout, lastWrite - clock.now());
          if (budget <= 0) throw new Error('No time left before the deadline');
          await within(clock, budget, (signal) => store.save(progress, signal));
        } catch (error) {
          log.warn({ err: describeError(error), sequenceNumber: failedSeq }, 'progress store write failed; records done after the failure may be sent again');
        }
      }
    }
    if (done) {
      log.info(summary, 'batch done');
      return { batchItemFailures: [] };
    }

    // An empty identifier makes Lambda retry the whole batch: the right thing when the first
    // record not done has no sequence number to restart from.
    log.warn({ ...summary, watermark: outcome.watermark, sequenceNumber: failedSeq }, 'batch partly done; Lambda re-delivers from sequenceNumber');
    return { batchItemFailures: [{ itemIdentifier: failedSeq }] };
  };
};

/** Translates what is known from canonical sequence numbers to the records' own. */
const inRecordsTerms = (
  known: { alreadyDone: ReadonlySet<string>; acknowledged: ReadonlyMap<string, ReadonlySet<string>> },
  canonical: readonly string[],
  records: readonly unknown[],
): { alreadyDone: Set<string>; acknowledged: Map<string, ReadonlySet<string>> } => {
  const alreadyDone = new Set<string>();
  const acknowledged = new Map<string, ReadonlySet<string>>();
  canonical.forEach((s, i) => {
    if (s === '') return;
    const r = sequenceOf(records[i]);
    if (known.alreadyDone.has(s)) alreadyDone.add(r);
    const sinks = known.acknowledged.get(s);
    if (sinks) acknowledged.set(r, sinks);
  });
  return { alreadyDone, acknowledged };
};

/** The stream the batch comes from: the first `eventSourceARN` there is (a malformed record may lack one). */
const streamArnOf = (records: readonly unknown[]): string => {
  for (const r of records) {
    const arn = (r as RawStreamRecord | null | undefined)?.eventSourceARN;
    if (typeof arn === 'string' && arn !== '') return arn;
  }
  return '';
};

/**
 * Where the batch starts: its first record with a usable sequence number (Lambda delivers a
 * shard's records in order), or undefined when progress cannot be kept.
 */
const positionOf = (streamArn: string, records: readonly unknown[]): ProgressKey | undefined => {
  if (streamArn === '') return undefined;
  for (const r of records) {
    const first = canonicalSequenceNumber(sequenceOf(r));
    if (first !== '') return { streamArn, sequenceNumber: first };
  }
  return undefined;
};
