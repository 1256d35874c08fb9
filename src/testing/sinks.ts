import { compareSequenceNumbers } from '../events.js';
import type { ChangeEvent } from '../events.js';
import { mayKnowAbout } from '../lambda/progress.js';
import type { Clock, DeadLetter, DeadLetterQueue, Progress, ProgressKey, ProgressStore, Sink, SinkFailure } from '../ports.js';

/** A retryable failure, shaped as the AWS SDK reports a 503. */
export const transientError = (message = 'Service unavailable'): Error =>
  Object.assign(new Error(message), { name: 'ServiceUnavailable', $fault: 'server', $metadata: { httpStatusCode: 503 } });

/** A throttling failure, shaped as the AWS SDK reports one. */
export const throttlingError = (message = 'Rate exceeded'): Error =>
  Object.assign(new Error(message), { name: 'ThrottlingException', $fault: 'client', $retryable: { throttling: true }, $metadata: { httpStatusCode: 400 } });

/** A failure that retrying cannot fix, shaped as the AWS SDK reports a validation error. */
export const permanentError = (message = 'Invalid entry'): Error =>
  Object.assign(new Error(message), { name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 } });

/** Options of {@link MemorySink}. */
export interface MemorySinkOptions {
  /** @default 'memory' */
  readonly name?: string;
  /** @default 10 */
  readonly maxRecords?: number;
  /** @default Infinity */
  readonly maxBytes?: number;
  /** @default false */
  readonly preservesOrderWithinRequest?: boolean;
  /** How long a request that is not full may wait for more events. @default 0 */
  readonly maxWaitMs?: number;
  /** Time one request takes, on `clock`. @default 0 */
  readonly latencyMs?: number;
  readonly clock?: Clock;
}

interface Rule {
  readonly match: (event: unknown) => boolean;
  remaining: number;
  readonly error: () => unknown;
  /** Per event identity: how many times it failed already. */
  readonly counts: Map<unknown, number>;
}

const identity = (event: unknown): unknown => (event as Partial<ChangeEvent> | undefined)?.eventID ?? event;

/**
 * A sink that keeps what it receives, scripted to fail: whole requests (`failRequests`) or chosen
 * entries (`failWhere`), a number of times or for ever. Every entry of every attempt is in `attempts`;
 * acknowledged ones are in `delivered`, in acknowledgement order.
 */
export class MemorySink<E = ChangeEvent> implements Sink<E> {
  readonly name: string;
  readonly limits: { maxRecords: number; maxBytes: number; maxWaitMs: number };
  readonly preservesOrderWithinRequest: boolean;
  readonly delivered: E[] = [];
  readonly attempts: E[] = [];
  readonly requests: (readonly E[])[] = [];
  /** Requests in flight now, and the most there ever were. */
  inFlight = 0;
  maxInFlight = 0;
  readonly #latencyMs: number;
  readonly #clock: Clock | undefined;
  #failRequests = 0;
  #requestError: () => unknown = () => transientError();
  readonly #rules: Rule[] = [];

  constructor(options: MemorySinkOptions = {}) {
    this.name = options.name ?? 'memory';
    this.limits = { maxRecords: options.maxRecords ?? 10, maxBytes: options.maxBytes ?? Infinity, maxWaitMs: options.maxWaitMs ?? 0 };
    this.preservesOrderWithinRequest = options.preservesOrderWithinRequest ?? false;
    this.#latencyMs = options.latencyMs ?? 0;
    this.#clock = options.clock;
  }

  /** The next `count` requests reject as a whole. */
  failRequests(count: number, error: () => unknown = () => transientError()): this {
    this.#failRequests = count;
    this.#requestError = error;
    return this;
  }

  /** Entries matching `match` fail, each up to `times` times (default: always). */
  failWhere(match: (event: E) => boolean, options: { times?: number; error?: () => unknown } = {}): this {
    this.#rules.push({ match: match as (e: unknown) => boolean, remaining: options.times ?? Infinity, error: options.error ?? (() => transientError()), counts: new Map() });
    return this;
  }

  async send(events: readonly E[], signal: AbortSignal): Promise<{ failed: SinkFailure[] }> {
    signal.throwIfAborted();
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.#latencyMs > 0) {
        if (!this.#clock) throw new Error('MemorySink: latencyMs needs a clock');
        await this.#clock.sleep(this.#latencyMs, signal);
      }
      this.requests.push([...events]);
      this.attempts.push(...events);
      if (this.#failRequests > 0) {
        this.#failRequests--;
        throw this.#requestError();
      }
      const failed: SinkFailure[] = [];
      events.forEach((event, index) => {
        for (const rule of this.#rules) {
          if (!rule.match(event)) continue;
          const id = identity(event);
          const n = rule.counts.get(id) ?? 0;
          if (n < rule.remaining) {
            rule.counts.set(id, n + 1);
            failed.push({ index, error: rule.error() });
            return;
          }
        }
        this.delivered.push(event);
      });
      return { failed };
    } finally {
      this.inFlight--;
    }
  }
}

/** A dead-letter queue that keeps its letters; `failNext` makes it fail. */
export class MemoryDeadLetterQueue implements DeadLetterQueue {
  readonly name: string;
  readonly letters: DeadLetter[] = [];
  #fail = 0;

  constructor(name = 'memory-dlq') {
    this.name = name;
  }

  /** The next `count` sends fail (Infinity: every one). */
  failNext(count: number): this {
    this.#fail = count;
    return this;
  }

  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (this.#fail > 0) {
      this.#fail--;
      throw transientError('Dead-letter queue unavailable');
    }
    this.letters.push(...letters);
  }
}

/**
 * A progress store in memory that counts its reads and writes. `load` answers as the DynamoDB store
 * does (every record that may know about the records at or after the position, newest key first),
 * without its look-back limit.
 */
export class MemoryProgressStore implements ProgressStore {
  /** The stored records by `<streamArn>#<sequenceNumber>`. */
  readonly entries = new Map<string, Progress>();
  reads = 0;
  writes = 0;

  async load(position: ProgressKey, signal?: AbortSignal): Promise<readonly Progress[]> {
    signal?.throwIfAborted();
    this.reads++;
    return [...this.entries.values()].filter((p) => mayKnowAbout(position, p)).sort((a, b) => compareSequenceNumbers(b.sequenceNumber, a.sequenceNumber));
  }

  async save(progress: Progress, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.writes++;
    this.entries.set(`${progress.streamArn}#${progress.sequenceNumber}`, {
      streamArn: progress.streamArn,
      sequenceNumber: progress.sequenceNumber,
      done: new Set(progress.done),
      acknowledged: new Map([...progress.acknowledged].map(([s, sinks]) => [s, new Set(sinks)])),
      ...(progress.blind ? { blind: true } : {}),
    });
  }
}
