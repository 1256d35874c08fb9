import { describe, expect, it } from 'vitest';
import { createStreamHandler } from '../../src/lambda/index.js';
import { decodeProgress, encodeProgress } from '../../src/lambda/progress-codec.js';
import { canonicalSequenceNumber, nextProgress, ProgressMemory } from '../../src/lambda/progress.js';
import { defineApp, route } from '../../src/index.js';
import type { Progress } from '../../src/ports.js';
import { MemorySink } from '../../src/testing/index.js';

const ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';

const progress = (sequenceNumber: string, done: string[], acknowledged: [string, string[]][] = []): Progress => ({
  streamArn: ARN,
  sequenceNumber,
  done: new Set(done),
  acknowledged: new Map(acknowledged.map(([s, sinks]) => [s, new Set(sinks)])),
});

describe('encodeProgress', () => {
  it('round-trips a 10,000-record batch with per-sink acknowledgements in a few KB', () => {
    // Prepare: a shard's dense 21-digit numbers; 1 in 10 not done, acknowledged by some of four sinks or none.
    const sinks = ['a', 'b', 'sink "c"\nwith a newline', 'd,e:f.g'];
    const done: string[] = [];
    const acknowledged: [string, string[]][] = [];
    for (let i = 0; i < 10_000; i++) {
      const s = (100_000_000_000_000_000_000n + BigInt(i) * 137n).toString();
      if (i % 10 === 3) acknowledged.push([s, sinks.filter((_, k) => (i >> k) & 1)]);
      else done.push(s);
    }
    const original = progress(done[0] as string, done, acknowledged);

    // Act
    const bytes = encodeProgress(original);

    // Assess
    expect(decodeProgress(bytes)).toEqual({ done: original.done, acknowledged: original.acknowledged });
    expect(bytes.byteLength).toBeLessThan(10_000);
  });

  it('rejects a sequence number that is not a canonical decimal, naming it', () => {
    // Act
    const act = () => encodeProgress(progress('5', ['12a']));

    // Assess
    expect(act).toThrow(/got `12a`/);
  });
});

describe('canonicalSequenceNumber', () => {
  it('drops leading zeros and refuses what is not a decimal of at most 40 digits', () => {
    // Assess
    expect(canonicalSequenceNumber('000000000000000000022')).toBe('22');
    expect(canonicalSequenceNumber('0')).toBe('0');
    expect(canonicalSequenceNumber('9'.repeat(40))).toBe('9'.repeat(40));
    expect(['', '1e5', '-1', '9'.repeat(41)].map(canonicalSequenceNumber)).toEqual(['', '', '', '']);
  });
});

describe('nextProgress', () => {
  it("carries what this shard's records knew past the batch, and leaves other shards' records out", () => {
    // Prepare: the batch is 20..22; ours (keyed 10) knew 21 and 30..31 done; another shard's
    // record (keyed 15) mentions none of the batch.
    const ours = progress('10', ['11', '21', '30', '31'], [['32', ['a']]]);
    const theirs = progress('15', ['16', '25'], [['26', ['b']]]);

    // Act
    const next = nextProgress(
      { streamArn: ARN, sequenceNumbers: ['20', '21', '22'], done: (i) => i === 0, acknowledged: new Map([[2, new Set(['b'])]]) },
      [ours, theirs],
    );

    // Assess: keyed at the batch's first record; nothing from before it; 21 done, 22 acknowledged by b.
    expect(next).toEqual(progress('20', ['20', '21', '30', '31'], [['22', ['b']], ['32', ['a']]]));
  });
});

describe('ProgressMemory', () => {
  it('finds records keyed at or before a position that mention something at or after it, newest first', () => {
    // Prepare
    const memory = new ProgressMemory(100);
    for (const p of [progress('99', ['1005']), progress('998', ['999', '1001']), progress('500', ['999']), progress('1001', ['1002'])]) memory.save(p);

    // Act
    const found = memory.load({ streamArn: ARN, sequenceNumber: '1000' });

    // Assess
    expect(found.map((p) => p.sequenceNumber)).toEqual(['998', '99']);
  });

  it('keeps at most its capacity in sequence numbers, dropping the oldest written first', () => {
    // Prepare
    const memory = new ProgressMemory(5);

    // Act: 2 + 2 + 2 numbers: the first record goes; a record bigger than the capacity is not kept.
    memory.save(progress('10', ['11', '12']));
    memory.save(progress('20', ['21', '22']));
    memory.save(progress('30', ['31', '32']));
    memory.save(progress('40', ['41', '42', '43', '44', '45', '46']));

    // Assess
    expect(memory.load({ streamArn: ARN, sequenceNumber: '11' })).toEqual([]);
    expect(memory.load({ streamArn: ARN, sequenceNumber: '22' }).map((p) => p.sequenceNumber)).toEqual(['20']);
    expect(memory.load({ streamArn: ARN, sequenceNumber: '46' })).toEqual([]);
  });
});

describe('createStreamHandler options', () => {
  it('rejects a bad progressMemory or progressTimeoutMs with a ConfigError that names the field', () => {
    // Prepare
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(new MemorySink())] });

    // Act
    const badMemory = () => createStreamHandler(app, { progressMemory: -1 });
    const badTimeout = () => createStreamHandler(app, { progressTimeoutMs: 0 });

    // Assess
    expect(badMemory).toThrow(/`progressMemory` must be an integer >= 0, got `-1`/);
    expect(badTimeout).toThrow(/`progressTimeoutMs` must be a number of milliseconds > 0, got `0`/);
  });
});
