import { gunzipSync, gzipSync } from 'node:zlib';
import type { Progress } from '../ports.js';
import { isTrackable } from './progress.js';

/** What a progress record holds besides its key. */
export type ProgressContent = Pick<Progress, 'done' | 'acknowledged'>;

const byValue = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

const canonical = (s: string): bigint => {
  if (!isTrackable(s)) throw new TypeError(`Expected a sequence number (a decimal of at most 40 digits, no leading zeros), got \`${s}\``);
  return BigInt(s);
};

/** Sorted numbers as base-36 differences from the previous one, so a shard's dense numbers take 2 or 3 characters each. */
const deltas = (numbers: readonly bigint[]): string[] => {
  let previous = 0n;
  return numbers.map((n) => {
    const delta = (n - previous).toString(36);
    previous = n;
    return delta;
  });
};

/**
 * Encodes a record's content compactly: 10,000 records of a shard take a few KB, far below
 * DynamoDB's 400 KB item limit. Three lines, gzipped: the sink names (JSON), the done sequence
 * numbers (sorted, base-36 deltas, comma-joined), and the acknowledged ones (the same, each
 * followed by `:` and the indexes of its sinks in the first line, dot-joined, maybe none).
 * Throws a TypeError on a sequence number that is not a canonical decimal.
 */
export const encodeProgress = (content: ProgressContent): Uint8Array => {
  const sinks: string[] = [];
  const sinkIndex = new Map<string, number>();
  const indexOf = (sink: string): string => {
    let i = sinkIndex.get(sink);
    if (i === undefined) {
      i = sinks.push(sink) - 1;
      sinkIndex.set(sink, i);
    }
    return i.toString(36);
  };
  const done = [...content.done].map(canonical).sort(byValue);
  const acked = [...content.acknowledged].map(([s, by]) => ({ n: canonical(s), by: [...by].map(indexOf).join('.') })).sort((a, b) => byValue(a.n, b.n));
  const ackDeltas = deltas(acked.map((a) => a.n));
  const text = [JSON.stringify(sinks), deltas(done).join(','), acked.map((a, i) => `${ackDeltas[i]}:${a.by}`).join(',')].join('\n');
  return gzipSync(text, { level: 9 });
};

/** The inverse of {@link encodeProgress}. Throws on bytes it did not write. */
export const decodeProgress = (bytes: Uint8Array): { done: Set<string>; acknowledged: Map<string, Set<string>> } => {
  const [sinkLine, doneLine, ackLine, ...rest] = gunzipSync(bytes).toString('utf8').split('\n');
  if (sinkLine === undefined || doneLine === undefined || ackLine === undefined || rest.length > 0) throw new Error('Corrupt progress record: expected three lines');
  const sinks = JSON.parse(sinkLine) as unknown;
  if (!Array.isArray(sinks) || !sinks.every((s) => typeof s === 'string')) throw new Error('Corrupt progress record: the first line is not a list of sink names');
  const done = new Set<string>();
  let current = 0n;
  if (doneLine !== '') {
    for (const delta of doneLine.split(',')) {
      current += parseBase36(delta);
      done.add(current.toString());
    }
  }
  const acknowledged = new Map<string, Set<string>>();
  current = 0n;
  if (ackLine !== '') {
    for (const entry of ackLine.split(',')) {
      const [delta = '', by = ''] = entry.split(':');
      current += parseBase36(delta);
      acknowledged.set(
        current.toString(),
        new Set(
          (by === '' ? [] : by.split('.')).map((i) => {
            const sink = sinks[Number(parseBase36(i))] as string | undefined;
            if (sink === undefined) throw new Error(`Corrupt progress record: no sink at index \`${i}\``);
            return sink;
          }),
        ),
      );
    }
  }
  return { done, acknowledged };
};

const parseBase36 = (digits: string): bigint => {
  if (digits === '') throw new Error('Corrupt progress record: an empty number');
  let value = 0n;
  for (const d of digits) {
    const n = Number.parseInt(d, 36);
    if (Number.isNaN(n)) throw new Error(`Corrupt progress record: \`${digits}\` is not a base-36 number`);
    value = value * 36n + BigInt(n);
  }
  return value;
};
