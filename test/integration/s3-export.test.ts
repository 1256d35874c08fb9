import { randomBytes, randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, decodeRecord, defineApp, Engine, route, systemClock } from '../../src/index.js';
import type { ChangeEvent, Item } from '../../src/index.js';
import { localS3ClientConfig, startS3rver } from '../../src/local/s3rver.js';
import type { LocalS3 } from '../../src/local/s3rver.js';
import { s3Export } from '../../src/sinks/s3/index.js';
import type { S3ExportOptions, S3ExportSink } from '../../src/sinks/s3/index.js';
import { FakeClock, memoryLogger, streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord, StreamRecordsOptions } from '../../src/testing/index.js';

const BUCKET = 'cdc-lake';
const MIB = 1024 * 1024;

/** A fresh prefix per test, so no test sees another's objects. */
const uniquePrefix = (): string => `test-${randomUUID()}/`;

const live = (): AbortSignal => new AbortController().signal;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `n` inserts of distinct tasks (one lane each), one second apart, with an optional payload attribute. */
const taskRecords = (n: number, options: StreamRecordsOptions = {}, body?: (i: number) => string): LambdaStreamRecord[] => {
  const records = streamRecords(options);
  return Array.from({ length: n }, (_, i) => records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1, ...(body ? { Body: body(i) } : {}) }));
};

const decodeAll = (records: readonly LambdaStreamRecord[]): ChangeEvent[] => records.map((r) => decodeRecord(r));

/** A DynamoDB stream sequence number padded as the keys pad it. */
const padded = (sequenceNumber: string) => sequenceNumber.padStart(40, '0');

interface Line {
  readonly eventID: string;
  readonly [field: string]: unknown;
}

describe('s3Export against s3rver', () => {
  let s3: LocalS3;
  const clients: S3Client[] = [];

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: [BUCKET] });
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.destroy();
  });

  afterAll(async () => {
    await s3?.stop();
  });

  /**
   * A client of s3rver that records the commands it sends and runs `hook` before each, so a test
   * can hold a request back or fail it.
   */
  const spyClient = (hook?: (command: string, input: { Key?: string }) => Promise<void> | void) => {
    const client = new S3Client(localS3ClientConfig(s3.endpoint));
    const commands: string[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = context.commandName ?? '';
        commands.push(command);
        await hook?.(command, args.input as { Key?: string });
        return next(args);
      },
      { step: 'initialize', name: 'testSpy' },
    );
    clients.push(client);
    return { client, commands, count: (name: string) => commands.filter((c) => c === name).length };
  };

  const listKeys = async (prefix: string): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  };

  /** The object's bytes as stored. */
  const readObject = async (key: string): Promise<Buffer> => {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return Buffer.from((await out.Body?.transformToByteArray()) ?? []);
  };

  /** The object's NDJSON text: gunzipped when its name says so. */
  const readText = async (key: string): Promise<string> => {
    const stored = await readObject(key);
    return (key.endsWith('.gz') ? gunzipSync(stored) : stored).toString('utf8');
  };

  /** The object's lines, parsed, checking that it is well-formed NDJSON (one object a line, a final newline). */
  const readLines = async (key: string): Promise<Line[]> => {
    const text = await readText(key);
    expect(text.endsWith('\n')).toBe(true);
    return text
      .slice(0, -1)
      .split('\n')
      .map((line) => JSON.parse(line) as Line);
  };

  /** Every object under `prefix`, in key order, with its lines. */
  const readAll = async (prefix: string) => Promise.all((await listKeys(prefix)).map(async (key) => ({ key, lines: await readLines(key) })));

  const engineFor = (sink: S3ExportSink, retry?: { maxAttempts: number }, clock = systemClock) =>
    new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...(retry ? { retry } : {}) }), logger: memoryLogger(), clock });

  describe('partitions and keys', () => {
    it.each([
      ['an hour', Date.UTC(2026, 2, 15, 9, 59, 57), ['dt=2026-03-15/hr=09', 'dt=2026-03-15/hr=10']],
      ['a day', Date.UTC(2026, 0, 1, 23, 59, 57), ['dt=2026-01-01/hr=23', 'dt=2026-01-02/hr=00']],
    ])('writes one object per Hive partition of the change time (UTC) across %s boundary', async (_boundary, startTime, partitions) => {
      // Prepare: four changes at :58, :59, :00 and :01 seconds.
      const prefix = uniquePrefix();
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client });
      const records = taskRecords(4, { startTime });
      const events = decodeAll(records);
      const seq = records.map((r) => padded(r.dynamodb.SequenceNumber));

      // Act
      const { failed } = await sink.send(events, live());

      // Assess
      expect(failed).toEqual([]);
      const objects = await readAll(prefix);
      expect(objects.map((o) => o.key)).toEqual([
        expect.stringMatching(new RegExp(`^${prefix}table=TaskApp/${partitions[0]}/2026-01-01T000000\\.000-lambda-${seq[0]}-${seq[1]}-[0-9a-f]{16}\\.ndjson\\.gz$`)),
        expect.stringMatching(new RegExp(`^${prefix}table=TaskApp/${partitions[1]}/2026-01-01T000000\\.000-lambda-${seq[2]}-${seq[3]}-[0-9a-f]{16}\\.ndjson\\.gz$`)),
      ]);
      expect(objects.map((o) => o.lines.map((l) => l.eventID))).toEqual([
        [events[0]?.eventID, events[1]?.eventID],
        [events[2]?.eventID, events[3]?.eventID],
      ]);
    });

    it('names the shard when the worker knows it, and pads sequence numbers so keys sort in stream order', async () => {
      // Prepare: a 21-digit and a 22-digit sequence number, which sort the wrong way as plain strings.
      const prefix = uniquePrefix();
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client });
      const records = streamRecords();
      const shardId = 'shardId-00000001767225600000-1a2b3c4d';
      const early = decodeRecord(records.insert({ PK: 'USER#1', SK: 'TASK#1' }, { sequenceNumber: '900000000000000000000' }), { shardId });
      const late = decodeRecord(records.insert({ PK: 'USER#1', SK: 'TASK#1' }, { sequenceNumber: '1000000000000000000000' }), { shardId });

      // Act: the later record is written first.
      await sink.send([late], live());
      await sink.send([early], live());

      // Assess
      const objects = await readAll(prefix);
      expect(objects.map((o) => o.lines.map((l) => l.eventID))).toEqual([[early.eventID], [late.eventID]]);
      for (const { key } of objects) expect(key).toContain(`/2026-01-01T000000.000-${shardId}-`);
      expect(objects[0]?.lines[0]?.['shardId']).toBe(shardId);
    });

    it('writes a transform output without a stream position as it is, under the hour it is written in', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const sink = s3Export<unknown>({ bucket: BUCKET, prefix, client: s3.client });
      const payloads = [
        { eventID: 'e-1', taskId: 'T1', status: 'DONE' },
        { eventID: 'e-2', taskId: 'T2', status: 'OPEN' },
      ];
      const hour = (t: number) => `dt=${new Date(t).toISOString().slice(0, 10)}/hr=${new Date(t).toISOString().slice(11, 13)}/`;
      const before = hour(Date.now());

      // Act: twice, as a retry would.
      await sink.send(payloads, live());
      await sink.send(payloads.map((p) => ({ ...p })), live());

      // Assess: one object, written twice to the same key; lines are the payloads themselves.
      const after = hour(Date.now());
      const objects = await readAll(prefix);
      expect(objects).toHaveLength(1);
      const key = objects[0]?.key ?? '';
      expect([`${prefix}table=unknown/${before}`, `${prefix}table=unknown/${after}`].some((p) => key.startsWith(p))).toBe(true);
      expect(key).toMatch(/\/transformed-[0-9a-f]{32}\.ndjson\.gz$/);
      expect(objects[0]?.lines).toEqual(payloads);
    });
  });

  describe('content', () => {
    it('writes gzip NDJSON, one line per event in the order given, with every documented field', async () => {
      // Prepare: an insert (with a string set), a modify, and a TTL expiry, one second apart.
      const prefix = uniquePrefix();
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client });
      const records = streamRecords();
      const task: Item = { PK: 'USER#7', SK: 'TASK#1', Status: 'OPEN', Tags: new Set(['home', 'urgent']), Version: 1 };
      const done: Item = { ...task, Status: 'DONE', Version: 2 };
      const raw = [records.insert(task), records.modify(task, done), records.remove(done, { ttl: true })];
      const events = decodeAll(raw);
      const common = (i: number) => ({
        eventID: raw[i]?.eventID,
        table: 'TaskApp',
        key: { PK: 'USER#7', SK: 'TASK#1' },
        entity: null,
        sequenceNumber: raw[i]?.dynamodb.SequenceNumber,
        shardId: null,
        approximateCreationTime: new Date(Date.UTC(2026, 0, 1, 0, 0, i + 1)).toISOString(),
        sizeBytes: raw[i]?.dynamodb.SizeBytes,
      });
      const json = (item: Item) => ({ ...item, Tags: ['home', 'urgent'] });

      // Act
      const { failed } = await sink.send(events, live());

      // Assess
      expect(failed).toEqual([]);
      const [key, ...others] = await listKeys(prefix);
      expect(others).toEqual([]);
      const stored = await readObject(key ?? '');
      expect(stored.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // a gzip file
      const text = gunzipSync(stored).toString('utf8');
      expect(Buffer.byteLength(text)).toBe(events.reduce((sum, e) => sum + sink.sizeOf(e), 0));
      const lines = text.split('\n');
      expect(lines.pop()).toBe('');
      expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
        { ...common(0), kind: 'insert', newImage: json(task), oldImage: null, changed: ['PK', 'SK', 'Status', 'Tags', 'Version'], expired: false },
        { ...common(1), kind: 'modify', newImage: json(done), oldImage: json(task), changed: ['Status', 'Version'], expired: false },
        { ...common(2), kind: 'remove', newImage: null, oldImage: json(done), changed: ['PK', 'SK', 'Status', 'Tags', 'Version'], expired: true },
      ]);
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(head.ContentType).toBe('application/gzip');
      expect(head.ContentEncoding).toBeUndefined();
      expect(head.ContentLength).toBe(stored.byteLength);
    });

    it('writes plain .ndjson without gzip, and lines shaped by `line`, made once per event', async () => {
      // Prepare
      const prefix = uniquePrefix();
      let made = 0;
      const sink = s3Export({
        bucket: BUCKET,
        prefix,
        client: s3.client,
        gzip: false,
        line: (e) => {
          made++;
          return { id: e.eventID, status: e.newImage?.['Status'] };
        },
      });
      const events = decodeAll(taskRecords(2));

      // Act: sized as the engine does, then sent twice (a retry).
      const sizes = events.map((e) => sink.sizeOf(e));
      await sink.send(events, live());
      await sink.send(events, live());

      // Assess
      expect(made).toBe(2);
      const [key, ...others] = await listKeys(prefix);
      expect(others).toEqual([]);
      expect(key).toMatch(/[0-9a-f]{16}\.ndjson$/);
      const text = await readText(key ?? '');
      expect(text).toBe(events.map((e) => `${JSON.stringify({ id: e.eventID, status: 'OPEN' })}\n`).join(''));
      expect(sizes).toEqual(events.map((e) => Buffer.byteLength(`${JSON.stringify({ id: e.eventID, status: 'OPEN' })}\n`)));
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(head.ContentType).toBe('application/x-ndjson');
    });

    it('fails an event whose line cannot be made PERMANENT, and writes the others', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const events = decodeAll(taskRecords(3));
      const sink = s3Export({
        bucket: BUCKET,
        prefix,
        client: s3.client,
        line: (e) => {
          if (e.eventID === events[1]?.eventID) throw new TypeError('Cannot read properties of undefined');
          return { eventID: e.eventID };
        },
      });

      // Act
      const { failed } = await sink.send(events, live());

      // Assess
      expect(failed).toHaveLength(1);
      expect(failed[0]?.index).toBe(1);
      expect(failed[0]?.error).toMatchObject({ name: 'PoisonRecordError', failureClass: 'PERMANENT', message: expect.stringContaining('s3Export.line threw') });
      const objects = await readAll(prefix);
      expect(objects.map((o) => o.lines)).toEqual([[{ eventID: events[0]?.eventID }, { eventID: events[2]?.eventID }]]);
    });
  });

  describe('rollover through the engine', () => {
    it('cuts objects at rollover.maxRecords lines', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client, rollover: { maxRecords: 3, maxAgeMs: 0 } });
      const records = taskRecords(10);

      // Act
      const outcome = await engineFor(sink).process(records);

      // Assess
      expect(outcome.counts.delivered).toBe(10);
      const objects = await readAll(prefix);
      expect(objects.length).toBeGreaterThanOrEqual(4);
      for (const o of objects) expect(o.lines.length).toBeLessThanOrEqual(3);
      expect(objects.flatMap((o) => o.lines.map((l) => l.eventID)).sort()).toEqual(records.map((r) => r.eventID).sort());
    });

    it('cuts objects at rollover.maxBytes of uncompressed NDJSON', async () => {
      // Prepare: lines of about 1 KB; an object holds two at most.
      const prefix = uniquePrefix();
      const records = taskRecords(9, {}, () => 'x'.repeat(800));
      const probe = s3Export({ bucket: BUCKET, client: s3.client });
      const sizes = decodeAll(records).map((e) => probe.sizeOf(e));
      const maxBytes = Math.floor(Math.max(...sizes) * 2.5);
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client, rollover: { maxBytes, maxAgeMs: 0 } });

      // Act
      const outcome = await engineFor(sink).process(records);

      // Assess
      expect(outcome.counts.delivered).toBe(9);
      const keys = await listKeys(prefix);
      expect(keys.length).toBeGreaterThanOrEqual(5);
      for (const key of keys) expect(Buffer.byteLength(await readText(key))).toBeLessThanOrEqual(maxBytes);
      const ids = (await readAll(prefix)).flatMap((o) => o.lines.map((l) => l.eventID));
      expect(ids.sort()).toEqual(records.map((r) => r.eventID).sort());
    });

    it('declares its rollover as the limits the engine batches by, and has no flush (it holds nothing)', async () => {
      // Prepare
      const defaults = s3Export({ bucket: BUCKET, client: s3.client });
      const custom = s3Export({ bucket: BUCKET, client: s3.client, rollover: { maxRecords: 500, maxBytes: 1_000_000, maxAgeMs: 5_000 } });

      // Assess
      expect(defaults.limits).toEqual({ maxRecords: 10_000, maxBytes: 64 * MIB, maxWaitMs: 60_000 });
      expect(custom.limits).toEqual({ maxRecords: 500, maxBytes: 1_000_000, maxWaitMs: 5_000 });
      expect(defaults.preservesOrderWithinRequest).toBe(true);
      expect('flush' in defaults).toBe(false);
    });
  });

  describe('multipart uploads', () => {
    it('uploads an object at or above the threshold in parts, which reads back whole', async () => {
      // Prepare: about 9 MB of random text, which gzip cannot shrink below the 5 MiB threshold.
      const prefix = uniquePrefix();
      const spy = spyClient();
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client, multipartThresholdBytes: 5 * MIB });
      const records = taskRecords(30, {}, () => randomBytes(225_000).toString('base64'));
      const events = decodeAll(records);

      // Act
      const { failed } = await sink.send(events, live());

      // Assess
      expect(failed).toEqual([]);
      expect(spy.count('CreateMultipartUploadCommand')).toBe(1);
      expect(spy.count('UploadPartCommand')).toBeGreaterThanOrEqual(2);
      expect(spy.count('CompleteMultipartUploadCommand')).toBe(1);
      expect(spy.count('PutObjectCommand')).toBe(0);
      const [key, ...others] = await listKeys(prefix);
      expect(others).toEqual([]);
      const stored = await readObject(key ?? '');
      expect(stored.byteLength).toBeGreaterThanOrEqual(5 * MIB);
      const text = gunzipSync(stored).toString('utf8');
      expect(Buffer.byteLength(text)).toBe(events.reduce((sum, e) => sum + sink.sizeOf(e), 0));
      expect(
        text
          .slice(0, -1)
          .split('\n')
          .map((l) => (JSON.parse(l) as Line).eventID),
      ).toEqual(records.map((r) => r.eventID));
    });

    it('puts an object below the threshold with one PutObject', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const spy = spyClient();
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client, multipartThresholdBytes: 5 * MIB });

      // Act
      await sink.send(decodeAll(taskRecords(3)), live());

      // Assess
      expect(spy.commands).toEqual(['PutObjectCommand']);
      expect(await listKeys(prefix)).toHaveLength(1);
    });
  });

  describe('acknowledgement', () => {
    it('acknowledges records only once their object is stored', async () => {
      // Prepare: PutObject waits for a gate the test opens.
      const prefix = uniquePrefix();
      let open: () => void = () => {};
      const gate = new Promise<void>((resolve) => (open = resolve));
      let reached: () => void = () => {};
      const atGate = new Promise<void>((resolve) => (reached = resolve));
      const spy = spyClient(async (command) => {
        if (command !== 'PutObjectCommand') return;
        reached();
        await gate;
      });
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client, rollover: { maxAgeMs: 0 } });
      const records = taskRecords(5);
      let finished = false;

      // Act
      const processing = engineFor(sink)
        .process(records)
        .then((outcome) => {
          finished = true;
          return outcome;
        });
      await atGate;
      await sleep(200);
      const whileBlocked = { finished, keys: await listKeys(prefix) };
      open();
      const outcome = await processing;

      // Assess
      expect(whileBlocked).toEqual({ finished: false, keys: [] });
      expect(outcome.counts.delivered).toBe(5);
      expect(outcome.watermark).toBe(5);
      expect(await listKeys(prefix)).toHaveLength(1);
    });

    it('rejects when the object cannot be stored, so the engine never marks its records delivered', async () => {
      // Prepare: every PutObject fails as S3 answers an internal error.
      const prefix = uniquePrefix();
      const internalError = () => Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $fault: 'server', $metadata: { httpStatusCode: 500 } });
      const spy = spyClient((command) => {
        if (command === 'PutObjectCommand') throw internalError();
      });
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client, rollover: { maxAgeMs: 0 } });
      const records = taskRecords(3);

      // Act
      const direct = await sink.send(decodeAll(records), live()).then(
        () => 'resolved',
        (error: unknown) => error,
      );
      const outcome = await engineFor(sink, { maxAttempts: 3 }, new FakeClock()).process(records);

      // Assess
      expect(direct).toMatchObject({ name: 'InternalError' });
      expect(outcome.statuses).toEqual(['blocked', 'blocked', 'blocked']);
      expect(outcome.watermark).toBe(0);
      expect(spy.count('PutObjectCommand')).toBeGreaterThanOrEqual(1 + 3);
      expect(await listKeys(prefix)).toEqual([]);
    });

    it('fails only the events of the object that could not be stored', async () => {
      // Prepare: two partitions in one request; the second one's PutObject fails.
      const prefix = uniquePrefix();
      const spy = spyClient((command, input) => {
        if (command === 'PutObjectCommand' && input.Key?.includes('/hr=10/')) throw Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
      });
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client });
      const events = decodeAll(taskRecords(4, { startTime: Date.UTC(2026, 2, 15, 9, 59, 57) }));

      // Act
      const { failed } = await sink.send(events, live());

      // Assess
      expect(failed.map((f) => f.index)).toEqual([2, 3]);
      expect(failed.map((f) => (f.error as Error).name)).toEqual(['SlowDown', 'SlowDown']);
      const objects = await readAll(prefix);
      expect(objects.map((o) => o.lines.map((l) => l.eventID))).toEqual([[events[0]?.eventID, events[1]?.eventID]]);
      expect(objects[0]?.key).toContain('/hr=09/');
    });
  });

  describe('replay', () => {
    it('rewrites the same objects when the same records are processed again', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const spy = spyClient();
      const sink = s3Export({ bucket: BUCKET, prefix, client: spy.client, rollover: { maxRecords: 4, maxAgeMs: 0 } });
      const records = taskRecords(10);
      await engineFor(sink).process(records);
      const first = await Promise.all((await listKeys(prefix)).map(async (key) => ({ key, text: await readText(key) })));
      const putsBefore = spy.count('PutObjectCommand');

      // Act: the same batch again, as Lambda re-delivers it, through a fresh engine and sink.
      const again = s3Export({ bucket: BUCKET, prefix, client: spy.client, rollover: { maxRecords: 4, maxAgeMs: 0 } });
      const outcome = await engineFor(again).process(records);

      // Assess: written again (not skipped), onto the same keys, with the same content.
      expect(outcome.counts.delivered).toBe(10);
      expect(first.length).toBeGreaterThanOrEqual(3);
      expect(spy.count('PutObjectCommand') - putsBefore).toBe(first.length);
      const second = await Promise.all((await listKeys(prefix)).map(async (key) => ({ key, text: await readText(key) })));
      expect(second).toEqual(first);
    });

    it('writes a different grouping of the same records to new objects and loses no row', async () => {
      // Prepare
      const prefix = uniquePrefix();
      const sink = s3Export({ bucket: BUCKET, prefix, client: s3.client });
      const [a, b, c] = decodeAll(taskRecords(3)) as [ChangeEvent, ChangeEvent, ChangeEvent];
      await sink.send([a, b, c], live());

      // Act: a and c again without b in between (b was done and skipped, say).
      await sink.send([a, c], live());

      // Assess: same first and last record, yet a new object: the first one still holds b.
      const objects = await readAll(prefix);
      expect(objects).toHaveLength(2);
      expect(objects.map((o) => o.lines.map((l) => l.eventID)).sort((x, y) => y.length - x.length)).toEqual([
        [a.eventID, b.eventID, c.eventID],
        [a.eventID, c.eventID],
      ]);
    });
  });

  describe('configuration', () => {
    it.each<[string, Partial<S3ExportOptions>, string]>([
      ['a missing bucket', {}, 's3Export.bucket'],
      ['a bucket shorter than 3 characters', { bucket: 'ab' }, 's3Export.bucket'],
      ['a bucket given as a URI', { bucket: 's3://lake/cdc' }, 's3Export.bucket'],
      ['a prefix that is not a folder', { bucket: BUCKET, prefix: 'cdc' }, 's3Export.prefix'],
      ['zero records per object', { bucket: BUCKET, rollover: { maxRecords: 0 } }, 's3Export.rollover.maxRecords'],
      ['a negative age', { bucket: BUCKET, rollover: { maxAgeMs: -1 } }, 's3Export.rollover.maxAgeMs'],
      ['a multipart threshold below 5 MiB', { bucket: BUCKET, multipartThresholdBytes: MIB }, 's3Export.multipartThresholdBytes'],
      ['a line that is not a function', { bucket: BUCKET, line: 'eventID' as unknown as () => unknown }, 's3Export.line'],
      ['a region next to a client', { bucket: BUCKET, client: new S3Client({}), region: 'eu-west-1' }, 's3Export.region'],
      ['a KMS key without KMS encryption', { bucket: BUCKET, kmsKeyId: 'alias/lake' }, 's3Export.kmsKeyId'],
    ])('rejects %s with a ConfigError naming the field', (_case, options, field) => {
      // Act
      const build = () => s3Export(options as S3ExportOptions);

      // Assess
      expect(build).toThrow(ConfigError);
      expect(build).toThrow(expect.objectContaining({ field, message: expect.stringContaining(`\`${field}\``) }));
    });

    it('names the fix when the bucket is missing', () => {
      // Act
      const build = () => s3Export({} as S3ExportOptions);

      // Assess
      expect(build).toThrow(/at least 3 characters.*Set it to the bucket/);
    });

    it('builds a client that makes one attempt per request: the engine owns retries', async () => {
      // Act
      const sink = s3Export({ bucket: BUCKET, region: 'eu-central-1' });

      // Assess
      expect(await sink.client.config.maxAttempts()).toBe(1);
      expect(await sink.client.config.region()).toBe('eu-central-1');
      sink.client.destroy();
    });
  });
});
