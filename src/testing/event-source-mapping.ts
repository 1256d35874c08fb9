import type { BatchResponse, LambdaContextLike, StreamEventLike } from '../lambda/handler.js';
import type { Clock } from '../ports.js';
import type { LambdaStreamRecord } from './records.js';

/** One invocation the simulated event source mapping made. */
export interface Invocation {
  /** Index (in the shard's records) of the batch's first record, and its size. */
  readonly from: number;
  readonly size: number;
  /**
   * `done`: an empty `batchItemFailures`; `partial`: a valid failure, re-delivered from it;
   * `retry-all`: an invalid identifier, the whole batch again; `error` / `timeout`: the function
   * failed, the whole batch again.
   */
  readonly result: 'done' | 'partial' | 'retry-all' | 'error' | 'timeout';
  readonly durationMs: number;
}

/** Options of {@link simulateEventSourceMapping}. */
export interface EventSourceMappingOptions {
  /** The shard's records in stream order. */
  readonly records: readonly LambdaStreamRecord[];
  readonly handler: (event: StreamEventLike, context: LambdaContextLike) => Promise<BatchResponse>;
  /** The clock the handler runs on; the function timeout is measured on it. */
  readonly clock: Clock;
  /** @default 100 */
  readonly batchSize?: number;
  /** The function's timeout. @default 60000 */
  readonly timeoutMs?: number;
  /** Stop after this many invocations (a guard against a batch that never succeeds). @default 1000 */
  readonly maxInvocations?: number;
}

const lowest = (a: string, b: string) => (BigInt(a) <= BigInt(b) ? a : b);

/**
 * Drives a handler as Lambda's event source mapping does for one DynamoDB stream shard with
 * `ReportBatchItemFailures` (AWS documentation, "Configuring partial batch response"): batches of
 * up to `batchSize` records from the checkpoint; an empty `batchItemFailures` moves the checkpoint
 * past the batch; otherwise the lowest reported sequence number becomes the checkpoint and the next
 * batch starts there; a null, empty or unknown identifier, a thrown error or a timeout retries the
 * whole batch.
 *
 * @example
 * const { invocations } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 100 });
 */
export const simulateEventSourceMapping = async (options: EventSourceMappingOptions): Promise<{ invocations: Invocation[]; checkpoint: number }> => {
  const { records, handler, clock } = options;
  const batchSize = options.batchSize ?? 100;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const invocations: Invocation[] = [];
  let checkpoint = 0;
  while (checkpoint < records.length && invocations.length < (options.maxInvocations ?? 1000)) {
    const batch = records.slice(checkpoint, checkpoint + batchSize);
    const started = clock.now();
    const context: LambdaContextLike = { getRemainingTimeInMillis: () => Math.max(0, started + timeoutMs - clock.now()), awsRequestId: `req-${invocations.length + 1}` };
    let response: BatchResponse | undefined;
    let failed = false;
    try {
      response = await handler({ Records: batch }, context);
    } catch {
      failed = true;
    }
    const durationMs = clock.now() - started;
    const record = (result: Invocation['result']) => invocations.push({ from: checkpoint, size: batch.length, result, durationMs });
    if (durationMs > timeoutMs) {
      record('timeout');
      continue;
    }
    if (failed) {
      record('error');
      continue;
    }
    const failures = response?.batchItemFailures ?? [];
    if (failures.length === 0) {
      record('done');
      checkpoint += batch.length;
      continue;
    }
    const ids = failures.map((f) => f?.itemIdentifier);
    const positions = new Map(batch.map((r, i) => [r.dynamodb.SequenceNumber, i]));
    if (ids.some((id) => typeof id !== 'string' || !positions.has(id))) {
      record('retry-all');
      continue;
    }
    record('partial');
    checkpoint += positions.get((ids as string[]).reduce(lowest)) as number;
  }
  return { invocations, checkpoint };
};
