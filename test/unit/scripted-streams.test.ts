import { describe, expect, it } from 'vitest';
import { ScriptedStreams, streamRecords, toGetRecordsShape } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import type { RecordsPage } from '../../src/worker/ports.js';

const task = (n: number, status = 'OPEN') => ({ PK: `USER#${n}`, SK: `TASK#${n}`, Status: status });

/** A stream with one shard holding `count` inserts. */
const oneShard = (count: number) => {
  const factory = streamRecords();
  const records = Array.from({ length: count }, (_, i) => factory.insert(task(i)));
  const streams = new ScriptedStreams({ streamArn: factory.streamArn }).addShard({ shardId: 'shard-1' }).append('shard-1', records);
  return { factory, records, streams, streamArn: factory.streamArn };
};

const seqOf = (record: unknown) => (record as { dynamodb: { SequenceNumber: string } }).dynamodb.SequenceNumber;
const seqs = (page: RecordsPage) => page.records.map(seqOf);
const seqsOf = (records: readonly LambdaStreamRecord[]) => records.map((r) => r.dynamodb.SequenceNumber);

describe('ScriptedStreams', () => {
  it('returns appended records in the GetRecords shape, in order, a limit at a time', async () => {
    // Prepare
    const { streams, streamArn, records } = oneShard(5);
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });

    // Act
    const first = await streams.getRecords(iterator, 3);
    const second = await streams.getRecords(first.nextIterator as string, 3);
    const third = await streams.getRecords(second.nextIterator as string, 3);

    // Assess
    expect(first.records).toEqual(records.slice(0, 3).map(toGetRecordsShape));
    expect(seqs(second)).toEqual(seqsOf(records.slice(3)));
    expect(third.records).toEqual([]);
    expect(third.nextIterator).toEqual(expect.any(String));
    expect(streams.calls.getRecords).toBe(3);
  });

  it('positions iterators at and after sequence numbers, comparing them as integers', async () => {
    // Prepare: sequence numbers of different lengths, where string order would be wrong.
    const factory = streamRecords();
    const records = ['9', '10', '100'].map((sequenceNumber, i) => factory.insert(task(i), { sequenceNumber }));
    const streams = new ScriptedStreams({ streamArn: factory.streamArn }).addShard({ shardId: 'shard-1' }).append('shard-1', records);
    const read = async (position: Parameters<ScriptedStreams['getShardIterator']>[2]) =>
      seqs(await streams.getRecords(await streams.getShardIterator(factory.streamArn, 'shard-1', position), 100));

    // Act
    const after = await read({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: '9' });
    const at = await read({ type: 'AT_SEQUENCE_NUMBER', sequenceNumber: '10' });
    const horizon = await read({ type: 'TRIM_HORIZON' });

    // Assess
    expect(after).toEqual(['10', '100']);
    expect(at).toEqual(['10', '100']);
    expect(horizon).toEqual(['9', '10', '100']);
  });

  it('reads from LATEST only what is appended afterwards', async () => {
    // Prepare
    const { streams, streamArn, factory } = oneShard(3);
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'LATEST' });
    const later = factory.insert(task(9));

    // Act
    const before = await streams.getRecords(iterator, 100);
    streams.append('shard-1', [later]);
    const after = await streams.getRecords(before.nextIterator as string, 100);

    // Assess
    expect(before.records).toEqual([]);
    expect(seqs(after)).toEqual([later.dynamodb.SequenceNumber]);
  });

  it('ends a closed shard: no next iterator once its last record is returned', async () => {
    // Prepare
    const { streams, streamArn, records } = oneShard(4);
    streams.closeShard('shard-1');
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });

    // Act
    const first = await streams.getRecords(iterator, 2);
    const last = await streams.getRecords(first.nextIterator as string, 2);
    const latest = await streams.getRecords(await streams.getShardIterator(streamArn, 'shard-1', { type: 'LATEST' }), 2);
    const [description] = await streams.describeShards(streamArn);

    // Assess
    expect(first.nextIterator).toEqual(expect.any(String));
    expect(seqs(last)).toEqual(seqsOf(records.slice(2)));
    expect(last.nextIterator).toBeUndefined();
    expect(latest).toEqual({ records: [], nextIterator: undefined });
    expect(description?.endingSequenceNumber).toBe(records[3]?.dynamodb.SequenceNumber);
    expect(() => streams.append('shard-1', [streamRecords().insert(task(1), { sequenceNumber: '999999999999999999999999' })])).toThrow('closed');
  });

  it('splits a shard into children that name their parent', async () => {
    // Prepare
    const factory = streamRecords();
    const streams = new ScriptedStreams({ streamArn: factory.streamArn }).addShard({ shardId: 'parent' }).append('parent', [factory.insert(task(1))]);

    // Act
    streams.split('parent', ['child-a', 'child-b']).append('child-a', [factory.modify(task(1), task(1, 'DONE'))]);
    const shards = await streams.describeShards(factory.streamArn);
    const children = await streams.childShards(factory.streamArn, 'parent');
    const grandchildren = await streams.childShards(factory.streamArn, 'child-a');

    // Assess
    expect(shards.map((s) => [s.shardId, s.parentShardId, s.endingSequenceNumber !== undefined])).toEqual([
      ['parent', undefined, true],
      ['child-a', 'parent', false],
      ['child-b', 'parent', false],
    ]);
    expect(children.map((s) => s.shardId)).toEqual(['child-a', 'child-b']);
    expect(children[0]?.startingSequenceNumber).toBe(shards[1]?.startingSequenceNumber);
    expect(grandchildren).toEqual([]);
    expect(streams.calls).toMatchObject({ describeStream: 3, childShards: 2 });
  });

  it('throws TrimmedDataAccessException for an iterator before trimmed records, and starts TRIM_HORIZON after them', async () => {
    // Prepare
    const { streams, streamArn, records } = oneShard(5);
    const stale = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });
    const cut = records[1]?.dynamodb.SequenceNumber as string;

    // Act
    streams.trim('shard-1', cut);
    const [read, at] = await Promise.allSettled([
      streams.getRecords(stale, 100),
      streams.getShardIterator(streamArn, 'shard-1', { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: cut }),
    ]);
    const afterCut = await streams.getRecords(await streams.getShardIterator(streamArn, 'shard-1', { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: cut }), 100);
    const horizon = await streams.getRecords(await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' }), 100);

    // Assess
    expect(read).toMatchObject({ status: 'rejected', reason: { name: 'TrimmedDataAccessException' } });
    expect(at).toMatchObject({ status: 'rejected', reason: { name: 'TrimmedDataAccessException' } });
    expect(seqs(afterCut)).toEqual(seqsOf(records.slice(2)));
    expect(seqs(horizon)).toEqual(seqsOf(records.slice(2)));
  });

  it('expires every outstanding iterator, and serves new ones', async () => {
    // Prepare
    const { streams, streamArn, records } = oneShard(2);
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });
    const page = await streams.getRecords(iterator, 1);

    // Act
    streams.expireIterators();
    const [first, next] = await Promise.allSettled([streams.getRecords(iterator, 1), streams.getRecords(page.nextIterator as string, 1)]);
    const renewed = await streams.getShardIterator(streamArn, 'shard-1', { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: seqs(page)[0] as string });

    // Assess
    expect(first).toMatchObject({ status: 'rejected', reason: { name: 'ExpiredIteratorException' } });
    expect(next).toMatchObject({ status: 'rejected', reason: { name: 'ExpiredIteratorException' } });
    expect(seqs(await streams.getRecords(renewed, 1))).toEqual(seqsOf(records.slice(1)));
  });

  it('forgets a removed shard: gone from the description, ResourceNotFoundException when named', async () => {
    // Prepare
    const { streams, streamArn } = oneShard(1);
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });
    streams.split('shard-1', ['shard-2', 'shard-3']);

    // Act
    streams.removeShard('shard-1');
    const shards = await streams.describeShards(streamArn);
    const [read, fresh] = await Promise.allSettled([streams.getRecords(iterator, 1), streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' })]);

    // Assess
    expect(shards.map((s) => [s.shardId, s.parentShardId])).toEqual([
      ['shard-2', 'shard-1'],
      ['shard-3', 'shard-1'],
    ]);
    expect(read).toMatchObject({ status: 'rejected', reason: { name: 'ResourceNotFoundException' } });
    expect(fresh).toMatchObject({ status: 'rejected', reason: { name: 'ResourceNotFoundException' } });
  });

  it('counts one DescribeStream call per page of 100 shards', async () => {
    // Prepare
    const streams = new ScriptedStreams({ streamArn: 'arn:stream' });
    for (let i = 0; i < 250; i++) streams.addShard({ shardId: `shard-${i}` });

    // Act
    const shards = await streams.describeShards('arn:stream');

    // Assess
    expect(shards).toHaveLength(250);
    expect(shards.at(-1)?.shardId).toBe('shard-249');
    expect(streams.calls.describeStream).toBe(3);
  });

  it('answers like the service for a wrong stream, a bad iterator or a limit out of range', async () => {
    // Prepare
    const { streams, streamArn } = oneShard(1);
    const iterator = await streams.getShardIterator(streamArn, 'shard-1', { type: 'TRIM_HORIZON' });

    // Act
    const results = await Promise.allSettled([
      streams.describeShards('arn:other'),
      streams.getShardIterator(streamArn, 'no-such-shard', { type: 'LATEST' }),
      streams.getRecords('not-an-iterator', 10),
      streams.getRecords(iterator, 0),
      streams.getRecords(iterator, 1001),
    ]);

    // Assess
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).name : 'fulfilled'))).toEqual([
      'ResourceNotFoundException',
      'ResourceNotFoundException',
      'ValidationException',
      'ValidationException',
      'ValidationException',
    ]);
  });

  it('fails the next calls as scripted, then serves again', async () => {
    // Prepare
    const { streams, streamArn } = oneShard(1);
    const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'LimitExceededException' });
    streams.failNext('describeShards', throttled, 2);

    // Act
    const results = await Promise.allSettled([streams.describeShards(streamArn), streams.describeShards(streamArn), streams.describeShards(streamArn)]);

    // Assess
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(results[0]).toMatchObject({ reason: { name: 'LimitExceededException' } });
    expect(streams.calls.describeStream).toBe(3);
  });

  it('refuses appends that do not raise the sequence number', () => {
    // Prepare
    const { streams, records } = oneShard(2);

    // Act
    const append = () => streams.append('shard-1', [records[0]]);

    // Assess
    expect(append).toThrow('must be above');
  });
});
