import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { ConfigError, defineApp, Engine, OversizedEventError, route } from '../../src/index.js';
import type { ClaimCheckPointer, ClaimCheckStore, DeadLetter } from '../../src/index.js';
import { DeadLetterRejectedError, OversizedDeadLetterError, sqsDeadLetterQueue } from '../../src/sinks/sqs/index.js';
import type { SqsDeadLetterQueueOptions } from '../../src/sinks/sqs/index.js';
import { FakeClock, memoryLogger, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';
import { bodyOf, mockedSqs, MiB, nth, sqsAnswer, sqsSize } from '../support/sqs-mock.js';

const DLQ_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/task-dead-letters';
const FIFO_DLQ_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/task-dead-letters.fifo';


const SQS_ID = /^[\x21-\x7E]{1,128}$/;

/** A dead letter as the engine makes one, around a real stream record with both images. */
const letterFor = (records: ReturnType<typeof streamRecords>, k: number, note = ''): DeadLetter => {
  const record = records.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Status: 'OPEN', Version: 1 }, { PK: `USER#${k}`, SK: `TASK#${k}`, Status: 'DONE', Version: 2, Note: note });
  return {
    record,
    sink: 'task-queue',
    error: { name: 'InvalidParameterValue', message: 'Value for parameter MessageBody is invalid.', class: 'PERMANENT' },
    attempts: 1,
    firstAttemptAt: 1_767_225_601_000,
    lastAttemptAt: 1_767_225_601_000,
    position: { streamArn: record.eventSourceARN, shardId: undefined, sequenceNumber: record.dynamodb.SequenceNumber, eventID: record.eventID },
  };
};

/** The JSON a letter becomes, for comparing with what was sent (`shardId: undefined` drops out). */
const asJson = (letter: DeadLetter): unknown => JSON.parse(JSON.stringify(letter));

class FakeClaimCheck implements ClaimCheckStore {
  readonly puts: { id: string; body: string }[] = [];

  async put(id: string, body: string, signal: AbortSignal): Promise<ClaimCheckPointer> {
    signal.throwIfAborted();
    this.puts.push({ id, body });
    const key = `dead-letters/${id}.json`;
    return { bucket: 'lake', key, uri: `s3://lake/${key}`, size: Buffer.byteLength(body) };
  }
}

const signal = () => new AbortController().signal;

describe('sqsDeadLetterQueue', () => {
  it.each<[string, Partial<SqsDeadLetterQueueOptions>, string]>([
    ['no queueUrl', {}, 'sqsDeadLetterQueue.queueUrl'],
    ['an ARN instead of a URL', { queueUrl: 'arn:aws:sqs:us-east-1:123456789012:task-dead-letters' }, 'sqsDeadLetterQueue.queueUrl'],
    ['fifo: true on a standard queue', { queueUrl: DLQ_URL, fifo: true }, 'sqsDeadLetterQueue.fifo'],
    ['a claimCheck without put()', { queueUrl: DLQ_URL, claimCheck: {} as ClaimCheckStore }, 'sqsDeadLetterQueue.claimCheck'],
  ])('rejects %s with a ConfigError naming the field', (_what, options, field) => {
    // Act
    const act = () => sqsDeadLetterQueue(options as SqsDeadLetterQueueOptions);

    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(`\`${field}\``);
  });

  it('builds its client with maxAttempts 1 and is named sqs-dlq', async () => {
    // Act
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, region: 'us-east-1' });

    // Assess
    expect(dlq.name).toBe('sqs-dlq');
    expect(await dlq.client.config.maxAttempts()).toBe(1);
  });

  it('sends one message per letter whose body is the whole letter, with attributes to filter on', async () => {
    // Prepare
    const { client, requests } = mockedSqs();
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });
    const records = streamRecords();
    const letters = [letterFor(records, 1), letterFor(records, 2)];

    // Act
    await dlq.send(letters, signal());

    // Assess
    const entries = requests().flat();
    expect(entries).toHaveLength(2);
    expect(entries.map(bodyOf)).toEqual(letters.map(asJson));
    expect(entries[0]?.MessageAttributes).toEqual({
      sink: { DataType: 'String', StringValue: 'task-queue' },
      errorName: { DataType: 'String', StringValue: 'InvalidParameterValue' },
      errorClass: { DataType: 'String', StringValue: 'PERMANENT' },
      eventID: { DataType: 'String', StringValue: letters[0]?.position.eventID },
      sequenceNumber: { DataType: 'String', StringValue: letters[0]?.position.sequenceNumber },
    });
    expect(entries.every((e) => e.MessageGroupId === undefined && e.MessageDeduplicationId === undefined)).toBe(true);
  });

  it('round-trips a letter the engine made: raw record with both images, error, attempts, times and position', async () => {
    // Prepare: a sink that rejects one record for good; the SQS DLQ behind the engine.
    const { client, requests } = mockedSqs();
    const records = streamRecords();
    const raw = records.modify({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN', Version: 1, Tags: new Set(['a']) }, { PK: 'USER#1', SK: 'TASK#1', Status: 'DONE', Version: 2, Tags: new Set(['a', 'b']) });
    const sink = new MemorySink({ name: 'status' }).failWhere(() => true, { error: () => permanentError('Detail is too large') });
    const clock = new FakeClock();
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: sqsDeadLetterQueue({ queueUrl: DLQ_URL, client }) }), logger: memoryLogger(), clock });

    // Act
    const outcome = await engine.process([raw]);

    // Assess
    expect(outcome.counts['dead-lettered']).toBe(1);
    const entry = nth(requests().flat(), 0);
    expect(bodyOf(entry)).toEqual({
      record: JSON.parse(JSON.stringify(raw)),
      sink: 'status',
      error: { name: 'ValidationException', message: 'Detail is too large', class: 'PERMANENT' },
      attempts: 1,
      firstAttemptAt: clock.now(),
      lastAttemptAt: clock.now(),
      // The engine hands over the event's meta as the position: the stream position and a little more.
      position: expect.objectContaining({ streamArn: raw.eventSourceARN, sequenceNumber: raw.dynamodb.SequenceNumber, eventID: raw.eventID }),
    });
    expect((bodyOf(entry)['record'] as typeof raw).dynamodb.OldImage).toEqual(JSON.parse(JSON.stringify(raw.dynamodb.OldImage)));
  });

  it('splits letters into requests of at most 10 messages and 1 MiB', async () => {
    // Prepare: 12 small letters, then 3 letters of about 400 KB each.
    const { client, requests } = mockedSqs();
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });
    const records = streamRecords();
    const small = Array.from({ length: 12 }, (_, k) => letterFor(records, k));
    const large = Array.from({ length: 3 }, (_, k) => letterFor(records, 100 + k, '€'.repeat(130_000)));

    // Act
    await dlq.send(small, signal());
    await dlq.send(large, signal());

    // Assess
    expect(requests().map((r) => r.length)).toEqual([10, 2, 2, 1]);
    for (const r of requests()) expect(r.reduce((n, e) => n + sqsSize(e), 0)).toBeLessThanOrEqual(MiB);
    expect(new Set(requests().flat().map((e) => (bodyOf(e)['position'] as { eventID: string }).eventID)).size).toBe(15);
  });

  it('reports the letters SQS failed and stores the others', async () => {
    // Prepare
    const records = streamRecords();
    const letters = [1, 2, 3].map((k) => letterFor(records, k));
    const { client, requests } = mockedSqs((input) =>
      sqsAnswer(input, (e) => (e.Id === '1' ? { Code: 'InternalError', SenderFault: false, Message: 'We encountered an internal error. Please try again.' } : undefined)),
    );
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });

    // Act
    const result = await dlq.send(letters, signal());

    // Assess: only letter 1 failed, with SQS's code as its name; all three were attempted.
    expect(result?.failed).toMatchObject([{ index: 1, error: { name: 'InternalError', failureClass: 'TRANSIENT' } }]);
    expect(requests().flat()).toHaveLength(3);
  });

  it('rejects, saying how many of how many failed, when SQS fails every letter', async () => {
    // Prepare
    const records = streamRecords();
    const letters = [1, 2, 3].map((k) => letterFor(records, k));
    const { client } = mockedSqs((input) => sqsAnswer(input, () => ({ Code: 'InternalError', SenderFault: false, Message: 'We encountered an internal error. Please try again.' })));
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });

    // Act
    const act = dlq.send(letters, signal());

    // Assess
    await expect(act).rejects.toThrow(DeadLetterRejectedError);
    await expect(dlq.send(letters, signal())).rejects.toMatchObject({
      message: expect.stringContaining(`3 of 3 dead letters were not accepted by sqs-dlq; first: record ${letters[0]?.position.eventID}, InternalError`),
      failureClass: 'TRANSIENT',
      total: 3,
    });
  });

  it('is PERMANENT only when every failed letter is the sender’s fault, and THROTTLING when one was throttled', async () => {
    // Prepare
    const records = streamRecords();
    const letters = [1, 2].map((k) => letterFor(records, k));
    const permanent = mockedSqs((input) => sqsAnswer(input, () => ({ Code: 'InvalidParameterValue', SenderFault: true, Message: 'invalid' })));
    const throttled = mockedSqs((input) => sqsAnswer(input, (e) => (e.Id === '0' ? { Code: 'RequestThrottled', SenderFault: true, Message: 'slow down' } : { Code: 'InvalidParameterValue', SenderFault: true, Message: 'invalid' })));

    // Act
    const a = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client: permanent.client }).send(letters, signal());
    const b = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client: throttled.client }).send(letters, signal());

    // Assess
    await expect(a).rejects.toMatchObject({ failureClass: 'PERMANENT', rejected: [{ error: { name: 'InvalidParameterValue' } }, { error: { name: 'InvalidParameterValue' } }] });
    await expect(b).rejects.toMatchObject({ failureClass: 'THROTTLING' });
  });

  it('lets the engine retry a hand-off that failed in part, until every letter is accepted', async () => {
    // Prepare: the DLQ throttles one letter once.
    const records = streamRecords();
    const batch = [1, 2].map((k) => records.insert({ PK: `USER#${k}`, SK: `TASK#${k}` }));
    let throttled = false;
    const { client, requests } = mockedSqs((input) =>
      sqsAnswer(input, (e) => {
        if (throttled || e.Id !== '0') return undefined;
        throttled = true;
        return { Code: 'RequestThrottled', SenderFault: true, Message: 'Request is throttled.' };
      }),
    );
    const sink = new MemorySink().failWhere(() => true, { error: () => permanentError() });
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: sqsDeadLetterQueue({ queueUrl: DLQ_URL, client }) }), logger: memoryLogger(), clock: new FakeClock() });

    // Act
    const outcome = await engine.process(batch);

    // Assess: the hand-off was retried; every record is done.
    expect(requests().length).toBeGreaterThanOrEqual(2);
    expect(outcome.counts['dead-lettered']).toBe(2);
    expect(outcome.watermark).toBe(2);
  });

  it('rejects when SQS fails the whole request', async () => {
    // Prepare
    const { client, mock } = mockedSqs();
    mock.on(SendMessageBatchCommand).rejects(Object.assign(new Error('The specified queue does not exist.'), { name: 'QueueDoesNotExist', $fault: 'client', $metadata: { httpStatusCode: 400 } }));
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });

    // Act
    const act = dlq.send([letterFor(streamRecords(), 1)], signal());

    // Assess
    await expect(act).rejects.toMatchObject({ name: 'QueueDoesNotExist' });
  });

  it('fails, with the fix in the message, a letter too large for a message when there is no claim-check store, and sends the others', async () => {
    // Prepare
    const { client, requests } = mockedSqs();
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client });
    const records = streamRecords();
    const letters = [letterFor(records, 1), letterFor(records, 2, 'x'.repeat(MiB))];

    // Act
    const result = await dlq.send(letters, signal());
    const alone = dlq.send([letters[1] as DeadLetter], signal());

    // Assess: the large one failed PERMANENT and was not cut down; the small one went out.
    expect(result?.failed).toHaveLength(1);
    const failure = result?.failed[0];
    expect(failure?.index).toBe(1);
    expect(failure?.error).toBeInstanceOf(OversizedDeadLetterError);
    expect(failure?.error).toBeInstanceOf(OversizedEventError);
    expect(failure?.error).toMatchObject({
      failureClass: 'PERMANENT',
      message: expect.stringMatching(new RegExp(`Dead letter of record ${letters[1]?.position.eventID} is \\d+ bytes.*not truncated. Set \`claimCheck: s3ClaimCheck`)),
    });
    await expect(alone).rejects.toThrow(OversizedDeadLetterError);
    expect(requests().flat()).toHaveLength(1);
  });

  it('stores a letter too large for a message whole and sends a pointer with its error, attempts and position', async () => {
    // Prepare
    const { client, requests } = mockedSqs();
    const store = new FakeClaimCheck();
    const dlq = sqsDeadLetterQueue({ queueUrl: DLQ_URL, client, claimCheck: store });
    const records = streamRecords();
    const big = letterFor(records, 1, 'é'.repeat(MiB / 2));
    const small = letterFor(records, 2);

    // Act
    await dlq.send([big, small], signal());

    // Assess
    expect(store.puts.map((p) => p.id)).toEqual([`${big.position.eventID}.dead-letter`]);
    expect(JSON.parse(store.puts[0]?.body ?? '')).toEqual(asJson(big));
    const pointer = nth(requests().flat(), 0);
    const whole = nth(requests().flat(), 1);
    expect(bodyOf(pointer)).toEqual({
      claimCheck: { bucket: 'lake', key: `dead-letters/${big.position.eventID}.dead-letter.json`, uri: `s3://lake/dead-letters/${big.position.eventID}.dead-letter.json`, size: Buffer.byteLength(store.puts[0]?.body ?? '') },
      sink: big.sink,
      error: big.error,
      attempts: big.attempts,
      position: (asJson(big) as { position: unknown }).position,
      firstAttemptAt: big.firstAttemptAt,
      lastAttemptAt: big.lastAttemptAt,
    });
    expect(pointer.MessageAttributes?.['eventID']?.StringValue).toBe(big.position.eventID);
    expect(bodyOf(whole)).toEqual(asJson(small));
  });

  it('on a FIFO queue, groups letters by stream and item and deduplicates them by eventID and sink', async () => {
    // Prepare
    const { client, requests } = mockedSqs();
    const dlq = sqsDeadLetterQueue({ queueUrl: FIFO_DLQ_URL, client });
    const records = streamRecords();
    const first = letterFor(records, 1);
    const sameItem = letterFor(records, 1);
    const otherSink = { ...first, sink: 'search' };
    const otherItem = letterFor(records, 2);

    // Act
    await dlq.send([first, sameItem, otherSink, otherItem], signal());

    // Assess
    const entries = requests().flat();
    for (const e of entries) {
      expect(e.MessageGroupId).toMatch(SQS_ID);
      expect(e.MessageDeduplicationId).toMatch(SQS_ID);
    }
    const [g1, g2, g3, g4] = entries.map((e) => e.MessageGroupId);
    expect(g1).toBe(g2);
    expect(g1).toBe(g3);
    expect(g4).not.toBe(g1);
    expect(entries.map((e) => e.MessageDeduplicationId)).toEqual([`${first.position.eventID}:task-queue`, `${sameItem.position.eventID}:task-queue`, `${first.position.eventID}:search`, `${otherItem.position.eventID}:task-queue`]);
  });
});
