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

/** A function instance's handler, as {@link simulateRandomEventSourceMapping} invokes it. */
export type StreamHandlerLike = (event: StreamEventLike, context: LambdaContextLike) => Promise<BatchResponse>;

/** One invocation {@link simulateRandomEventSourceMapping} made. */
export interface RandomInvocation {
  /** 0, 1, 2, ... in the order made. */
  readonly index: number;
  /** The function instance that ran it; a new number after every cold start. */
  readonly instance: number;
  /** True when this invocation started a new instance (in-process memory lost). */
  readonly coldStart: boolean;
  /** Index (in the shard's records) of the batch's first record, and its size. */
  readonly from: number;
  readonly size: number;
  /**
   * As in {@link Invocation}, plus `crashed`: the instance was killed at a random moment (out of
   * memory, host failure) before it answered; the whole batch again, on a new instance.
   * `timeout` also ends the instance.
   */
  readonly result: Invocation['result'] | 'crashed';
  /** What the handler threw, for `error`. */
  readonly error?: unknown;
  readonly durationMs: number;
  /** Index of the first record not yet passed by the mapping's checkpoint, after this invocation. */
  readonly checkpoint: number;
}

/** The batch one invocation is about to get; see {@link RandomEventSourceMappingOptions.beforeInvocation}. */
export interface PlannedInvocation {
  readonly index: number;
  readonly instance: number;
  readonly coldStart: boolean;
  readonly from: number;
  readonly size: number;
}

/** Options of {@link simulateRandomEventSourceMapping}. */
export interface RandomEventSourceMappingOptions {
  /** The shard's records in stream order. */
  readonly records: readonly LambdaStreamRecord[];
  /** The clock the handler runs on; the function timeout and crash moments are measured on it. */
  readonly clock: Clock;
  /** Source of every choice the mapping makes, in [0, 1): seed it to replay a run. */
  readonly random: () => number;
  /**
   * Starts a function instance (a cold start) and returns its handler: called before the first
   * invocation, after a crash or a timeout, and at random cold starts. Build a new handler here, so
   * that in-process memory is lost as it is in Lambda.
   */
  readonly startInstance: (instance: number) => StreamHandlerLike;
  /**
   * The instance is gone (killed, timed out, or replaced by a cold start). Whatever it still has in
   * flight must not reach the outside any more: Lambda freezes or destroys the environment.
   * @default nothing
   */
  readonly stopInstance?: (instance: number) => void;
  /** Largest batch (the mapping's `BatchSize`). @default 100 */
  readonly maxBatchSize?: number;
  /** The function's timeout. @default 60000 */
  readonly timeoutMs?: number;
  /** Chance that an invocation runs on a new instance although the last one is healthy. @default 0.1 */
  readonly coldStartRate?: number;
  /** Chance that an invocation's instance is killed at a random moment before it answers. @default 0.05 */
  readonly crashRate?: number;
  /** Stop after this many invocations in a row that did not move the checkpoint. @default 50 */
  readonly maxStalled?: number;
  /** Stop after this many invocations in all. @default 10000 */
  readonly maxInvocations?: number;
  /** Called before each invocation (to tag what the instance does with the invocation). */
  readonly beforeInvocation?: (planned: PlannedInvocation) => void;
  /** Called after each invocation, with the checkpoint it left (to check invariants as they go). */
  readonly afterInvocation?: (invocation: RandomInvocation) => void;
}

/** The result of {@link simulateRandomEventSourceMapping}. */
export interface RandomEventSourceMappingResult {
  readonly invocations: RandomInvocation[];
  /** Index of the first record the checkpoint has not passed; `records.length` when all are. */
  readonly checkpoint: number;
  /** True when the run ended because the checkpoint stopped moving (`maxStalled`), not because it reached the end. */
  readonly stalled: boolean;
}

const never = new Promise<never>(() => {});

/**
 * Drives handlers as an unreliable but correct event source mapping may, per AWS's documented
 * behaviour for DynamoDB streams with `ReportBatchItemFailures` and `BisectBatchOnFunctionError`:
 * every batch starts at the checkpoint with a random size (a retry may be re-batched shorter,
 * longer, or split in two); an empty `batchItemFailures` passes the whole batch; otherwise the
 * lowest reported sequence number becomes the checkpoint; an invalid, empty or unknown identifier,
 * a thrown error, a timeout or a crash retries from the same checkpoint. Instances start cold at
 * random and after every crash or timeout, losing in-process memory. Sequence numbers are compared
 * as integers, so a shard whose numbers cross a digit-length boundary is handled as Lambda does.
 * Unlike {@link simulateEventSourceMapping}, the handler is raced against its timeout: a handler
 * that never returns ends as `timeout`.
 *
 * @example
 * const { checkpoint, invocations } = await simulateRandomEventSourceMapping({
 *   records, clock, random: seededRandom(42), startInstance: () => createStreamHandler(app, { clock }),
 * });
 */
export const simulateRandomEventSourceMapping = async (options: RandomEventSourceMappingOptions): Promise<RandomEventSourceMappingResult> => {
  const { records, clock, random } = options;
  const maxBatchSize = Math.max(1, options.maxBatchSize ?? 100);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const coldStartRate = options.coldStartRate ?? 0.1;
  const crashRate = options.crashRate ?? 0.05;
  const maxStalled = options.maxStalled ?? 50;
  const maxInvocations = options.maxInvocations ?? 10_000;
  const invocations: RandomInvocation[] = [];
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

  let checkpoint = 0;
  let stalled = 0;
  let instance = -1;
  let handler: StreamHandlerLike | undefined;
  let lastSize = 0;
  let lastWholeFailure = false;

  while (checkpoint < records.length && stalled < maxStalled && invocations.length < maxInvocations) {
    const coldStart = handler === undefined || random() < coldStartRate;
    if (coldStart) {
      if (handler !== undefined) options.stopInstance?.(instance);
      instance++;
      handler = options.startInstance(instance);
    }
    const current = handler as StreamHandlerLike;

    // Lambda reads from the checkpoint; after a whole-batch failure it may bisect the batch or
    // re-read it at another size; after a partial failure or a success it reads afresh.
    let size: number;
    const roll = random();
    if (lastWholeFailure && roll < 0.4) size = Math.ceil(lastSize / 2);
    else if (lastWholeFailure && roll < 0.6) size = lastSize;
    else size = roll < 0.8 ? between(1, maxBatchSize) : maxBatchSize;
    size = Math.min(size, records.length - checkpoint);
    const from = checkpoint;
    const batch = records.slice(from, from + size);
    const index = invocations.length;
    options.beforeInvocation?.({ index, instance, coldStart, from, size });

    const started = clock.now();
    const crashAt = random() < crashRate ? Math.floor(random() * timeoutMs) : undefined;
    const context: LambdaContextLike = { getRemainingTimeInMillis: () => Math.max(0, started + timeoutMs - clock.now()), awsRequestId: `req-${index + 1}` };
    const limit = new AbortController();
    type Ended = { kind: 'returned'; response: BatchResponse } | { kind: 'threw'; error: unknown } | { kind: 'timeout' } | { kind: 'crashed' };
    let call: Promise<BatchResponse>;
    try {
      call = current({ Records: batch }, context);
    } catch (error) {
      call = Promise.reject(error);
    }
    const ended: Ended = await Promise.race([
      call.then(
        (response): Ended => ({ kind: 'returned', response }),
        (error: unknown): Ended => ({ kind: 'threw', error }),
      ),
      clock.sleep(crashAt ?? timeoutMs, limit.signal).then(
        (): Ended => (crashAt === undefined ? { kind: 'timeout' } : { kind: 'crashed' }),
        () => never,
      ),
    ]);
    limit.abort();
    const durationMs = clock.now() - started;

    let result: RandomInvocation['result'];
    let next = checkpoint;
    if (ended.kind === 'timeout' || ended.kind === 'crashed' || (ended.kind === 'returned' && durationMs > timeoutMs)) {
      result = ended.kind === 'crashed' ? 'crashed' : 'timeout';
      // The environment is gone: a new one serves the retry.
      options.stopInstance?.(instance);
      handler = undefined;
    } else if (ended.kind === 'threw') {
      result = 'error';
    } else {
      const failures = ended.response?.batchItemFailures ?? [];
      if (failures.length === 0) {
        result = 'done';
        next = from + batch.length;
      } else {
        const ids = failures.map((f) => f?.itemIdentifier);
        const positions = new Map(batch.map((r, i) => [r.dynamodb.SequenceNumber, i]));
        if (ids.some((id) => typeof id !== 'string' || !positions.has(id))) result = 'retry-all';
        else {
          result = 'partial';
          next = from + (positions.get((ids as string[]).reduce(lowest)) as number);
        }
      }
    }
    lastWholeFailure = result !== 'done' && result !== 'partial';
    lastSize = batch.length;
    stalled = next > checkpoint ? 0 : stalled + 1;
    checkpoint = next;
    const invocation: RandomInvocation = { index, instance, coldStart, from, size: batch.length, result, durationMs, checkpoint, ...(ended.kind === 'threw' ? { error: ended.error } : {}) };
    invocations.push(invocation);
    options.afterInvocation?.(invocation);
  }
  if (handler !== undefined) options.stopInstance?.(instance);
  return { invocations, checkpoint, stalled: checkpoint < records.length };
};
