import { createHash } from 'node:crypto';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { ConfigError, decodeRecord, defineApp, Engine, entity, EntryFailedError, route, toJson } from '../../src/index.js';
import type { AppConfig, ChangeEvent, ClaimCheckPointer, ClaimCheckStore, FailureClass } from '../../src/index.js';
import { sqs, sqsEntryFailureClass, toSqsId } from '../../src/sinks/sqs/index.js';
import type { SqsSink, SqsSinkOptions } from '../../src/sinks/sqs/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, streamRecords, transientError } from '../../src/testing/index.js';
import { bodyOf, mockedSqs, MiB, nth, sqsAnswer, sqsSize } from '../support/sqs-mock.js';

const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/task-changes';
const FIFO_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/task-changes.fifo';

type Task = { PK: string; SK: string; TaskId: string; Status: string; Version: number; Note?: string };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

const task = (k: number, version = 1, extra: Partial<Task> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, TaskId: `${k}`, Status: 'OPEN', Version: version, ...extra });

const eventIdOf = (entry: SendMessageBatchRequestEntry) => String(bodyOf(entry)['eventID']);

const setup = (sink: SqsSink, config: Partial<AppConfig> = {}) => {
  const clock = new FakeClock();
  const logger = memoryLogger();
  const dlq = new MemoryDeadLetterQueue();
  const app = defineApp({ table: 'TaskApp', routes: [route(Task).to(sink)], deadLetter: dlq, ...config });
  return { clock, logger, dlq, engine: new Engine({ app, logger, clock, random: () => 0.5 }) };
};

/** `n` UTF-8 bytes of text mixing 2-, 3- and 4-byte characters, topped up with ASCII. */
const multiByteText = (n: number): string => {
  const unit = 'é€😀'; // 2 + 3 + 4 bytes
  const units = Math.floor(n / 9);
  return unit.repeat(units) + 'a'.repeat(n - units * 9);
};

/**
 * An insert record whose message (the event as JSON plus the attributes kind and table) is exactly
 * `target` bytes as SQS counts them. The record's SizeBytes grows with the note, so it converges.
 */
const recordOfMessageSize = (records: ReturnType<typeof streamRecords>, k: number, target: number) => {
  const overrides = { eventID: `size-${k}`, sequenceNumber: `${900_000_000_000_000_000_000 + k}` };
  const attributes = Buffer.byteLength('kind' + 'String' + 'insert') + Buffer.byteLength('table' + 'String' + 'TaskApp');
  let noteBytes = 0;
  for (let i = 0; i < 10; i++) {
    const raw = records.insert({ PK: `USER#${k}`, SK: `TASK#${k}`, Note: multiByteText(noteBytes) }, overrides);
    const size = Buffer.byteLength(toJson(decodeRecord(raw))) + attributes;
    if (size === target) return raw;
    noteBytes += target - size;
  }
  throw new Error(`no record of ${target} bytes`);
};

class FakeClaimCheck implements ClaimCheckStore {
  readonly puts: { id: string; body: string }[] = [];
  readonly failing = new Set<string>();

  async put(id: string, body: string, signal: AbortSignal): Promise<ClaimCheckPointer> {
    signal.throwIfAborted();
    if (this.failing.has(id)) throw transientError('S3 unavailable');
    this.puts.push({ id, body });
    const key = `claim-check/${id}.json`;
    return { bucket: 'lake', key, uri: `s3://lake/${key}`, size: Buffer.byteLength(body) };
  }
}

const SQS_ID = /^[\x21-\x7E]{1,128}$/;

describe('sqs sink', () => {
  describe('configuration', () => {
    it.each<[string, Partial<SqsSinkOptions>, string, RegExp]>([
      ['no queueUrl', {}, 'sqs.queueUrl', /must be the URL of an SQS queue.*Set it to the queue's QueueUrl/],
      ['a queue name instead of a URL', { queueUrl: 'task-changes' }, 'sqs.queueUrl', /got `"task-changes"`/],
      ['fifo: true on a standard queue', { queueUrl: QUEUE_URL, fifo: true }, 'sqs.fifo', /is a standard queue/],
      ['fifo: false on a FIFO queue', { queueUrl: FIFO_QUEUE_URL, fifo: false }, 'sqs.fifo', /is a FIFO queue/],
      ['delaySeconds on a FIFO queue', { queueUrl: FIFO_QUEUE_URL, delaySeconds: 5 }, 'sqs.delaySeconds', /Set the queue's DelaySeconds/],
      ['delaySeconds over 15 minutes', { queueUrl: QUEUE_URL, delaySeconds: 901 }, 'sqs.delaySeconds', /from 0 to 900/],
      ['deduplicationId on a standard queue', { queueUrl: QUEUE_URL, deduplicationId: () => 'x' }, 'sqs.deduplicationId', /only to FIFO queues/],
      ['maxMessageBytes over 1 MiB', { queueUrl: QUEUE_URL, maxMessageBytes: MiB + 1 }, 'sqs.maxMessageBytes', /from 1024 to 1048576/],
      ['region next to a client', { queueUrl: QUEUE_URL, client: new SQSClient({}), region: 'eu-west-1' }, 'sqs.region', /Set it on the SQSClient you pass/],
      ['an empty name', { queueUrl: QUEUE_URL, name: '' }, 'sqs.name', /non-empty string/],
    ])('rejects %s with a ConfigError naming the field and the fix', (_what, options, field, message) => {
      // Act
      const act = () => sqs(options as SqsSinkOptions);

      // Assess
      expect(act).toThrow(ConfigError);
      expect(act).toThrow(message);
      try {
        act();
      } catch (error) {
        expect((error as ConfigError).field).toBe(field);
      }
    });

    it('decides FIFO from the queue name and declares SQS limits', () => {
      // Act
      const standard = sqs({ queueUrl: QUEUE_URL, region: 'us-east-1' });
      const fifo = sqs({ queueUrl: FIFO_QUEUE_URL, region: 'us-east-1', name: 'tasks-fifo', maxMessageBytes: 262_144 });

      // Assess
      expect(standard).toMatchObject({ name: 'sqs', fifo: false, preservesOrderWithinRequest: false, limits: { maxRecords: 10, maxBytes: MiB } });
      expect(fifo).toMatchObject({ name: 'tasks-fifo', fifo: true, preservesOrderWithinRequest: false, limits: { maxRecords: 10, maxBytes: 262_144 } });
    });

    it('builds its client with maxAttempts 1, so the engine is the only retry owner', async () => {
      // Act
      const sink = sqs({ queueUrl: QUEUE_URL, region: 'eu-west-1', endpoint: 'http://127.0.0.1:4566' });

      // Assess
      expect(await sink.client.config.maxAttempts()).toBe(1);
      expect(await sink.client.config.region()).toBe('eu-west-1');
    });
  });

  describe('messages', () => {
    it('sends each event as JSON with String attributes kind, entity and table, and the request signal', async () => {
      // Prepare
      const { client, mock, requests } = mockedSqs();
      const sink = sqs({ queueUrl: QUEUE_URL, client, delaySeconds: 30 });
      const records = streamRecords();
      const events = [decodeRecord(records.insert(task(1)), { entityOf: () => 'Task' }), decodeRecord(records.remove(task(2)))];
      const signal = new AbortController().signal;

      // Act
      const { failed } = await sink.send(events, signal);

      // Assess
      expect(failed).toEqual([]);
      const [entries = []] = requests();
      expect(mock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.QueueUrl).toBe(QUEUE_URL);
      expect(entries.map((e) => e.Id)).toEqual(['0', '1']);
      expect(bodyOf(nth(entries, 0))).toEqual(JSON.parse(toJson(events[0])));
      expect(entries[0]?.MessageAttributes).toEqual({
        kind: { DataType: 'String', StringValue: 'insert' },
        entity: { DataType: 'String', StringValue: 'Task' },
        table: { DataType: 'String', StringValue: 'TaskApp' },
      });
      // No entity on the second event: the attribute is left out rather than sent empty.
      expect(entries[1]?.MessageAttributes).toEqual({ kind: { DataType: 'String', StringValue: 'remove' }, table: { DataType: 'String', StringValue: 'TaskApp' } });
      expect(entries.every((e) => e.DelaySeconds === 30 && e.MessageGroupId === undefined && e.MessageDeduplicationId === undefined)).toBe(true);
      expect((mock.commandCalls(SendMessageBatchCommand)[0]?.args as unknown[] | undefined)?.[1]).toMatchObject({ abortSignal: signal });
    });

    it('sends what `body` returns: a string as it is, anything else as JSON', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const records = streamRecords();
      const event = decodeRecord(records.insert(task(1, 7)));
      const asText = sqs({ queueUrl: QUEUE_URL, client, body: (e) => `task ${String(e.key['PK'])} v${String(e.newImage?.['Version'])}` });
      const asJson = sqs({ queueUrl: QUEUE_URL, client, body: (e) => ({ id: e.eventID, tags: new Set(['a', 'b']) }) });

      // Act
      await asText.send([event], new AbortController().signal);
      await asJson.send([event], new AbortController().signal);

      // Assess
      expect(requests().map((r) => r[0]?.MessageBody)).toEqual(['task USER#1 v7', JSON.stringify({ id: event.eventID, tags: ['a', 'b'] })]);
    });

    it('sizes a message as SQS does (UTF-8 body plus attribute names, types and values) and serialises it once', async () => {
      // Prepare: multi-byte characters in the body and in the entity attribute.
      const { client, requests } = mockedSqs();
      let serialised = 0;
      const sink = sqs({
        queueUrl: QUEUE_URL,
        client,
        body: (e: ChangeEvent) => {
          serialised++;
          return { note: e.newImage?.['Note'] };
        },
      });
      const event = decodeRecord(streamRecords().insert(task(1, 1, { Note: 'Zoë 😀 €' })), { entityOf: () => 'Tâche' });

      // Act
      const size = sink.sizeOf(event);
      await sink.send([event], new AbortController().signal);

      // Assess
      const sent = nth(requests()[0], 0);
      expect(size).toBe(sqsSize(sent));
      expect(size).toBe(Buffer.byteLength('{"note":"Zoë 😀 €"}') + 'kindStringinsert'.length + Buffer.byteLength('entityStringTâche') + 'tableStringTaskApp'.length);
      expect(serialised).toBe(1);
    });

    it('escapes the characters SQS refuses in a body (U+FFFE, U+FFFF) so the JSON still means the same', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const sink = sqs({ queueUrl: QUEUE_URL, client });
      const event = decodeRecord(streamRecords().insert(task(1, 1, { Note: 'a\uFFFEb\uFFFF' })));

      // Act
      await sink.send([event], new AbortController().signal);

      // Assess
      const body = requests()[0]?.[0]?.MessageBody ?? '';
      expect(body).not.toMatch(/[\uFFFE\uFFFF]/);
      expect((JSON.parse(body) as ChangeEvent).newImage?.['Note']).toBe('a\uFFFEb\uFFFF');
    });

    it('sends nothing when its signal is already aborted', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const sink = sqs({ queueUrl: QUEUE_URL, client });
      const abort = new AbortController();
      abort.abort(new Error('deadline'));

      // Act
      const act = sink.send([decodeRecord(streamRecords().insert(task(1)))], abort.signal);

      // Assess
      await expect(act).rejects.toThrow('deadline');
      expect(requests()).toEqual([]);
    });

    it('rejects when SQS fails the whole request', async () => {
      // Prepare
      const { client, mock } = mockedSqs();
      mock.on(SendMessageBatchCommand).rejects(Object.assign(new Error('Access to the resource is denied.'), { name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } }));
      const sink = sqs({ queueUrl: QUEUE_URL, client });

      // Act
      const act = sink.send([decodeRecord(streamRecords().insert(task(1)))], new AbortController().signal);

      // Assess
      await expect(act).rejects.toMatchObject({ name: 'AccessDenied' });
    });

    it('splits a request given more than SQS takes into requests of at most 10 entries', async () => {
      // Prepare: a direct caller (not the engine) hands over 12 events.
      const { client, requests } = mockedSqs();
      const sink = sqs({ queueUrl: QUEUE_URL, client });
      const records = streamRecords();
      const events = Array.from({ length: 12 }, (_, i) => decodeRecord(records.insert(task(i))));

      // Act
      const { failed } = await sink.send(events, new AbortController().signal);

      // Assess
      expect(failed).toEqual([]);
      expect(requests().map((r) => r.map((e) => e.Id))).toEqual([['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], ['10', '11']]);
    });
  });

  describe('through the engine', () => {
    it('sends 11 events in a request of 10 and a request of 1', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const records = streamRecords();
      const { engine } = setup(sqs({ queueUrl: QUEUE_URL, client }));

      // Act
      const outcome = await engine.process(Array.from({ length: 11 }, (_, i) => records.insert(task(i))));

      // Assess
      expect(requests().map((r) => r.length)).toEqual([10, 1]);
      expect(outcome.counts.delivered).toBe(11);
    });

    it('sends a message of exactly 1 MiB with multi-byte characters and dead-letters one a byte larger', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const records = streamRecords();
      const exact = recordOfMessageSize(records, 1, MiB);
      const tooLarge = recordOfMessageSize(records, 2, MiB + 1);
      const sink = sqs({ queueUrl: QUEUE_URL, client });
      const clock = new FakeClock();
      const dlq = new MemoryDeadLetterQueue();
      const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq }), logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process([exact, tooLarge]);

      // Assess: the first went out whole; the second never reached SQS and is a PERMANENT dead letter.
      expect(requests()).toHaveLength(1);
      const sent = nth(requests()[0], 0);
      expect(sqsSize(sent)).toBe(MiB);
      expect(eventIdOf(sent)).toBe('size-1');
      expect(sink.sizeOf(decodeRecord(exact))).toBe(MiB);
      expect(sink.sizeOf(decodeRecord(tooLarge))).toBe(MiB + 1);
      expect(dlq.letters).toHaveLength(1);
      expect(dlq.letters[0]).toMatchObject({ attempts: 1, error: { name: 'OversizedEventError', class: 'PERMANENT' }, position: { eventID: 'size-2' } });
      expect(dlq.letters[0]?.error.message).toContain(`${MiB + 1} bytes exceeds the ${MiB}-byte limit`);
      expect(outcome.counts).toMatchObject({ delivered: 1, 'dead-lettered': 1 });
    });

    it('splits requests where their total would pass 1 MiB', async () => {
      // Prepare: two halves of exactly 512 KiB fill one request; a third event a byte larger needs its own.
      const { client, requests } = mockedSqs();
      const records = streamRecords();
      const batch = [recordOfMessageSize(records, 1, MiB / 2), recordOfMessageSize(records, 2, MiB / 2), recordOfMessageSize(records, 3, MiB / 2 + 1)];
      const clock = new FakeClock();
      const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sqs({ queueUrl: QUEUE_URL, client }))] }), logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process(batch);

      // Assess
      const totals = requests().map((r) => r.reduce((n, e) => n + sqsSize(e), 0));
      expect(totals).toEqual([MiB, MiB / 2 + 1]);
      expect(requests().map((r) => r.map(eventIdOf))).toEqual([['size-1', 'size-2'], ['size-3']]);
      expect(outcome.counts.delivered).toBe(3);
    });

    it('retries only the entries SQS failed', async () => {
      // Prepare: the second of three entries fails once with a server fault.
      const records = streamRecords();
      const batch = [1, 2, 3].map((k) => records.insert(task(k)));
      const { client, requests } = mockedSqs((input, call) =>
        sqsAnswer(input, (e) => (call === 0 && eventIdOf(e) === batch[1]?.eventID ? { Code: 'InternalError', SenderFault: false, Message: 'We encountered an internal error. Please try again.' } : undefined)),
      );
      const { engine } = setup(sqs({ queueUrl: QUEUE_URL, client }));

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(requests()).toHaveLength(2);
      expect(requests()[1]?.map(eventIdOf)).toEqual([batch[1]?.eventID]);
      expect(requests()[1]?.[0]?.Id).toBe('0');
      expect(outcome.counts.delivered).toBe(3);
      expect(outcome.retries).toBe(1);
    });

    it('backs off after throttled entries, then delivers them', async () => {
      // Prepare: every entry of the first request is throttled (KMS behind an SSE-KMS queue).
      const records = streamRecords();
      const batch = [1, 2, 3].map((k) => records.insert(task(k)));
      const { client, requests } = mockedSqs((input, call) =>
        sqsAnswer(input, () => (call === 0 ? { Code: 'KmsThrottled', SenderFault: true, Message: 'The request was denied due to request throttling.' } : undefined)),
      );
      const { engine, logger, clock } = setup(sqs({ queueUrl: QUEUE_URL, client }), { retry: { baseDelayMs: 100, throttlingBaseDelayMs: 500 } });
      const start = clock.now();

      // Act
      const outcome = await engine.process(batch);

      // Assess: a throttle waits on the throttling base (jitter 0.5 of 500 ms), not the 100 ms one.
      const retries = logger.entries.filter((e) => e.msg === 'delivery failed; retrying');
      expect(retries.map((e) => [e.obj['failure'], e.obj['delayMs']])).toEqual([
        ['THROTTLING', 250],
        ['THROTTLING', 250],
        ['THROTTLING', 250],
      ]);
      expect(clock.now() - start).toBeGreaterThanOrEqual(250);
      expect(requests().map((r) => r.length)).toEqual([3, 3]);
      expect(outcome.counts.delivered).toBe(3);
    });

    it('dead-letters an entry SQS rejects as the sender’s fault after one attempt', async () => {
      // Prepare
      const records = streamRecords();
      const batch = [1, 2].map((k) => records.insert(task(k)));
      const message = 'Value for parameter MessageBody is invalid. Reason: Message must contain only valid characters.';
      const { client, requests } = mockedSqs((input) => sqsAnswer(input, (e) => (eventIdOf(e) === batch[0]?.eventID ? { Code: 'InvalidParameterValue', SenderFault: true, Message: message } : undefined)));
      const { engine, dlq } = setup(sqs({ queueUrl: QUEUE_URL, client, name: 'task-queue' }));

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(requests()).toHaveLength(1);
      expect(dlq.letters).toHaveLength(1);
      expect(dlq.letters[0]).toMatchObject({ sink: 'task-queue', attempts: 1, error: { name: 'InvalidParameterValue', message, class: 'PERMANENT' }, record: batch[0] });
      expect(outcome.counts).toMatchObject({ delivered: 1, 'dead-lettered': 1 });
    });

    it('sends again an entry SQS reported neither as sent nor as failed', async () => {
      // Prepare: the first answer leaves one entry out.
      const records = streamRecords();
      const batch = [1, 2].map((k) => records.insert(task(k)));
      const { client, requests } = mockedSqs((input, call) => {
        const answer = sqsAnswer(input);
        return call === 0 ? { ...answer, Successful: answer.Successful?.slice(0, 1) } : answer;
      });
      const { engine } = setup(sqs({ queueUrl: QUEUE_URL, client }));

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(requests().map((r) => r.map(eventIdOf))).toEqual([[batch[0]?.eventID, batch[1]?.eventID], [batch[1]?.eventID]]);
      expect(outcome.counts.delivered).toBe(2);
    });
  });

  describe('FIFO queues', () => {
    it('groups by the item key and deduplicates by eventID', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const records = streamRecords();
      const { engine } = setup(sqs({ queueUrl: FIFO_QUEUE_URL, client }));
      const batch = [records.insert(task(1)), records.insert(task(2))];

      // Act
      await engine.process(batch);

      // Assess: the key's attribute names are sorted, whatever order the record lists them in.
      const entries = requests().flat();
      expect(entries.map((e) => e.MessageGroupId)).toEqual(['{"PK":"USER#1","SK":"TASK#1"}', '{"PK":"USER#2","SK":"TASK#2"}']);
      expect(entries.map((e) => e.MessageDeduplicationId)).toEqual(batch.map((r) => r.eventID));
    });

    it('makes valid, distinct ids from odd and long eventIDs and keys', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const sink = sqs({ queueUrl: FIFO_QUEUE_URL, client });
      const records = streamRecords();
      const odd = ['a b', 'a%20b', 'Zoë/😀', 'x'.repeat(129), 'x'.repeat(128), 'tab\there'];
      const events = odd.map((eventID, i) => decodeRecord(records.insert({ PK: `USER#Zoë ${i}`, SK: `TASK#${'é'.repeat(100)}` }, { eventID })));

      // Act
      await sink.send(events, new AbortController().signal);

      // Assess
      const entries = requests().flat();
      const dedup = entries.map((e) => e.MessageDeduplicationId ?? '');
      const groups = entries.map((e) => e.MessageGroupId ?? '');
      for (const id of [...dedup, ...groups]) expect(id).toMatch(SQS_ID);
      expect(new Set(dedup).size).toBe(odd.length);
      expect(new Set(groups).size).toBe(odd.length);
      expect(dedup[0]).toBe('a%20b');
      expect(dedup[1]).toBe('a%2520b');
      expect(dedup[3]).toBe(createHash('sha256').update('x'.repeat(129)).digest('hex'));
      expect(dedup[4]).toBe('x'.repeat(128));
    });

    it('keeps per-group order across retries: record 2 of a key waits until record 1 is accepted', async () => {
      // Prepare: record 1 of USER#1 fails twice; USER#2 runs alongside.
      const records = streamRecords();
      const batch = [records.insert(task(1, 1)), records.insert(task(2, 1)), records.modify(task(1, 1), task(1, 2)), records.modify(task(2, 1), task(2, 2))];
      const first = batch[0]?.eventID;
      let failures = 0;
      const { client, requests } = mockedSqs((input) =>
        sqsAnswer(input, (e) => (eventIdOf(e) === first && failures++ < 2 ? { Code: 'ServiceUnavailable', SenderFault: false, Message: 'Service is unavailable. Try again later.' } : undefined)),
      );
      const { engine } = setup(sqs({ queueUrl: FIFO_QUEUE_URL, client }));

      // Act
      const outcome = await engine.process(batch);

      // Assess
      const calls = requests().map((r) => r.map(eventIdOf));
      const withFirst = calls.flatMap((ids, i) => (ids.includes(first ?? '') ? [i] : []));
      const second = calls.findIndex((ids) => ids.includes(batch[2]?.eventID ?? ''));
      expect(withFirst).toHaveLength(3); // two failures, then accepted
      expect(second).toBeGreaterThan(withFirst[2] ?? Infinity);
      expect(requests().flat().filter((e) => e.MessageGroupId === '{"PK":"USER#1","SK":"TASK#1"}').map(eventIdOf)).toEqual([first, first, first, batch[2]?.eventID]);
      expect(outcome.counts.delivered).toBe(4);
    });

    it('takes the message group from an option, constant or per event', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const event = decodeRecord(streamRecords().insert(task(1)));
      const constant = sqs({ queueUrl: FIFO_QUEUE_URL, client, messageGroupId: 'all tasks' });
      const perUser = sqs({ queueUrl: FIFO_QUEUE_URL, client, messageGroupId: (e) => String(e.key['PK']), deduplicationId: (e) => `${e.eventID}:v1` });

      // Act
      await constant.send([event], new AbortController().signal);
      await perUser.send([event], new AbortController().signal);

      // Assess
      expect(requests().map((r) => [r[0]?.MessageGroupId, r[0]?.MessageDeduplicationId])).toEqual([
        ['all%20tasks', event.eventID],
        ['USER#1', `${event.eventID}:v1`],
      ]);
    });

    it('fails, rather than guesses, an event without a key when no messageGroupId is set', async () => {
      // Prepare: a route transform dropped the key.
      const { client, requests } = mockedSqs();
      const sink = sqs<{ eventID: string }>({ queueUrl: FIFO_QUEUE_URL, client });

      // Act
      const { failed } = await sink.send([{ eventID: 'e1' }], new AbortController().signal);

      // Assess
      expect(requests()).toEqual([]);
      expect(failed).toHaveLength(1);
      expect(failed[0]?.error).toMatchObject({ name: 'ConfigError', field: 'sqs.messageGroupId' });
    });
  });

  describe('claim-check', () => {
    it('stores an event too large for a message and sends a pointer with the same attributes', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const store = new FakeClaimCheck();
      const records = streamRecords();
      const big = recordOfMessageSize(records, 1, MiB + 10);
      const sink = sqs({ queueUrl: FIFO_QUEUE_URL, client, claimCheck: store });
      const dlq = new MemoryDeadLetterQueue();
      const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq }), logger: memoryLogger(), clock: new FakeClock() });

      // Act
      const outcome = await engine.process([big]);

      // Assess
      expect(sink.sizeOf(decodeRecord(big))).toBeLessThan(4096);
      expect(store.puts.map((p) => p.id)).toEqual(['size-1']);
      expect(store.puts[0]?.body).toBe(toJson(decodeRecord(big)));
      const sent = nth(requests()[0], 0);
      expect(bodyOf(sent)).toEqual({
        claimCheck: { bucket: 'lake', key: 'claim-check/size-1.json', uri: 's3://lake/claim-check/size-1.json', size: Buffer.byteLength(store.puts[0]?.body ?? '') },
        eventID: 'size-1',
        kind: 'insert',
        key: { PK: 'USER#1', SK: 'TASK#1' },
        sequenceNumber: big.dynamodb.SequenceNumber,
      });
      expect(sent.MessageAttributes).toEqual({ kind: { DataType: 'String', StringValue: 'insert' }, table: { DataType: 'String', StringValue: 'TaskApp' } });
      expect(sent.MessageDeduplicationId).toBe('size-1');
      expect(dlq.letters).toEqual([]);
      expect(outcome.counts.delivered).toBe(1);
    });

    it('fails only the entry whose body could not be stored', async () => {
      // Prepare
      const { client, requests } = mockedSqs();
      const store = new FakeClaimCheck();
      store.failing.add('size-1');
      const records = streamRecords();
      const events = [decodeRecord(recordOfMessageSize(records, 1, MiB + 1)), decodeRecord(records.insert(task(2)))];
      const sink = sqs({ queueUrl: QUEUE_URL, client, claimCheck: store });

      // Act
      const { failed } = await sink.send(events, new AbortController().signal);

      // Assess
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ index: 0, error: { name: 'ServiceUnavailable', message: 'S3 unavailable' } });
      expect(requests().flat().map(eventIdOf)).toEqual([events[1]?.eventID]);
      expect(requests()[0]?.[0]?.Id).toBe('1');
    });

    it('does not store the body again when only the message is retried', async () => {
      // Prepare: SQS fails the pointer message once.
      const store = new FakeClaimCheck();
      const records = streamRecords();
      const big = recordOfMessageSize(records, 1, MiB + 1);
      const { client, requests } = mockedSqs((input, call) => sqsAnswer(input, () => (call === 0 ? { Code: 'InternalError', SenderFault: false, Message: 'internal error' } : undefined)));
      const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sqs({ queueUrl: QUEUE_URL, client, claimCheck: store }))] }), logger: memoryLogger(), clock: new FakeClock() });

      // Act
      const outcome = await engine.process([big]);

      // Assess
      expect(requests()).toHaveLength(2);
      expect(store.puts).toHaveLength(1);
      expect(outcome.counts.delivered).toBe(1);
    });
  });
});

describe('sqsEntryFailureClass', () => {
  it.each<[string, boolean | undefined, FailureClass]>([
    ['InvalidParameterValue', true, 'PERMANENT'],
    ['InvalidMessageContents', true, 'PERMANENT'],
    ['KmsAccessDenied', true, 'PERMANENT'],
    ['KmsDisabled', true, 'PERMANENT'],
    ['AWS.SimpleQueueService.NonExistentQueue', true, 'PERMANENT'],
    ['ThrottlingException', true, 'THROTTLING'],
    ['RequestThrottled', true, 'THROTTLING'],
    ['KmsThrottled', true, 'THROTTLING'],
    ['KMS.ThrottlingException', true, 'THROTTLING'],
    ['AWS.SimpleQueueService.RequestThrottled', false, 'THROTTLING'],
    ['RequestThrottled', false, 'THROTTLING'],
    ['InternalError', false, 'TRANSIENT'],
    ['ServiceUnavailable', false, 'TRANSIENT'],
    ['SomethingNew', undefined, 'TRANSIENT'],
  ])('%s (SenderFault %s) -> %s', (code, senderFault, expected) => {
    expect(sqsEntryFailureClass(code, senderFault)).toBe(expected);
  });

  it('is the class an EntryFailedError carries to the engine', () => {
    expect(new EntryFailedError('KmsThrottled', 'slow down', sqsEntryFailureClass('KmsThrottled', true))).toMatchObject({ name: 'KmsThrottled', failureClass: 'THROTTLING' });
  });
});

describe('toSqsId', () => {
  it.each<[string, string]>([
    ['e7c4a1f0b2', 'e7c4a1f0b2'],
    ['{"PK":"USER#1","SK":"TASK#1"}', '{"PK":"USER#1","SK":"TASK#1"}'],
    ['a b', 'a%20b'],
    ['100%', '100%25'],
    ['Zoë', 'Zo%EB'],
    ['😀', '%uD83D%uDE00'],
    ['', createHash('sha256').update('').digest('hex')],
  ])('%j -> %j', (value, expected) => {
    expect(toSqsId(value)).toBe(expected);
    expect(toSqsId(value)).toMatch(SQS_ID);
  });
});
