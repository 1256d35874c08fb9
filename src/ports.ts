/**
 * Ports: the seams between the engine and the outside world. Types only; adapters implement them
 * (`dynamo-cdc/lambda`, the sinks), and `dynamo-cdc/testing` has in-memory fakes for each.
 */
import type { ChangeEvent, StreamPosition } from './events.js';
import type { FailureClass } from './errors.js';

/** A rejected entry of a {@link Sink.send} call. */
export interface SinkFailure {
  /** Index of the entry in the `events` array given to `send`. */
  readonly index: number;
  /** Why it failed; {@link classify} decides whether it is retried. */
  readonly error: unknown;
}

/**
 * Delivers routed events to one destination. A retry resends the same events, so delivery must be
 * idempotent downstream: every event carries `eventID` as its idempotency key.
 */
export interface Sink<E = ChangeEvent> {
  /** Unique among the sinks of an app; used in logs, metrics and dead letters. */
  readonly name: string;
  /** Largest batch one request may carry; the engine never exceeds it. */
  readonly limits: {
    readonly maxRecords: number;
    readonly maxBytes: number;
    /**
     * How long a request that is not full may wait for more events before it is sent. The lanes
     * whose events wait are held too, so keep it 0 except where fewer, larger requests are worth
     * the latency (S3 objects). The Lambda deadline cuts it short.
     * @default 0: sent at the end of the current turn of the event loop
     */
    readonly maxWaitMs?: number;
  };
  /**
   * True when one request keeps the order of its entries and a failed entry can never let a later
   * entry of the same request take effect ahead of it: an S3 object (all or nothing), an OpenSearch
   * bulk with external versions (an older write cannot win). Then a lane may send several of its
   * records in one request. Not SQS FIFO: a batch can enqueue message 2 after failing message 1.
   */
  readonly preservesOrderWithinRequest: boolean;
  /**
   * Size of one entry as the destination counts it towards `limits.maxBytes`.
   * @default the UTF-8 length of `JSON.stringify(event)` when `limits.maxBytes` is finite
   */
  sizeOf?(event: E): number;
  /**
   * Resolves with the entries that failed; rejects only when nothing could be attempted. Resolving
   * acknowledges every other entry: it must be durable at the destination by then.
   */
  send(events: readonly E[], signal: AbortSignal): Promise<{ readonly failed: readonly SinkFailure[] }>;
  // No `flush`: an entry counts as acknowledged only once `send` has made it durable, so a sink
  // holds nothing between requests that shutdown or the Lambda deadline would have to write out.
  // A destination that wants fewer, larger requests sets `limits.maxWaitMs` instead.
}

/** The error that made a record a dead letter, reduced to data that survives serialisation. */
export interface DeadLetterError {
  readonly name: string;
  readonly message: string;
  readonly class: FailureClass;
}

/**
 * One record that could not be delivered to one sink. It holds everything needed to act on it after
 * the stream has trimmed the record (24 h): the raw record as received, the error, the attempts.
 */
export interface DeadLetter {
  /** The raw stream record as received (Lambda or GetRecords shape), images included. */
  readonly record: unknown;
  /** Name of the sink that failed, or `undefined` when the record failed before routing (decode, schema). */
  readonly sink: string | undefined;
  readonly error: DeadLetterError;
  readonly attempts: number;
  /** Epoch milliseconds of the first and the last attempt. */
  readonly firstAttemptAt: number;
  readonly lastAttemptAt: number;
  readonly position: StreamPosition;
}

/** Where records go that cannot be delivered. It must be durable before it resolves. */
export interface DeadLetterQueue {
  readonly name: string;
  /**
   * Stores the letters durably. Resolves with nothing when every letter is stored, or with
   * `{ failed }` naming the letters that were not (the others are stored), so one letter that
   * cannot be stored does not hold back the lanes of the others. Rejects when none was stored.
   */
  send(letters: readonly DeadLetter[], signal: AbortSignal): Promise<void | { readonly failed: readonly SinkFailure[] }>;
}

/**
 * Remembers what the Lambda handler got done in a batch that ended partly failed, so that no
 * later batch (a re-delivery, a shorter or longer or split retry, a whole-batch retry, the next
 * batch) sends a done record again, nor a record again to a sink that acknowledged it.
 * `dynamoDbProgressStore` implements it; docs/lambda.md explains the design.
 */
export interface ProgressStore {
  /**
   * The stored records that may know about the records at or after `position` (a batch's first
   * record): keyed at or before it and mentioning a sequence number at or after it (a `blind`
   * record mentions every one), newest first. A store may return only the newest few (a bounded
   * look-back: a record missed costs re-sends) or more (the handler filters again), but never an
   * older record without the newer ones. One read. Abort the request when `signal` aborts.
   */
  load(position: ProgressKey, signal: AbortSignal): Promise<readonly Progress[]>;
  /** Stores `progress` under its key, replacing any record there. One write. Abort the request when `signal` aborts. */
  save(progress: Progress, signal: AbortSignal): Promise<void>;
}

/** Identifies a point in a stream: the stream ARN and the sequence number of the record there. */
export interface ProgressKey {
  readonly streamArn: string;
  /** A canonical decimal sequence number (no leading zeros). */
  readonly sequenceNumber: string;
}

/**
 * One progress record, written when a batch ends partly failed (or by an invocation that could not
 * read the store). Keyed at the batch's first record, it holds everything known done at or after it: any retry (a re-delivery from the failure
 * point, a whole-batch retry, a bisected half, a shorter or longer batch) and the batches after it
 * start at or after its key, so one Query for the newest records at or before a batch's first
 * record finds it. Sequence numbers are unique in a stream, so a record of another shard or of a
 * parallel batch says nothing wrong about this one.
 */
export interface Progress extends ProgressKey {
  /** Records done (every sink acknowledged, dead-lettered, or unrouted), by sequence number. */
  readonly done: ReadonlySet<string>;
  /** Records not done, by sequence number: the sinks (by `Sink.name`) that acknowledged them, maybe none. */
  readonly acknowledged: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * Written by an invocation that could not read the store: it may have sent records again
   * without knowing they were done, so every older record's knowledge at or after this key is
   * void (a record skipped on it could land before an older change just sent again).
   */
  readonly blind?: boolean;
}

/** Time, injectable so tests control it instead of sleeping. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

type LogFn = {
  (obj: object, msg: string): void;
  (msg: string): void;
};

/** The subset of pino's logger the library uses: object first, constant message. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

/** Where a claim-checked payload went. */
export interface ClaimCheckPointer {
  readonly bucket: string;
  readonly key: string;
  /** `s3://bucket/key` */
  readonly uri: string;
  /** Bytes stored. */
  readonly size: number;
}

/**
 * Stores a payload too large for its destination and returns a pointer to put in its place (the
 * claim-check pattern). `s3ClaimCheck` from `dynamo-cdc/s3` implements it.
 */
export interface ClaimCheckStore {
  /**
   * Stores `body` under a key derived from `id` (an `eventID`), so a retry overwrites the same
   * object instead of adding one. Resolves once the object is durable.
   */
  put(id: string, body: string, signal: AbortSignal): Promise<ClaimCheckPointer>;
}
