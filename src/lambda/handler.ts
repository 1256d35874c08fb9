import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine, isDone } from '../core/engine.js';
import type { EngineObserver } from '../core/engine.js';
import { describeError } from '../errors.js';
import { sequenceOf } from '../events.js';
import type { RawStreamRecord } from '../events.js';
import { createLogger } from '../observability/logger.js';
import type { Clock, Logger, ProgressStore } from '../ports.js';

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
   * Remembers what was done after a partial failure, so the re-delivered records that were already
   * delivered are not sent again. Costs one read per batch and one write per partial failure.
   * Without it, re-delivered records are sent again (at least once, still in order).
   */
  readonly progressStore?: ProgressStore;
  /** @default createLogger() */
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
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? systemClock;
  const engine = new Engine({ app, logger, clock, ...(options.random ? { random: options.random } : {}), ...(options.observer ? { observer: options.observer } : {}) });

  return async (event: StreamEventLike, context: LambdaContextLike): Promise<BatchResponse> => {
    const records = event.Records ?? [];
    if (records.length === 0) return { batchItemFailures: [] };
    const started = clock.now();
    const log = context.awsRequestId ? logger.child({ requestId: context.awsRequestId }) : logger;
    // A malformed first record is dead-lettered by the engine; it must not crash the batch here.
    const streamArn = (records[0] as RawStreamRecord | null | undefined)?.eventSourceARN ?? '';
    const firstSeq = sequenceOf(records[0]);

    let alreadyDone: ReadonlySet<string> | undefined;
    if (options.progressStore && firstSeq) {
      try {
        alreadyDone = await options.progressStore.load({ streamArn, sequenceNumber: firstSeq });
      } catch (error) {
        log.warn({ err: describeError(error) }, 'progress store read failed; records re-delivered after a partial failure may be sent again');
      }
    }

    const remaining = context.getRemainingTimeInMillis();
    const margin = options.deadlineMarginMs ?? Math.min(5000, Math.max(500, remaining * 0.1));
    const deadline = started + remaining - margin;
    const abort = new AbortController();
    const stopTimer = new AbortController();
    clock.sleep(Math.max(0, remaining - margin / 2), stopTimer.signal).then(
      () => abort.abort(new Error('Lambda deadline near: in-flight requests aborted')),
      () => {},
    );

    let outcome;
    try {
      outcome = await engine.process(records, { alreadyDone, deadline, signal: abort.signal });
    } finally {
      stopTimer.abort();
    }

    const summary = { records: records.length, ...outcome.counts, retries: outcome.retries, durationMs: clock.now() - started };
    if (outcome.watermark >= records.length) {
      log.info(summary, 'batch done');
      return { batchItemFailures: [] };
    }

    const failedSeq = sequenceOf(records[outcome.watermark]);
    if (options.progressStore && failedSeq) {
      const done = new Set<string>();
      for (let i = outcome.watermark + 1; i < records.length; i++) {
        if (isDone(outcome.statuses[i] as (typeof outcome.statuses)[number])) done.add(sequenceOf(records[i]));
      }
      if (done.size > 0) {
        try {
          await options.progressStore.save({ streamArn, sequenceNumber: failedSeq }, done);
        } catch (error) {
          log.warn({ err: describeError(error), sequenceNumber: failedSeq }, 'progress store write failed; records done after the failure may be sent again');
        }
      }
    }
    // An empty identifier makes Lambda retry the whole batch: the right thing when the first
    // record not done has no sequence number to restart from.
    log.warn({ ...summary, watermark: outcome.watermark, sequenceNumber: failedSeq }, 'batch partly done; Lambda re-delivers from sequenceNumber');
    return { batchItemFailures: [{ itemIdentifier: failedSeq }] };
  };
};
