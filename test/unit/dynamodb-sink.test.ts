import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import type { PutItemCommandInput } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { classify, ConfigError, decodeRecord, defineApp, Engine, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { dynamoDb, itemSize, NotAttemptedError } from '../../src/sinks/dynamodb/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number };
const task = (k: number, version: number): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: version });
const signal = () => new AbortController().signal;

const client = new DynamoDBClient({ region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const mock = mockClient(client);
afterEach(() => mock.reset());

const throttled = () => new ProvisionedThroughputExceededException({ message: 'The level of configured provisioned throughput for the table was exceeded', $metadata: { httpStatusCode: 400 } });
const refused = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: { httpStatusCode: 400 } });
const versionOf = (input: PutItemCommandInput) => input.Item?.['Version']?.N;
const pkOf = (input: PutItemCommandInput) => input.Item?.['PK']?.S;

describe('dynamoDb sink', () => {
  it('writes a conditional PutItem guarded by the padded position', async () => {
    // Prepare
    mock.on(PutItemCommand).resolves({});
    const event = decodeRecord(streamRecords().insert(task(1, 1)));

    // Act
    await dynamoDb({ tableName: 'view', client }).send([event], signal());

    // Assess
    const input = mock.commandCalls(PutItemCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      TableName: 'view',
      ConditionExpression: 'attribute_not_exists(#seq) OR #seq < :seq',
      ExpressionAttributeNames: { '#seq': '_cdcSeq' },
      ExpressionAttributeValues: { ':seq': { S: event.meta.sequenceNumber.padStart(40, '0') } },
    });
    expect(input?.Item?.['_cdcSeq']).toEqual({ S: event.meta.sequenceNumber.padStart(40, '0') });
  });

  it('acknowledges a refused condition (already newer) and fails a throttled write alone, as THROTTLING', async () => {
    // Prepare: item 1 is already newer; item 2 is throttled; item 3 is fine.
    mock.on(PutItemCommand).callsFake((input: PutItemCommandInput) => {
      if (pkOf(input) === 'USER#1') throw refused();
      if (pkOf(input) === 'USER#2') throw throttled();
      return {};
    });
    const records = streamRecords();
    const events = [1, 2, 3].map((k) => decodeRecord(records.insert(task(k, 1))));

    // Act
    const { failed } = await dynamoDb({ tableName: 'view', client }).send(events, signal());

    // Assess
    expect(failed.map((f) => f.index)).toEqual([1]);
    expect(classify(failed[0]?.error)).toBe('THROTTLING');
  });

  it('writes one item’s changes in order, stops its chain at a failure, and goes on with the other items', async () => {
    // Prepare: item 1's second change is throttled once.
    const order: string[] = [];
    let throttledOnce = false;
    mock.on(PutItemCommand).callsFake((input: PutItemCommandInput) => {
      order.push(`${pkOf(input)}@${versionOf(input)}`);
      if (pkOf(input) === 'USER#1' && versionOf(input) === '2' && !throttledOnce) {
        throttledOnce = true;
        throw throttled();
      }
      return {};
    });
    const records = streamRecords();
    const events = [
      records.insert(task(1, 1)),
      records.insert(task(2, 1)),
      records.modify(task(1, 1), task(1, 2)),
      records.modify(task(2, 1), task(2, 2)),
      records.modify(task(1, 2), task(1, 3)),
    ].map((r) => decodeRecord(r));

    // Act
    const { failed } = await dynamoDb({ tableName: 'view', client }).send(events, signal());

    // Assess: item 1's third change was not attempted (TRANSIENT); item 2 was written in full.
    expect(failed.map((f) => f.index)).toEqual([2, 4]);
    expect(failed[1]?.error).toBeInstanceOf(NotAttemptedError);
    expect(classify(failed[1]?.error)).toBe('TRANSIENT');
    expect(order.filter((o) => o.startsWith('USER#1'))).toEqual(['USER#1@1', 'USER#1@2']);
    expect(order.filter((o) => o.startsWith('USER#2'))).toEqual(['USER#2@1', 'USER#2@2']);
  });

  it('through the engine: a run of one item survives a throttled write and ends at the newest change', async () => {
    // Prepare: the first attempt of each write is throttled; the table keeps the highest position it accepted.
    const stored = new Map<string, string>();
    const seen = new Set<string>();
    mock.on(PutItemCommand).callsFake((input: PutItemCommandInput) => {
      const seq = input.ExpressionAttributeValues?.[':seq']?.S as string;
      if (!seen.has(seq)) {
        seen.add(seq);
        throw throttled();
      }
      const pk = pkOf(input) as string;
      if ((stored.get(pk) ?? '') >= seq) throw refused();
      stored.set(pk, seq);
      return {};
    });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(dynamoDb({ tableName: 'view', client }))], deadLetter: new MemoryDeadLetterQueue(), retry: { baseDelayMs: 0, maxDelayMs: 0, throttlingBaseDelayMs: 0 } });
    const engine = new Engine({ app, logger: memoryLogger(), clock: new FakeClock() });
    const records = streamRecords();
    const batch = [records.insert(task(1, 1)), ...[1, 2, 3, 4].map((v) => records.modify(task(1, v), task(1, v + 1)))];

    // Act
    const outcome = await engine.process(batch);

    // Assess
    expect(outcome.counts.delivered).toBe(5);
    expect(stored.get('USER#1')).toBe(batch[4]?.dynamodb.SequenceNumber.padStart(40, '0'));
  });

  it('rejects at once, writing nothing, when its signal is already aborted', async () => {
    mock.on(PutItemCommand).resolves({});
    const abort = new AbortController();
    abort.abort(new Error('deadline'));
    await expect(dynamoDb({ tableName: 'view', client }).send([decodeRecord(streamRecords().insert(task(1, 1)))], abort.signal)).rejects.toThrow('deadline');
    expect(mock.commandCalls(PutItemCommand)).toHaveLength(0);
  });

  it('fails a payload that is not a change event PERMANENT, naming the fix', async () => {
    const sink = dynamoDb({ tableName: 'view', client });
    const { failed } = await sink.send([{ id: 1 } as unknown as ChangeEvent], signal());
    expect(classify(failed[0]?.error)).toBe('PERMANENT');
    expect((failed[0]?.error as Error).message).toContain('`item` and `key` options');
  });

  it('fails a key mapping that returns no key PERMANENT, naming the option', async () => {
    const sink = dynamoDb({ tableName: 'view', client, key: () => ({}) });
    const { failed } = await sink.send([decodeRecord(streamRecords().insert(task(1, 1)))], signal());
    expect(failed[0]?.error).toBeInstanceOf(ConfigError);
    expect((failed[0]?.error as ConfigError).field).toBe('dynamoDb.key');
  });

  it.each([
    [{ tableName: '' }, 'dynamoDb.tableName'],
    [{ tableName: 't', sequenceAttribute: 'x', deletedAttribute: 'x' }, 'dynamoDb.deletedAttribute'],
    [{ tableName: 't', tombstoneTtl: { attribute: 'ttl', seconds: 0 } }, 'dynamoDb.tombstoneTtl.seconds'],
    [{ tableName: 't', maxConcurrentWrites: 0 }, 'dynamoDb.maxConcurrentWrites'],
    [{ tableName: 't', client, region: 'eu-west-1' }, 'dynamoDb.region'],
  ])('refuses a bad option at start-up: %o', (options, field) => {
    expect(() => dynamoDb(options as Parameters<typeof dynamoDb>[0])).toThrow(expect.objectContaining({ field }) as Error);
  });

  it('sizes items as DynamoDB counts them: names and values', () => {
    expect(itemSize({ PK: { S: 'USER#1' }, n: { N: '12345' }, ok: { BOOL: true }, l: { L: [{ S: 'ab' }] }, m: { M: { a: { NULL: true } } } })).toBe(2 + 6 + 1 + 4 + 2 + 1 + 1 + (3 + 2 + 1) + 1 + (3 + 1 + 1 + 1));
  });
});
