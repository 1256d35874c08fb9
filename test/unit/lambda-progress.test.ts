import { describe, expect, it } from 'vitest';
import { createStreamHandler } from '../../src/lambda/index.js';
import { decodeProgress, encodeProgress } from '../../src/lambda/progress-codec.js';
import { canonicalSequenceNumber, latestFor, nextProgress } from '../../src/lambda/progress.js';
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

describe('latestFor', () => {
  const batch = new Set(['20', '21', '22']);

  it("takes the newest record that mentions the batch, not the union, and passes over other shards' records", () => {
    // Prepare: two records of this shard (keys 10 and 5), one of another shard (key 15).
    const newer = progress('10', ['21']);
    const older = progress('5', ['21', '22']);
    const otherShard = progress('15', ['16', '25']);

    // Act
    const latest = latestFor([older, otherShard, newer], batch);

    // Assess
    expect(latest).toBe(newer);
  });

  it('trusts nothing older than a blind record, of any shard', () => {
    // Prepare: a blind record (key 12, mentions none of the batch) newer than this shard's record.
    const ours = progress('10', ['21', '22']);
    const blind = { ...progress('12', ['13']), blind: true };

    // Act
    const latest = latestFor([ours, blind], batch);

    // Assess
    expect(latest).toBeUndefined();
  });

  it('takes a blind record that mentions the batch: what it did itself is known', () => {
    // Prepare
    const blind = { ...progress('20', ['20', '21']), blind: true };

    // Act
    const latest = latestFor([progress('10', ['22']), blind], batch);

    // Assess
    expect(latest).toBe(blind);
  });
});

describe('nextProgress', () => {
  it('carries what the latest record knew past the batch, keyed at the batch\'s first record', () => {
    // Prepare: the batch is 20..22; the latest record (keyed 10) knew 21 and 30..31 done.
    const latest = progress('10', ['11', '21', '30', '31'], [['32', ['a']]]);

    // Act
    const next = nextProgress({ streamArn: ARN, sequenceNumbers: ['20', '21', '22'], done: (i) => i === 0, acknowledged: new Map([[2, new Set(['b'])]]), blind: false }, latest);

    // Assess: nothing from before 20; 21 done (known), 22 acknowledged by b.
    expect(next).toEqual(progress('20', ['20', '21', '30', '31'], [['22', ['b']], ['32', ['a']]]));
  });

  it('flags the record of a blind batch', () => {
    // Act
    const next = nextProgress({ streamArn: ARN, sequenceNumbers: ['20', '21'], done: () => true, acknowledged: new Map(), blind: true }, undefined);

    // Assess
    expect(next).toEqual({ ...progress('20', ['20', '21']), blind: true });
  });
});

describe('createStreamHandler options', () => {
  it('rejects a bad progressTimeoutMs with a ConfigError that names the field', () => {
    // Prepare
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(new MemorySink())] });

    // Act
    const badTimeout = () => createStreamHandler(app, { progressTimeoutMs: 0 });

    // Assess
    expect(badTimeout).toThrow(/`progressTimeoutMs` must be a number of milliseconds > 0, got `0`/);
  });
});
