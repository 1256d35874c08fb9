import { randomUUID } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { PutEventsCommandInput, PutEventsCommandOutput, PutEventsRequestEntry, PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { classify, ConfigError, decodeRecord, defineApp, Engine, entity, EntryFailedError, OversizedEventError, route, toJson } from '../../src/index.js';
import type { AppConfig, ChangeEvent, ClaimCheckPointer, ClaimCheckStore, FailureClass, Sink } from '../../src/index.js';
import { claimCheckEnvelope } from '../../src/sinks/claim-check.js';
import { eventBridge, putEventsEntrySize, putEventsErrorClasses } from '../../src/sinks/eventbridge/index.js';
import type { EventBridgeSinkOptions } from '../../src/sinks/eventbridge/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; TaskId: string; Status: 'OPEN' | 'IN_PROGRESS' | 'DONE'; Version: number; Body?: string };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

/** The quota of one PutEvents request: entries must total LESS than this. */
const LIMIT = 1_048_576;

// Every EventBridgeClient in this file, the ones the sink builds included, answers from this stub.
const eb = mockClient(EventBridgeClient);
beforeEach(() => eb.reset());
afterAll(() => eb.restore());

type Failure = { readonly code: string; readonly message: string };

/**
 * Answers PutEvents as AWS documents it: `Entries` in request order, each with an `EventId`, or with
 * `ErrorCode` and `ErrorMessage` when `fail` names a failure for it; `FailedEntryCount` counts those.
 * A call `reject` returns an error for fails as a whole, as the SDK throws it.
 */
const answer = (fail: (entry: PutEventsRequestEntry, call: number) => Failure | undefined = () => undefined, reject: (call: number) => Error | undefined = () => undefined) => {
  let call = 0;
  eb.on(PutEventsCommand).callsFake((input: PutEventsCommandInput): PutEventsCommandOutput => {
    call++;
    const error = reject(call);
    if (error) throw error;
    const entries: PutEventsResultEntry[] = (input.Entries ?? []).map((entry) => {
      const failure = fail(entry, call);
      return failure ? { ErrorCode: failure.code, ErrorMessage: failure.message } : { EventId: randomUUID() };
    });
    return { $metadata: { httpStatusCode: 200 }, FailedEntryCount: entries.filter((e) => e.ErrorCode !== undefined).length, Entries: entries };
  });
};

/** The Entries of every PutEvents request sent so far, in order. */
const requests = (): PutEventsRequestEntry[][] => eb.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);

const idOf = (entry: PutEventsRequestEntry | undefined): string | undefined => (JSON.parse(entry?.Detail ?? '{}') as { eventID?: string }).eventID;

const task = (k: number, extra: Partial<Task> & { Tags?: Set<string> } = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, TaskId: `${k}`, Status: 'OPEN', Version: 1, ...extra });

/** One insert record per key; distinct keys, so the engine puts them in one turn's requests. */
const inserts = (n: number, records = streamRecords()) => Array.from({ length: n }, (_, i) => records.insert(task(i)));

const setup = <E>(sink: Sink<E>, config: Partial<AppConfig> & { transform?: (event: ChangeEvent) => E } = {}) => {
  const { transform, ...rest } = config;
  const clock = new FakeClock();
  const deadLetter = new MemoryDeadLetterQueue();
  const start = clock.now();
  const routes = [transform ? route('*').transform(transform).to(sink) : route('*').to(sink as Sink<ChangeEvent>)];
  const app = defineApp({ table: 'TaskApp', routes, deadLetter, ...rest });
  return { clock, start, deadLetter, engine: new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 }) };
};

/** A small payload (what a route's transform may make) whose PutEvents entry is exactly `bytes` bytes with source 's', detail type 't', no time. */
const payloadOfSize = (eventID: string, bytes: number) => {
  const need = bytes - putEventsEntrySize({ Source: 's', DetailType: 't', Detail: toJson({ eventID, pad: '' }) });
  // Mostly 3-byte characters: a string length is a third of the byte count.
  return { eventID, pad: '€'.repeat(Math.floor(need / 3)) + 'a'.repeat(need % 3) };
};

const fixedShape = { busName: 'app', source: 's', detailType: 't', time: () => undefined } as const;

/** A claim-check store that keeps what it is given. */
const memoryClaimCheck = (fail?: (id: string) => Error | undefined) => {
  const puts: { id: string; body: string }[] = [];
  const store: ClaimCheckStore = {
    async put(id, body) {
      const error = fail?.(id);
      if (error) throw error;
      puts.push({ id, body });
      const key = `claims/${id}.json`;
      return { bucket: 'cdc-claims', key, uri: `s3://cdc-claims/${key}`, size: Buffer.byteLength(body) };
    },
  };
  return { store, puts };
};

const signal = () => new AbortController().signal;

describe('eventBridge', () => {
  describe('configuration', () => {
    it('throws a ConfigError naming eventBridge.busName and the fix when the bus is missing', () => {
      // Act
      const attempt = () => eventBridge({} as EventBridgeSinkOptions);

      // Assess
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(/`eventBridge\.busName` must be a non-empty string, got `undefined` \(undefined\)\. Set busName to the name or ARN of the event bus/);
    });

    it.each<[string, Partial<EventBridgeSinkOptions>, string]>([
      ['a request quota below 2 bytes', { maxRequestBytes: 1 }, 'eventBridge.maxRequestBytes'],
      ['a fractional request quota', { maxRequestBytes: 1000.5 }, 'eventBridge.maxRequestBytes'],
      ['a region next to a client', { client: new EventBridgeClient({}), region: 'eu-west-1' }, 'eventBridge.region'],
      ['a claim-check store without put()', { claimCheck: {} as ClaimCheckStore }, 'eventBridge.claimCheck'],
      ['an empty detail type', { detailType: '' }, 'eventBridge.detailType'],
    ])('rejects %s', (_what, options, field) => {
      // Act
      const attempt = () => eventBridge({ busName: 'app', ...options });

      // Assess
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(expect.objectContaining({ field }));
    });

    it('builds its own client with maxAttempts 1, so the engine is the only retry owner', async () => {
      // Act
      const sink = eventBridge({ busName: 'app', region: 'eu-west-1', endpoint: 'https://events.example.com' });

      // Assess
      expect(await sink.client.config.maxAttempts()).toBe(1);
      expect(await sink.client.config.region()).toBe('eu-west-1');
      expect(await sink.client.config.endpoint?.()).toMatchObject({ hostname: 'events.example.com', protocol: 'https:' });
    });

    it('uses the client it is given', async () => {
      // Prepare
      const client = new EventBridgeClient({ region: 'us-east-1', maxAttempts: 1 });

      // Act
      const sink = eventBridge({ busName: 'app', client });

      // Assess
      expect(sink.client).toBe(client);
    });

    it.each([
      [undefined, LIMIT - 1],
      [262_144, 262_143],
    ])('with maxRequestBytes %s declares 10 entries and %i bytes, unordered', (maxRequestBytes, maxBytes) => {
      // Act
      const sink = eventBridge({ busName: 'app', maxRequestBytes });

      // Assess
      expect(sink.limits).toEqual({ maxRecords: 10, maxBytes });
      expect(sink.preservesOrderWithinRequest).toBe(false);
      expect(sink.name).toBe('eventbridge');
    });
  });

  describe('entries', () => {
    it('maps a change event to an entry: bus, source and detail type from the event, the event as Detail, its change time as Time', async () => {
      // Prepare
      answer();
      const records = streamRecords();
      const withEntity = decodeRecord(records.insert(task(1, { Tags: new Set(['a', 'b']) })), { entityOf: () => 'Task' });
      const withoutEntity = decodeRecord(records.modify(task(2), task(2, { Version: 2 })));
      const sink = eventBridge({ busName: 'arn:aws:events:us-east-1:123456789012:event-bus/app' });

      // Act
      const { failed } = await sink.send([withEntity, withoutEntity], signal());

      // Assess
      expect(failed).toEqual([]);
      const [first, second] = requests()[0] ?? [];
      expect(first).toEqual({
        EventBusName: 'arn:aws:events:us-east-1:123456789012:event-bus/app',
        Source: 'dynamo-cdc.TaskApp',
        DetailType: 'Task.insert',
        Detail: toJson(withEntity),
        Time: new Date(withEntity.meta.approximateCreationTime),
      });
      expect(JSON.parse(first?.Detail ?? '{}')).toMatchObject({ eventID: withEntity.eventID, newImage: { Tags: ['a', 'b'] } });
      expect(second?.DetailType).toBe('TaskApp.modify');
      expect(idOf(second)).toBe(withoutEntity.eventID);
    });

    it('puts what detailType, detail, resources and time return into the entry', async () => {
      // Prepare
      answer();
      const event = decodeRecord<Task>(streamRecords().modify(task(1), task(1, { Status: 'DONE' })));
      const sink = eventBridge<ChangeEvent<Task>>({
        busName: 'app',
        source: 'tasks.service',
        detailType: (e) => `Task.${e.newImage?.Status ?? 'deleted'}`,
        detail: (e) => ({ eventID: e.eventID, taskId: e.newImage?.TaskId }),
        resources: (e) => [`arn:aws:dynamodb:us-east-1:123456789012:table/${e.meta.table}`],
        time: () => Date.UTC(2026, 5, 1),
      });

      // Act
      await sink.send([event], signal());

      // Assess
      expect(requests()).toEqual([
        [
          {
            EventBusName: 'app',
            Source: 'tasks.service',
            DetailType: 'Task.DONE',
            Detail: JSON.stringify({ eventID: event.eventID, taskId: '1' }),
            Resources: ['arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp'],
            Time: new Date(Date.UTC(2026, 5, 1)),
          },
        ],
      ]);
    });

    it("falls back for a transform's payload, which has no meta: source dynamo-cdc, a generic detail type, no Time", async () => {
      // Prepare
      answer();
      const sink = eventBridge<{ eventID: string; type: string }>({ busName: 'app' });

      // Act
      await sink.send([{ eventID: 'e1', type: 'Task.DONE' }], signal());

      // Assess
      expect(requests()).toEqual([[{ EventBusName: 'app', Source: 'dynamo-cdc', DetailType: 'dynamo-cdc.event', Detail: '{"eventID":"e1","type":"Task.DONE"}' }]]);
    });

    it('sizes an entry as AWS documents: 14 bytes for Time plus the UTF-8 bytes of Source, DetailType, Detail and Resources', () => {
      // Prepare: 'é' is 2 bytes, '€' 3, '😀' 4.
      const entry: PutEventsRequestEntry = { Source: 'só', DetailType: '€', Detail: '{"a":"😀"}', Resources: ['ré', 'x'], Time: new Date(0), EventBusName: 'not counted' };

      // Act
      const size = putEventsEntrySize(entry);

      // Assess
      expect(size).toBe(14 + 3 + 3 + (8 + 4) + 3 + 1);
    });

    it('reports the size of the entry it sends, and builds that entry once', async () => {
      // Prepare
      answer();
      const event = decodeRecord(streamRecords().insert(task(1, { Body: 'Grüße, 世界' })));
      const detail = vi.fn((e: ChangeEvent) => e);
      const sink = eventBridge({ busName: 'app', detail });

      // Act
      const size = sink.sizeOf(event);
      await sink.send([event], signal());

      // Assess
      expect(size).toBe(putEventsEntrySize(requests()[0]?.[0] ?? {}));
      expect(size).toBeGreaterThan(toJson(event).length); // bytes, not characters
      expect(detail).toHaveBeenCalledTimes(1);
    });

    it('sends one request with the abort signal, and nothing when the signal has already aborted', async () => {
      // Prepare
      answer();
      const sink = eventBridge({ busName: 'app' });
      const events = inserts(2).map((r) => decodeRecord(r));
      const live = new AbortController();
      const aborted = new AbortController();
      aborted.abort(new Error('deadline'));

      // Act
      await sink.send(events, live.signal);
      const late = sink.send(events, aborted.signal);

      // Assess
      await expect(late).rejects.toThrow('deadline');
      const calls = eb.commandCalls(PutEventsCommand);
      expect(calls).toHaveLength(1);
      expect((calls[0]?.args as unknown[] | undefined)?.[1]).toEqual({ abortSignal: live.signal });
    });

    it('rejects when the whole request fails, so the engine classifies the SDK error', async () => {
      // Prepare
      const sdkError = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 } });
      eb.on(PutEventsCommand).rejects(sdkError);
      const sink = eventBridge({ busName: 'app' });

      // Act
      const sent = sink.send([decodeRecord(streamRecords().insert(task(1)))], signal());

      // Assess
      await expect(sent).rejects.toBe(sdkError);
    });

    it('rejects a response that does not say which entries failed', async () => {
      // Prepare: FailedEntryCount without per-entry results.
      eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1 });
      const sink = eventBridge({ busName: 'app' });

      // Act
      const sent = sink.send(inserts(2).map((r) => decodeRecord(r)), signal());

      // Assess
      await expect(sent).rejects.toThrow(/which entries failed is unknown/);
    });
  });

  describe('entry error codes', () => {
    const expected: [string, FailureClass][] = [
      ['ThrottlingException', 'THROTTLING'],
      ['InternalFailure', 'TRANSIENT'],
      ['InternalException', 'TRANSIENT'],
      ['ServiceUnavailable', 'TRANSIENT'],
      ['MalformedDetail', 'PERMANENT'],
      ['InvalidArgument', 'PERMANENT'],
      ['ValidationException', 'PERMANENT'],
      ['AccessDeniedException', 'PERMANENT'],
      ['InvalidAccountIdException', 'PERMANENT'],
      ['RedactionFailure', 'PERMANENT'],
      ['NotAuthorizedForSourceException', 'PERMANENT'],
      ['NotAuthorizedForDetailTypeException', 'PERMANENT'],
      ['ResourceNotFoundException', 'PERMANENT'],
    ];

    it('holds exactly the documented codes in one table', () => {
      // Assess
      expect([...putEventsErrorClasses]).toEqual(expected);
    });

    it.each<[string, FailureClass]>([...expected, ['RequestThrottledSomehow', 'THROTTLING'], ['SomethingNew', 'TRANSIENT']])(
      'fails only the entry that got %s, as %s',
      async (code, failureClass) => {
        // Prepare: the second of three entries fails.
        const events = inserts(3).map((r) => decodeRecord(r));
        answer((entry) => (idOf(entry) === events[1]?.eventID ? { code, message: `${code} for this entry` } : undefined));
        const sink = eventBridge({ busName: 'app' });

        // Act
        const { failed } = await sink.send(events, signal());

        // Assess
        expect(failed).toHaveLength(1);
        expect(failed[0]?.index).toBe(1);
        const error = failed[0]?.error;
        expect(error).toBeInstanceOf(EntryFailedError);
        expect(error).toMatchObject({ name: code, code, failureClass, message: `EventBridge rejected the entry on bus app: ${code} for this entry` });
        expect(classify(error)).toBe(failureClass);
      },
    );
  });

  describe('through the engine', () => {
    it('sends 11 events as requests of 10 and 1', async () => {
      // Prepare
      answer();
      const { engine } = setup(eventBridge({ busName: 'app' }));

      // Act
      const outcome = await engine.process(inserts(11));

      // Assess
      expect(outcome.counts.delivered).toBe(11);
      expect(requests().map((r) => r.length)).toEqual([10, 1]);
    });

    it.each([
      [LIMIT - 1, [2]],
      [LIMIT, [1, 1]],
    ])('puts two entries totalling %i bytes (multi-byte text) into requests of %j', async (total, shape) => {
      // Prepare
      answer();
      const records = inserts(2);
      const sizes = new Map([
        [records[0]?.eventID, 400_000],
        [records[1]?.eventID, total - 400_000],
      ]);
      const sink = eventBridge<{ eventID: string; pad: string }>(fixedShape);
      const { engine } = setup(sink, { transform: (e) => payloadOfSize(e.eventID, sizes.get(e.eventID) ?? 0) });

      // Act
      const outcome = await engine.process(records);

      // Assess
      expect(outcome.counts.delivered).toBe(2);
      expect(requests().map((r) => r.length)).toEqual(shape);
      const sent = requests().flat();
      expect(sent.reduce((sum, e) => sum + putEventsEntrySize(e), 0)).toBe(total);
      expect(sent.reduce((sum, e) => sum + (e.Detail ?? '').length, 0)).toBeLessThan(total / 2); // characters are not bytes
    });

    it('sends a single entry of limit - 1 bytes', async () => {
      // Prepare
      answer();
      const [record] = inserts(1);
      const { engine, deadLetter } = setup(eventBridge<{ eventID: string; pad: string }>(fixedShape), { transform: (e) => payloadOfSize(e.eventID, LIMIT - 1) });

      // Act
      const outcome = await engine.process([record]);

      // Assess
      expect(outcome.counts.delivered).toBe(1);
      expect(requests().map((r) => r.map(putEventsEntrySize))).toEqual([[LIMIT - 1]]);
      expect(deadLetter.letters).toEqual([]);
    });

    it('dead-letters an entry of limit bytes with OversizedEventError when there is no claim-check store', async () => {
      // Prepare
      answer();
      const [record] = inserts(1);
      const { engine, deadLetter } = setup(eventBridge<{ eventID: string; pad: string }>(fixedShape), { transform: (e) => payloadOfSize(e.eventID, LIMIT) });

      // Act
      const outcome = await engine.process([record]);

      // Assess
      expect(outcome.counts['dead-lettered']).toBe(1);
      expect(requests()).toEqual([]);
      expect(deadLetter.letters).toHaveLength(1);
      expect(deadLetter.letters[0]).toMatchObject({ sink: 'eventbridge', attempts: 1, error: { name: OversizedEventError.name, class: 'PERMANENT' } });
      expect(deadLetter.letters[0]?.error.message).toContain(`Event of ${LIMIT} bytes exceeds the ${LIMIT - 1}-byte limit of sink eventbridge`);
      expect(deadLetter.letters[0]?.error.message).toContain('claimCheck');
    });

    it('retries only the entries that failed', async () => {
      // Prepare: the second entry of the first request fails with InternalFailure.
      const records = inserts(3);
      const failing = records[1]?.eventID;
      answer((entry, call) => (call === 1 && idOf(entry) === failing ? { code: 'InternalFailure', message: 'Internal failure' } : undefined));
      const { engine } = setup(eventBridge({ busName: 'app' }));

      // Act
      const outcome = await engine.process(records);

      // Assess
      expect(outcome.counts.delivered).toBe(3);
      expect(outcome.retries).toBe(1);
      expect(requests().map((r) => r.map(idOf))).toEqual([records.map((r) => r.eventID), [failing]]);
    });

    it('backs off on throttled entries and then delivers them', async () => {
      // Prepare: the entry is throttled twice.
      answer((_entry, call) => (call <= 2 ? { code: 'ThrottlingException', message: 'Rate exceeded' } : undefined));
      const { engine, clock, start } = setup(eventBridge({ busName: 'app' }));

      // Act
      const outcome = await engine.process(inserts(1));

      // Assess: jitter 0.5 of the throttling base (500 ms), doubled: 250 ms + 500 ms of virtual time.
      expect(outcome.counts.delivered).toBe(1);
      expect(outcome.retries).toBe(2);
      expect(requests()).toHaveLength(3);
      expect(clock.now() - start).toBeGreaterThanOrEqual(750);
    });

    it('retries a whole request that the SDK rejected', async () => {
      // Prepare
      const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client', $retryable: { throttling: true }, $metadata: { httpStatusCode: 400 } });
      answer(undefined, (call) => (call === 1 ? throttled : undefined));
      const { engine } = setup(eventBridge({ busName: 'app' }));

      // Act
      const outcome = await engine.process(inserts(2));

      // Assess
      expect(outcome.counts.delivered).toBe(2);
      expect(requests().map((r) => r.length)).toEqual([2, 2]);
    });

    it('dead-letters a MalformedDetail entry after one attempt, with the code as the error name', async () => {
      // Prepare
      const records = inserts(3);
      const poison = records[2]?.eventID;
      answer((entry) => (idOf(entry) === poison ? { code: 'MalformedDetail', message: 'Detail is malformed.' } : undefined));
      const { engine, deadLetter } = setup(eventBridge({ busName: 'app' }));

      // Act
      const outcome = await engine.process(records);

      // Assess
      expect(outcome.counts).toMatchObject({ delivered: 2, 'dead-lettered': 1 });
      expect(requests()).toHaveLength(1);
      expect(deadLetter.letters).toHaveLength(1);
      expect(deadLetter.letters[0]).toMatchObject({ sink: 'eventbridge', attempts: 1, position: { eventID: poison }, error: { name: 'MalformedDetail', class: 'PERMANENT' } });
    });

    it('dead-letters an event whose detailType function returns an empty string, naming the option', async () => {
      // Prepare
      answer();
      const { engine, deadLetter } = setup(eventBridge({ busName: 'app', detailType: () => '' }));

      // Act
      const outcome = await engine.process(inserts(1));

      // Assess
      expect(outcome.counts['dead-lettered']).toBe(1);
      expect(requests()).toEqual([]);
      expect(deadLetter.letters[0]?.error).toMatchObject({ name: 'ConfigError', class: 'PERMANENT' });
      expect(deadLetter.letters[0]?.error.message).toContain('`eventBridge.detailType` returned');
    });

    it('types the event of a route, so detailType can read the new image', async () => {
      // Prepare
      answer();
      const records = streamRecords();
      const app = defineApp({
        table: 'TaskApp',
        routes: [route(Task).on('modify').to(eventBridge({ busName: 'app', detailType: (e) => `Task.${e.newImage.Status}` }))],
      });
      const engine = new Engine({ app, logger: memoryLogger(), clock: new FakeClock() });

      // Act
      await engine.process([records.modify(task(1), task(1, { Status: 'DONE' }))]);

      // Assess
      expect(requests().flat().map((e) => e.DetailType)).toEqual(['Task.DONE']);
    });
  });

  describe('claim-check', () => {
    const bigRecord = (records = streamRecords()) => records.modify(task(1, { Body: 'x'.repeat(150_000) }), task(1, { Body: 'y'.repeat(150_000), Version: 2 }));

    it('stores an oversized Detail and sends the envelope, which keeps the eventID', async () => {
      // Prepare: 300 kB of images against the older 256 KB quota.
      answer();
      const { store, puts } = memoryClaimCheck();
      const event = decodeRecord(bigRecord());
      const sink = eventBridge({ busName: 'app', claimCheck: store, maxRequestBytes: 262_144 });

      // Act
      const size = sink.sizeOf(event);
      const { failed } = await sink.send([event], signal());

      // Assess
      expect(failed).toEqual([]);
      expect(puts).toEqual([{ id: event.eventID, body: toJson(event) }]);
      const pointer: ClaimCheckPointer = { bucket: 'cdc-claims', key: `claims/${event.eventID}.json`, uri: `s3://cdc-claims/claims/${event.eventID}.json`, size: Buffer.byteLength(toJson(event)) };
      const [entry] = requests()[0] ?? [];
      expect(entry?.Detail).toBe(toJson(claimCheckEnvelope(event, pointer)));
      expect(JSON.parse(entry?.Detail ?? '{}')).toMatchObject({ eventID: event.eventID, kind: 'modify', key: { PK: 'USER#1', SK: 'TASK#1' }, claimCheck: pointer });
      expect(entry).toMatchObject({ Source: 'dynamo-cdc.TaskApp', DetailType: 'TaskApp.modify' });
      expect(size).toBeLessThanOrEqual(sink.limits.maxBytes);
      expect(size).toBeGreaterThanOrEqual(putEventsEntrySize(entry ?? {}));
    });

    it('fails only the entry whose payload could not be stored, with the store’s error', async () => {
      // Prepare
      answer();
      const records = streamRecords();
      const big = decodeRecord(bigRecord(records));
      const small = decodeRecord(records.insert(task(2)));
      const storeDown = new Error('S3 unavailable');
      const { store } = memoryClaimCheck(() => storeDown);
      const sink = eventBridge({ busName: 'app', claimCheck: store, maxRequestBytes: 262_144 });

      // Act
      const { failed } = await sink.send([big, small], signal());

      // Assess
      expect(failed).toEqual([{ index: 0, error: storeDown }]);
      expect(requests().map((r) => r.map(idOf))).toEqual([[small.eventID]]);
    });

    it('fails an entry PERMANENT rather than overrun the request when the store returns a longer pointer than reserved', async () => {
      // Prepare: a store whose pointers are far longer than any S3 bucket or key.
      answer();
      const bucket = 'b'.repeat(5_000);
      const store: ClaimCheckStore = { put: async (id, body) => ({ bucket, key: id, uri: `s3://${bucket}/${id}`, size: Buffer.byteLength(body) }) };
      const sink = eventBridge({ busName: 'app', claimCheck: store, maxRequestBytes: 262_144 });

      // Act
      const { failed } = await sink.send([decodeRecord(bigRecord())], signal());

      // Assess
      expect(failed).toHaveLength(1);
      expect(classify(failed[0]?.error)).toBe('PERMANENT');
      expect(String(failed[0]?.error)).toMatch(/reserved for it/);
      expect(requests()).toEqual([]);
    });

    it('stores a payload once when its entry is retried', async () => {
      // Prepare: the pointer entry is throttled once.
      answer((_entry, call) => (call === 1 ? { code: 'ThrottlingException', message: 'Rate exceeded' } : undefined));
      const { store, puts } = memoryClaimCheck();
      const { engine, deadLetter } = setup(eventBridge({ busName: 'app', claimCheck: store, maxRequestBytes: 262_144 }));
      const record = bigRecord();

      // Act
      const outcome = await engine.process([record]);

      // Assess
      expect(outcome.counts.delivered).toBe(1);
      expect(deadLetter.letters).toEqual([]);
      expect(puts.map((p) => p.id)).toEqual([record.eventID]);
      expect(requests().map((r) => r.map(idOf))).toEqual([[record.eventID], [record.eventID]]);
      expect(requests().flat().every((e) => putEventsEntrySize(e) < 262_144)).toBe(true);
    });
  });
});
