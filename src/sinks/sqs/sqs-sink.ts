import type { SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError, OversizedEventError } from '../../errors.js';
import type { ChangeEvent } from '../../events.js';
import type { ClaimCheckPointer, ClaimCheckStore, Sink, SinkFailure } from '../../ports.js';
import { claimCheckEnvelope } from '../claim-check.js';
import { SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS } from './constants.js';
import { attributeBytes, sha256Hex, sqsJson, stableKeyJson, stringAttributes, toSqsId } from './message.js';
import type { Attributes } from './message.js';
import { resolveQueue, show } from './queue.js';
import { sendInBatches } from './send-in-batches.js';
import type { OutgoingMessage } from './send-in-batches.js';

/** Options of {@link sqs}. */
export interface SqsSinkOptions<E = ChangeEvent> {
  /** URL of the queue, as `CreateQueue` and `GetQueueUrl` return it. */
  readonly queueUrl: string;
  /**
   * Whether the queue is a FIFO queue. It must agree with the queue name.
   * @default true when the queue name ends in `.fifo`
   */
  readonly fifo?: boolean;
  /**
   * The message body for an event: a string is sent as it is, anything else as JSON (sets as
   * arrays, binaries as base64, exact numbers as strings).
   * @default the event itself, as JSON
   */
  readonly body?: (event: E) => unknown;
  /**
   * FIFO queues: the message group, within which SQS keeps order. Mapped to SQS's rules (128
   * characters of ASCII `!` to `~`) by {@link toSqsId}. Set it to match the app's `ordering` when
   * that is coarser than the item, or when a route's transform drops `key`. On a standard queue it is
   * sent only when set (fair queues).
   * @default on FIFO queues, the item's key: its key attributes as JSON, names sorted
   */
  readonly messageGroupId?: string | ((event: E) => string);
  /**
   * FIFO queues: the deduplication id; SQS drops a message whose id it has seen in the last 5
   * minutes, so an engine retry of a message SQS did store is not delivered twice. Mapped to SQS's
   * rules by {@link toSqsId}.
   * @default the event's `eventID`, or the SHA-256 of the body when the event has none
   */
  readonly deduplicationId?: (event: E) => string;
  /**
   * Seconds (0 to 900) before each message becomes visible. Standard queues only: a FIFO queue
   * takes its delay from the queue's own setting.
   * @default the queue's `DelaySeconds`
   */
  readonly delaySeconds?: number;
  /** Unique among the app's sinks; names this sink in logs and dead letters. @default 'sqs' */
  readonly name?: string;
  /**
   * The client to use. Build it with `maxAttempts: 1`: the engine retries failed entries with
   * backoff, and SDK retries underneath would multiply the attempts (one retry owner per hop).
   * @default a new `SQSClient({ maxAttempts: 1, region, endpoint })`, credentials from the environment
   */
  readonly client?: SQSClient;
  /** Region of the client built when `client` is left out. @default the environment's (`AWS_REGION`) */
  readonly region?: string;
  /** Endpoint of the client built when `client` is left out, for SQS-compatible servers. @default AWS's */
  readonly endpoint?: string;
  /**
   * Where an event too large for one message goes (`s3ClaimCheck({ bucket })` from `dynamo-cdc/s3`):
   * the full body is stored there under the event's `eventID` and the message carries a pointer
   * (`claimCheckEnvelope`) instead. Without it, such an event is dead-lettered with
   * `OversizedEventError`.
   * @default none
   */
  readonly claimCheck?: ClaimCheckStore;
  /**
   * Largest message, in bytes as SQS counts them (the UTF-8 body, and the name, data type and value
   * of each attribute). Lower it for a queue whose `MaximumMessageSize` is lower.
   * @default 1_048_576 (1 MiB, SQS's maximum)
   */
  readonly maxMessageBytes?: number;
}

/** The sink {@link sqs} returns: a {@link Sink} that also shows where it sends. */
export interface SqsSink<E = ChangeEvent> extends Sink<E> {
  readonly queueUrl: string;
  readonly fifo: boolean;
  readonly client: SQSClient;
  sizeOf(event: E): number;
}

/** One event turned into a message, made once per event object. */
interface Prepared {
  /** The full body; stored in the claim-check store when `claimCheckId` is set. */
  readonly body: string;
  readonly attributes: Attributes | undefined;
  readonly attributeBytes: number;
  /** Bytes towards the limits: the message, or a bound on the pointer message when claim-checked. */
  readonly size: number;
  readonly groupId: string | undefined;
  readonly deduplicationId: string | undefined;
  /** Set when the body is too large for one message and goes to the claim-check store. */
  readonly claimCheckId: string | undefined;
  /** The pointer message's body, once the full body is stored; a retry sends it without storing again. */
  pointerBody?: string;
}

/**
 * A pointer as large as one can be (bucket names have at most 63 characters, S3 keys at most 1,024
 * bytes), so that the size counted for a claim-checked event before it is stored is an upper bound.
 */
const LARGEST_POINTER: ClaimCheckPointer = {
  bucket: 'b'.repeat(63),
  key: 'k'.repeat(1024),
  uri: `s3://${'b'.repeat(63)}/${'k'.repeat(1024)}`,
  size: Number.MAX_SAFE_INTEGER,
};

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

interface EventLike {
  readonly eventID?: unknown;
  readonly kind?: unknown;
  readonly entity?: unknown;
  readonly key?: unknown;
  readonly meta?: { readonly table?: unknown } | null;
}

const asEventLike = (event: unknown): EventLike => (event !== null && typeof event === 'object' ? (event as EventLike) : {});

/**
 * Sends events to an SQS queue with `SendMessageBatch`: one message per event (the event as JSON
 * by default), with the String attributes `kind`, `entity` and `table`. Up to 10 messages and
 * 1 MiB a request. Entries SQS rejects are retried by the engine (throttles and server faults) or
 * dead-lettered (sender faults). On a FIFO queue each item's changes form one message group, in
 * stream order, deduplicated by `eventID`.
 *
 * @example
 * import { sqs } from 'dynamo-cdc/sqs';
 *
 * route(Task).on('modify').to(sqs({ queueUrl: process.env.TASKS_QUEUE_URL! }))
 */
export const sqs = <E = ChangeEvent>(options: SqsSinkOptions<E>): SqsSink<E> => {
  const { queueUrl, fifo, client, maxMessageBytes } = resolveQueue('sqs', options);
  const name = options.name ?? 'sqs';
  if (typeof name !== 'string' || name === '') throw new ConfigError('sqs.name', `must be a non-empty string, got ${show(name)}. Give the sink a name, unique in the app.`);
  const { body, messageGroupId, deduplicationId, delaySeconds, claimCheck } = options;
  if (body !== undefined && typeof body !== 'function') throw new ConfigError('sqs.body', `must be a function (event) => body, got ${show(body)}. Leave it out to send the event as JSON.`);
  if (messageGroupId !== undefined && typeof messageGroupId !== 'function' && (typeof messageGroupId !== 'string' || messageGroupId === '')) {
    throw new ConfigError('sqs.messageGroupId', `must be a non-empty string or a function (event) => string, got ${show(messageGroupId)}.`);
  }
  if (deduplicationId !== undefined) {
    if (!fifo) throw new ConfigError('sqs.deduplicationId', 'applies only to FIFO queues (names ending in .fifo). Leave it out for a standard queue.');
    if (typeof deduplicationId !== 'function') throw new ConfigError('sqs.deduplicationId', `must be a function (event) => string, got ${show(deduplicationId)}. Leave it out to use the eventID.`);
  }
  if (delaySeconds !== undefined) {
    if (fifo) throw new ConfigError('sqs.delaySeconds', "cannot be set per message on a FIFO queue. Set the queue's DelaySeconds instead, or leave it out.");
    if (typeof delaySeconds !== 'number' || !Number.isInteger(delaySeconds) || delaySeconds < 0 || delaySeconds > SQS_MAX_DELAY_SECONDS) {
      throw new ConfigError('sqs.delaySeconds', `must be an integer from 0 to ${SQS_MAX_DELAY_SECONDS}, got ${show(delaySeconds)}.`);
    }
  }
  if (claimCheck !== undefined && (claimCheck === null || typeof claimCheck.put !== 'function')) {
    throw new ConfigError('sqs.claimCheck', `must be a claim-check store with a put() method, got ${show(claimCheck)}. Use s3ClaimCheck({ bucket }) from dynamo-cdc/s3, or leave it out.`);
  }

  const bodyOf = (event: E): string => {
    if (!body) return sqsJson(event);
    const b = body(event);
    const text = typeof b === 'string' ? b : sqsJson(b);
    if (text === '') throw new ConfigError('sqs.body', 'returned an empty string for an event; SQS needs at least one character. Return a non-empty body.');
    return text;
  };

  const groupOf = (event: E, e: EventLike): string | undefined => {
    if (typeof messageGroupId === 'string') return toSqsId(messageGroupId);
    if (typeof messageGroupId === 'function') return toSqsId(messageGroupId(event));
    if (!fifo) return undefined;
    if (e.key === null || typeof e.key !== 'object') {
      throw new ConfigError('sqs.messageGroupId', 'has no default for an event without a `key` object (a route transform may have dropped it). Set messageGroupId: (event) => string.');
    }
    return toSqsId(stableKeyJson(e.key));
  };

  const deduplicationOf = (event: E, e: EventLike, text: string): string | undefined => {
    if (!fifo) return undefined;
    if (deduplicationId) return toSqsId(deduplicationId(event));
    return typeof e.eventID === 'string' && e.eventID !== '' ? toSqsId(e.eventID) : sha256Hex(text);
  };

  const cache = new WeakMap<object, Prepared>();

  const prepare = (event: E): Prepared => {
    const cacheable = event !== null && typeof event === 'object';
    const cached = cacheable ? cache.get(event) : undefined;
    if (cached) return cached;
    const e = asEventLike(event);
    const text = bodyOf(event);
    const attributes = stringAttributes({ kind: e.kind, entity: e.entity, table: e.meta?.table });
    const attrBytes = attributeBytes(attributes);
    const fullSize = utf8(text) + attrBytes;
    const claimChecked = fullSize > maxMessageBytes && claimCheck !== undefined;
    const prepared: Prepared = {
      body: text,
      attributes: Object.keys(attributes).length > 0 ? attributes : undefined,
      attributeBytes: attrBytes,
      size: claimChecked ? utf8(sqsJson(claimCheckEnvelope(event, LARGEST_POINTER))) + attrBytes : fullSize,
      groupId: groupOf(event, e),
      deduplicationId: deduplicationOf(event, e, text),
      claimCheckId: claimChecked ? (typeof e.eventID === 'string' && e.eventID !== '' ? e.eventID : sha256Hex(text)) : undefined,
    };
    if (cacheable) cache.set(event, prepared);
    return prepared;
  };

  const outgoing = async (event: E, index: number, signal: AbortSignal): Promise<OutgoingMessage> => {
    const p = prepare(event);
    let text = p.body;
    if (p.claimCheckId !== undefined && claimCheck) {
      if (p.pointerBody === undefined) {
        const pointer = await claimCheck.put(p.claimCheckId, p.body, signal);
        p.pointerBody = sqsJson(claimCheckEnvelope(event, pointer));
      }
      text = p.pointerBody;
    }
    const size = utf8(text) + p.attributeBytes;
    // The engine never sends an oversized event; a direct caller may.
    if (size > maxMessageBytes) throw new OversizedEventError(name, size, maxMessageBytes);
    return {
      index,
      size,
      entry: {
        MessageBody: text,
        ...(p.attributes ? { MessageAttributes: p.attributes } : {}),
        ...(p.groupId === undefined ? {} : { MessageGroupId: p.groupId }),
        ...(p.deduplicationId === undefined ? {} : { MessageDeduplicationId: p.deduplicationId }),
        ...(delaySeconds === undefined ? {} : { DelaySeconds: delaySeconds }),
      },
    };
  };

  return {
    name,
    queueUrl,
    fifo,
    client,
    limits: { maxRecords: SQS_MAX_BATCH_ENTRIES, maxBytes: maxMessageBytes },
    // Not even for FIFO: SendMessageBatch can fail one message and enqueue the next of the same
    // group, so a consumer would see record 2 before record 1's retry. Each record of a key waits
    // for the one before it instead.
    preservesOrderWithinRequest: false,
    sizeOf: (event) => prepare(event).size,
    async send(events, signal) {
      signal.throwIfAborted();
      const failed: SinkFailure[] = [];
      const messages = await Promise.all(
        events.map((event, index) =>
          outgoing(event, index, signal).catch((error: unknown) => {
            failed.push({ index, error });
            return undefined;
          }),
        ),
      );
      const ready = messages.filter((m): m is OutgoingMessage => m !== undefined);
      if (ready.length > 0) failed.push(...(await sendInBatches(client, queueUrl, ready, signal)));
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
