import { createHash, randomUUID } from 'node:crypto';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { BatchResultErrorEntry, SendMessageBatchCommandInput, SendMessageBatchRequestEntry, SendMessageBatchResult, SendMessageBatchResultEntry } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach } from 'vitest';

export const MiB = 1_048_576;

/** What SQS answers for one entry that it rejects. */
export interface EntryError {
  readonly Code: string;
  readonly SenderFault: boolean;
  readonly Message: string;
}

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');

/** A `SendMessageBatch` result as SQS documents it: every entry in `Successful` or in `Failed`. */
export const sqsAnswer = (input: SendMessageBatchCommandInput, reject: (entry: SendMessageBatchRequestEntry) => EntryError | undefined = () => undefined): SendMessageBatchResult => {
  const Successful: SendMessageBatchResultEntry[] = [];
  const Failed: BatchResultErrorEntry[] = [];
  for (const entry of input.Entries ?? []) {
    const failure = reject(entry);
    if (failure) Failed.push({ Id: entry.Id, ...failure });
    else Successful.push({ Id: entry.Id, MessageId: randomUUID(), MD5OfMessageBody: md5(entry.MessageBody ?? ''), ...(entry.MessageGroupId ? { SequenceNumber: '18849496460467696128' } : {}) });
  }
  return { Successful, Failed };
};

/** Size as SQS counts it, computed from what was sent: UTF-8 body, and each attribute's name, type and value. */
export const sqsSize = (entry: SendMessageBatchRequestEntry): number =>
  Buffer.byteLength(entry.MessageBody ?? '') +
  Object.entries(entry.MessageAttributes ?? {}).reduce((n, [name, a]) => n + Buffer.byteLength(name) + Buffer.byteLength(a.DataType ?? '') + Buffer.byteLength(a.StringValue ?? ''), 0);

/** Item `i` of a list that must have it. */
export const nth = <T>(items: readonly T[] | undefined, i: number): T => {
  const item = items?.[i];
  if (item === undefined) throw new Error(`expected an item at index ${i}`);
  return item;
};

export const bodyOf = (entry: SendMessageBatchRequestEntry) => JSON.parse(entry.MessageBody ?? 'null') as Record<string, unknown>;

const mocks: { restore(): void }[] = [];
afterEach(() => {
  for (const m of mocks.splice(0)) m.restore();
});

/** A client whose SendMessageBatch answers with `answer` (every entry accepted by default); restored after each test. */
export const mockedSqs = (answer: (input: SendMessageBatchCommandInput, call: number) => SendMessageBatchResult = (input) => sqsAnswer(input)) => {
  const client = new SQSClient({ region: 'us-east-1', maxAttempts: 1 });
  const mock = mockClient(client);
  mocks.push(mock);
  let call = 0;
  mock.on(SendMessageBatchCommand).callsFake((input: SendMessageBatchCommandInput) => answer(input, call++));
  const requests = () => mock.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input.Entries ?? []);
  return { client, mock, requests };
};
