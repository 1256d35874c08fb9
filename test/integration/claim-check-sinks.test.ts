import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord, defineApp, Engine, route, toJson } from '../../src/index.js';

import { startS3rver } from '../../src/local/s3rver.js';
import type { LocalS3 } from '../../src/local/s3rver.js';
import { eventBridge } from '../../src/sinks/eventbridge/index.js';
import { readClaimCheck, s3ClaimCheck } from '../../src/sinks/s3/index.js';
import { sqs, sqsDeadLetterQueue } from '../../src/sinks/sqs/index.js';
import { FakeClock, memoryLogger, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';

const BUCKET = 'claim-checks';
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };

/** A 2 MB item with multi-byte text: too large for EventBridge (1 MB) and SQS (1 MiB). */
const hugeRecord = () => streamRecords().insert({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN', Notes: 'Überweisung ✓ 日本 '.repeat(80_000) });

describe('claim-check through the sinks, against s3rver', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await startS3rver({ buckets: [BUCKET] });
  });
  afterAll(async () => {
    await s3.stop();
  });

  it('EventBridge sends a pointer whose object holds the whole Detail', async () => {
    // Prepare
    const client = new EventBridgeClient({ region: 'us-east-1', credentials });
    const mock = mockClient(client);
    mock.on(PutEventsCommand).callsFake((input: { Entries?: unknown[] }) => ({ FailedEntryCount: 0, Entries: (input.Entries ?? []).map(() => ({ EventId: 'id' })) }));
    const sink = eventBridge({ busName: 'app', client, claimCheck: s3ClaimCheck({ bucket: BUCKET, client: s3.client }) });
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: memoryLogger(), clock: new FakeClock() });
    const raw = hugeRecord();

    // Act
    const outcome = await engine.process([raw]);

    // Assess
    expect(outcome.statuses).toEqual(['delivered']);
    const entry = mock.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0] as PutEventsRequestEntry;
    const envelope = JSON.parse(entry.Detail as string) as { claimCheck: { bucket: string; key: string; uri: string }; eventID: string };
    expect(envelope.eventID).toBe(raw.eventID);
    expect(envelope.claimCheck.bucket).toBe(BUCKET);
    expect(await readClaimCheck(s3.client, envelope.claimCheck as never)).toEqual(JSON.parse(toJson(decodeRecord(raw))));
    mock.restore();
  });

  it('SQS sends a pointer whose object holds the whole body', async () => {
    // Prepare
    const client = new SQSClient({ region: 'us-east-1', credentials });
    const mock = mockClient(client);
    mock.on(SendMessageBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => ({ Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id, MessageId: 'm', MD5OfMessageBody: '' })), Failed: [] }));
    const sink = sqs({ queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/changes', client, claimCheck: s3ClaimCheck({ bucket: BUCKET, client: s3.client }) });
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: memoryLogger(), clock: new FakeClock() });
    const raw = hugeRecord();

    // Act
    const outcome = await engine.process([raw]);

    // Assess
    expect(outcome.statuses).toEqual(['delivered']);
    const entry = mock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0] as SendMessageBatchRequestEntry;
    const envelope = JSON.parse(entry.MessageBody as string) as { claimCheck: { key: string }; eventID: string };
    expect(envelope.eventID).toBe(raw.eventID);
    expect(await readClaimCheck(s3.client, envelope.claimCheck as never)).toEqual(JSON.parse(toJson(decodeRecord(raw))));
    mock.restore();
  });

  it('the SQS dead-letter queue stores a huge letter whole and sends a pointer with its error', async () => {
    // Prepare: the sink fails the huge record for good, so its letter (with both raw images) goes to the DLQ.
    const client = new SQSClient({ region: 'us-east-1', credentials });
    const mock = mockClient(client);
    mock.on(SendMessageBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => ({ Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id, MessageId: 'm', MD5OfMessageBody: '' })), Failed: [] }));
    const dlq = sqsDeadLetterQueue({ queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/dlq', client, claimCheck: s3ClaimCheck({ bucket: BUCKET, client: s3.client }) });
    const sink = new MemorySink().failWhere(() => true, { error: () => permanentError('rejected') });
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq }), logger: memoryLogger(), clock: new FakeClock() });
    const raw = hugeRecord();

    // Act
    const outcome = await engine.process([raw]);

    // Assess: the message names the error; the object holds the letter with the full raw record.
    expect(outcome.statuses).toEqual(['dead-lettered']);
    const entry = mock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0] as SendMessageBatchRequestEntry;
    const pointer = JSON.parse(entry.MessageBody as string) as { claimCheck: never; error: { name: string } };
    expect(pointer.error.name).toBe('ValidationException');
    const letter = (await readClaimCheck(s3.client, pointer.claimCheck)) as { record: unknown; attempts: number };
    expect(letter.record).toEqual(JSON.parse(JSON.stringify(raw)));
    expect(letter.attempts).toBe(1);
    mock.restore();
  });
});

