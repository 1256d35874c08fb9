import { randomUUID } from 'node:crypto';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SendMessageBatchCommandInput, SendMessageBatchResult } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { decodeRecord } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { sqs } from '../../src/sinks/sqs/index.js';
import { streamRecords } from '../../src/testing/index.js';
import { describeSinkContract } from './sink-contract.js';
import type { SinkHarness } from './sink-contract.js';

/** Small realistic change events, with fresh eventIDs on every call. */
const changeEvents = (() => {
  const records = streamRecords();
  return (n: number): ChangeEvent[] => Array.from({ length: n }, (_, i) => decodeRecord(records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1 })));
})();

/**
 * An SQS sink on a client answering as SQS does (every entry accepted); the destination's record is
 * the eventIDs in the bodies SQS accepted, in the order it accepted them.
 */
const sqsHarness = (queueUrl: string) => async (): Promise<SinkHarness<ChangeEvent>> => {
  const client = new SQSClient({ region: 'us-east-1', maxAttempts: 1 });
  const mock = mockClient(client);
  const received: string[] = [];
  mock.on(SendMessageBatchCommand).callsFake((input: SendMessageBatchCommandInput): SendMessageBatchResult => {
    const entries = input.Entries ?? [];
    for (const e of entries) received.push(String((JSON.parse(e.MessageBody ?? '{}') as { eventID?: unknown }).eventID));
    return { Successful: entries.map((e) => ({ Id: e.Id, MessageId: randomUUID(), MD5OfMessageBody: undefined })), Failed: [] };
  });
  return {
    sink: sqs({ queueUrl, client }),
    makeEvents: changeEvents,
    received: async () => [...received],
    close: async () => mock.restore(),
  };
};

describeSinkContract('sqs (standard queue)', sqsHarness('https://sqs.us-east-1.amazonaws.com/123456789012/task-changes'));
describeSinkContract('sqs (FIFO queue)', sqsHarness('https://sqs.us-east-1.amazonaws.com/123456789012/task-changes.fifo'));
