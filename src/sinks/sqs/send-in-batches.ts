import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SendMessageBatchRequestEntry, SQSClient } from '@aws-sdk/client-sqs';
import { EntryFailedError } from '../../errors.js';
import { SQS_MAX_BATCH_ENTRIES, SQS_MAX_MESSAGE_BYTES } from './constants.js';
import { sqsEntryFailureClass } from './entry-failure-class.js';

/** One message ready to go; `index` is its place in the caller's input and becomes the entry's `Id`. */
export interface OutgoingMessage {
  readonly index: number;
  readonly entry: Omit<SendMessageBatchRequestEntry, 'Id'>;
  /** As SQS counts it: body and attributes. */
  readonly size: number;
}

export interface MessageFailure {
  readonly index: number;
  readonly error: unknown;
}

const chunk = (messages: readonly OutgoingMessage[]): OutgoingMessage[][] => {
  const requests: OutgoingMessage[][] = [];
  let current: OutgoingMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    if (current.length === SQS_MAX_BATCH_ENTRIES || (current.length > 0 && bytes + m.size > SQS_MAX_MESSAGE_BYTES)) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += m.size;
  }
  if (current.length > 0) requests.push(current);
  return requests;
};

/**
 * Sends messages with `SendMessageBatch` in as few requests as SQS allows (10 entries, 1 MiB in
 * all), one request after another, so a FIFO group keeps its order. Resolves with the entries that
 * failed, each with an {@link EntryFailedError} classified by {@link sqsEntryFailureClass}. Rejects
 * when the first request throws (nothing was sent); when a later one throws, its entries and those
 * after it fail with that error.
 */
export const sendInBatches = async (client: SQSClient, queueUrl: string, messages: readonly OutgoingMessage[], signal: AbortSignal): Promise<MessageFailure[]> => {
  const failures: MessageFailure[] = [];
  const requests = chunk(messages);
  for (let r = 0; r < requests.length; r++) {
    const request = requests[r] as OutgoingMessage[];
    let response;
    try {
      response = await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: request.map((m) => ({ Id: String(m.index), ...m.entry })) }), { abortSignal: signal });
    } catch (error) {
      if (r === 0) throw error;
      for (const rest of requests.slice(r)) for (const m of rest) failures.push({ index: m.index, error });
      break;
    }
    const indexById = new Map(request.map((m) => [String(m.index), m.index]));
    const reported = new Set<number>();
    for (const f of response.Failed ?? []) {
      const index = f.Id === undefined ? undefined : indexById.get(f.Id);
      if (index === undefined || reported.has(index)) continue;
      reported.add(index);
      const code = f.Code ?? 'UnknownError';
      failures.push({ index, error: new EntryFailedError(code, f.Message ?? `SQS rejected the message with ${code}`, sqsEntryFailureClass(f.Code, f.SenderFault)) });
    }
    for (const s of response.Successful ?? []) {
      const index = s.Id === undefined ? undefined : indexById.get(s.Id);
      if (index !== undefined) reported.add(index);
    }
    // An entry SQS reported on neither way may not have been stored: it is sent again.
    for (const m of request) {
      if (!reported.has(m.index)) failures.push({ index: m.index, error: new EntryFailedError('MissingResult', 'SQS reported neither success nor failure for this message', 'TRANSIENT') });
    }
  }
  return failures;
};
