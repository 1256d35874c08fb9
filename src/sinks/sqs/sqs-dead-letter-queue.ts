import type { SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError } from '../../errors.js';
import type { RawStreamRecord } from '../../events.js';
import type { ClaimCheckPointer, ClaimCheckStore, DeadLetter, DeadLetterQueue, SinkFailure } from '../../ports.js';
import { DeadLetterRejectedError, OversizedDeadLetterError } from './errors.js';
import { attributeBytes, sha256Hex, sqsJson, stableKeyJson, stringAttributes, toSqsId } from './message.js';
import type { Attributes } from './message.js';
import { resolveQueue, show } from './queue.js';
import { sendInBatches } from './send-in-batches.js';
import type { OutgoingMessage } from './send-in-batches.js';

/** Options of {@link sqsDeadLetterQueue}. */
export interface SqsDeadLetterQueueOptions {
  /** URL of the dead-letter queue, as `CreateQueue` and `GetQueueUrl` return it. */
  readonly queueUrl: string;
  /**
   * Whether the queue is a FIFO queue. It must agree with the queue name.
   * @default true when the queue name ends in `.fifo`
   */
  readonly fifo?: boolean;
  /** Names the queue in logs. @default 'sqs-dlq' */
  readonly name?: string;
  /**
   * The client to use. Build it with `maxAttempts: 1`: the engine retries a failed hand-off with
   * backoff (one retry owner per hop).
   * @default a new `SQSClient({ maxAttempts: 1, region, endpoint })`, credentials from the environment
   */
  readonly client?: SQSClient;
  /** Region of the client built when `client` is left out. @default the environment's (`AWS_REGION`) */
  readonly region?: string;
  /** Endpoint of the client built when `client` is left out. @default AWS's */
  readonly endpoint?: string;
  /**
   * Where a letter too large for one message goes (`s3ClaimCheck({ bucket })` from `dynamo-cdc/s3`):
   * the whole letter is stored under `<eventID>.dead-letter` and the message carries a pointer with
   * the letter's error, attempts and position. Without it, such a letter fails the hand-off
   * (`OversizedDeadLetterError`): a dead letter is never truncated.
   * @default none
   */
  readonly claimCheck?: ClaimCheckStore;
  /**
   * Largest message, in bytes as SQS counts them. Lower it for a queue whose `MaximumMessageSize`
   * is lower.
   * @default 1_048_576 (1 MiB, SQS's maximum)
   */
  readonly maxMessageBytes?: number;
}

/** The queue {@link sqsDeadLetterQueue} returns. */
export interface SqsDeadLetterQueue extends DeadLetterQueue {
  readonly queueUrl: string;
  readonly fifo: boolean;
  readonly client: SQSClient;
}

/** The message body of a letter that was claim-checked: the pointer and everything but the record. */
export interface ClaimCheckedDeadLetter {
  readonly claimCheck: ClaimCheckPointer;
  readonly sink: DeadLetter['sink'];
  readonly error: DeadLetter['error'];
  readonly attempts: number;
  readonly position: DeadLetter['position'];
  readonly firstAttemptAt: number;
  readonly lastAttemptAt: number;
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

const keysOf = (record: unknown): object | undefined => {
  const keys = (record as RawStreamRecord | null | undefined)?.dynamodb?.Keys;
  return keys !== null && typeof keys === 'object' ? keys : undefined;
};

/**
 * A dead-letter queue on SQS: one message per dead letter, its body the letter as JSON (the raw
 * record with its images, the error, the attempts, the times and the stream position), with the
 * String attributes `sink`, `errorName`, `errorClass`, `eventID` and `sequenceNumber` to filter on.
 * `send` resolves only when SQS accepted every letter; otherwise it rejects and the engine retries
 * the hand-off (a letter sent twice carries the same `eventID`). On a FIFO queue the letters of one
 * item form one message group, deduplicated by `eventID` and sink.
 *
 * @example
 * import { sqsDeadLetterQueue } from 'dynamo-cdc/sqs';
 *
 * defineApp({ table: 'TaskApp', routes, deadLetter: sqsDeadLetterQueue({ queueUrl: process.env.DLQ_URL! }) })
 */
export const sqsDeadLetterQueue = (options: SqsDeadLetterQueueOptions): SqsDeadLetterQueue => {
  const { queueUrl, fifo, client, maxMessageBytes } = resolveQueue('sqsDeadLetterQueue', options);
  const name = options.name ?? 'sqs-dlq';
  if (typeof name !== 'string' || name === '') throw new ConfigError('sqsDeadLetterQueue.name', `must be a non-empty string, got ${show(name)}.`);
  const { claimCheck } = options;
  if (claimCheck !== undefined && (claimCheck === null || typeof claimCheck.put !== 'function')) {
    throw new ConfigError('sqsDeadLetterQueue.claimCheck', `must be a claim-check store with a put() method, got ${show(claimCheck)}. Use s3ClaimCheck({ bucket }) from dynamo-cdc/s3, or leave it out.`);
  }

  const message = async (letter: DeadLetter, index: number, body: string, attributes: Attributes, signal: AbortSignal): Promise<OutgoingMessage> => {
    const attrBytes = attributeBytes(attributes);
    const eventID = letter.position?.eventID ?? '';
    let text = body;
    if (utf8(text) + attrBytes > maxMessageBytes && claimCheck) {
      const pointer = await claimCheck.put(`${eventID || sha256Hex(body)}.dead-letter`, body, signal);
      const pointed: ClaimCheckedDeadLetter = {
        claimCheck: pointer,
        sink: letter.sink,
        error: letter.error,
        attempts: letter.attempts,
        position: letter.position,
        firstAttemptAt: letter.firstAttemptAt,
        lastAttemptAt: letter.lastAttemptAt,
      };
      text = sqsJson(pointed);
    }
    const size = utf8(text) + attrBytes;
    // Still too large: only an enormous error message does that. Never cut a letter down.
    if (size > maxMessageBytes) throw new OversizedDeadLetterError(name, eventID, size, maxMessageBytes);
    const keys = keysOf(letter.record);
    return {
      index,
      size,
      entry: {
        MessageBody: text,
        MessageAttributes: attributes,
        ...(fifo
          ? {
              MessageGroupId: toSqsId(`${letter.position?.streamArn ?? ''}|${keys ? stableKeyJson(keys) : ''}`),
              MessageDeduplicationId: eventID ? toSqsId(`${eventID}:${letter.sink ?? ''}`) : sha256Hex(body),
            }
          : {}),
      },
    };
  };

  return {
    name,
    queueUrl,
    fifo,
    client,
    async send(letters, signal) {
      signal.throwIfAborted();
      const bodies = letters.map((letter) => sqsJson(letter));
      const attributes = letters.map((letter) =>
        stringAttributes({
          sink: letter.sink,
          errorName: letter.error?.name,
          errorClass: letter.error?.class,
          eventID: letter.position?.eventID,
          sequenceNumber: letter.position?.sequenceNumber,
        }),
      );
      // A letter that cannot be sent whole fails alone; the others go out.
      const failed: SinkFailure[] = [];
      const built = await Promise.all(
        letters.map(async (letter, i) => {
          try {
            return await message(letter, i, bodies[i] as string, attributes[i] as Attributes, signal);
          } catch (error) {
            failed.push({ index: i, error });
            return undefined;
          }
        }),
      );
      const messages = built.filter((m): m is OutgoingMessage => m !== undefined);
      if (messages.length > 0) failed.push(...(await sendInBatches(client, queueUrl, messages, signal)));
      if (failed.length === letters.length && failed.length > 0) {
        // Nothing was stored: say so as one error, so the caller sees why.
        if (failed.length === 1) throw failed[0]?.error;
        throw new DeadLetterRejectedError(
          name,
          letters.length,
          failed.map((f) => ({ eventID: letters[f.index]?.position?.eventID ?? '', error: f.error })),
        );
      }
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
