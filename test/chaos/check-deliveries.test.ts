import { describe, expect, it } from 'vitest';
import { checkDeliveries, isClean } from './check-deliveries.js';
import type { Written } from './check-deliveries.js';

const d = (key: string, version: number) => ({ key, version });
/** Key `a`'s deliveries (or dead letters) from a string of versions: `'1 2 3 2'`. */
const of = (versions: string) => versions.split(' ').filter(Boolean).map((v) => d('a', Number(v)));

interface Case {
  readonly seq: string;
  /** Versions 1..n, or the versions written when some never were. */
  readonly written: number | readonly number[];
  readonly dead?: string;
  readonly why: string;
}

const run = ({ seq, written, dead }: Case) => checkDeliveries(of(seq), new Map([['a', written]]) as Written, of(dead ?? ''));

describe('checkDeliveries', () => {
  it.each<Case>([
    { seq: '1 2 3', written: 3, why: 'each change once, in order' },
    { seq: '1 2 3 2 3', written: 3, why: 'a replay from a checkpoint back up to where it had got' },
    { seq: '1 2 3 3', written: 3, why: 'the last request sent again (a restart at the same version)' },
    { seq: '1 2 3 1 2 3 4', written: 4, why: 'a replay from the start, then new changes' },
    { seq: '1 2 3 4 5 2 3 2 3 4 5', written: 5, why: 'a replay cut short by a second crash, then a full one' },
    { seq: '1 2 3 4 5 2 3 1 2 3 4 5', written: 5, why: 'a cut-short replay, then one from further back' },
    { seq: '1 2 3 2 3 4 5 4 5', written: 5, why: 'two replays' },
    { seq: '1 2 5 7', written: [1, 2, 5, 7], why: 'gaps of versions never written are no skip' },
    { seq: '1 2 5 2 5 7', written: [1, 2, 5, 7], why: 'a replay across a gap' },
    { seq: '1 3 4', written: 4, dead: '2', why: 'a dead-lettered version is passed over' },
    { seq: '1 3 1 2 3 4', written: 4, dead: '2', why: 'a version dead-lettered once and delivered by the replay' },
    { seq: '1 2', written: 3, dead: '3', why: 'the last change was dead-lettered' },
    { seq: '', written: 2, dead: '1 2', why: 'every change dead-lettered' },
  ])('passes [$seq] with $written written, dead-lettered [$dead]: $why', (c) => {
    // Act
    const result = run(c);

    // Assess
    expect(result).toMatchObject({ lost: 0, orderViolations: 0, unfinishedReplays: 0, staleLast: 0, unexpected: 0 });
    expect(isClean(result)).toBe(true);
  });

  it.each<Case & { readonly expected: Record<string, number> }>([
    { seq: '1 2 3 2', written: 3, why: 'a stale change after a newer one, and nothing newer after it', expected: { unfinishedReplays: 1, staleLast: 1 } },
    { seq: '1 3 2 3', written: 3, why: 'version 3 before version 2 was ever delivered', expected: { orderViolations: 1 } },
    { seq: '1 2 3 1 3', written: 3, why: 'a replay that skips version 2', expected: { orderViolations: 1 } },
    { seq: '1 2 3 2 4', written: 4, why: 'a replay that skips version 3', expected: { orderViolations: 1 } },
    { seq: '1 3 2 4', written: 4, why: 'a stale change, then a replay that skips 3', expected: { orderViolations: 2 } },
    { seq: '2 1 2', written: 2, why: 'the first delivery skips version 1', expected: { orderViolations: 1 } },
    { seq: '1 2', written: 3, why: 'the last delivery is not the last change', expected: { lost: 1, staleLast: 1 } },
    { seq: '1 2 3 2 3', written: 4, why: 'a complete replay that still ends before the last change', expected: { lost: 1, staleLast: 1, unfinishedReplays: 0 } },
    { seq: '1 2 3 4 5 2 3 1 2 3 4', written: 5, why: 'nested replays that never get back to 5', expected: { unfinishedReplays: 1, staleLast: 1 } },
    { seq: '1 5 7', written: [1, 2, 5, 7], why: 'a skip of a written version across a gap', expected: { lost: 1, orderViolations: 1 } },
    { seq: '1 3 4', written: 4, why: 'a skip of a version that was not dead-lettered', expected: { lost: 1, orderViolations: 1 } },
    { seq: '1 2 3 4', written: 3, why: 'a version that was never written', expected: { unexpected: 1 } },
    { seq: '', written: 2, dead: '1', why: 'a key whose last change never arrived', expected: { lost: 1, staleLast: 1 } },
  ])('fails [$seq] with $written written, dead-lettered [$dead]: $why', ({ expected, ...c }) => {
    // Act
    const result = run(c);

    // Assess
    expect(result).toMatchObject(expected);
    expect(isClean(result)).toBe(false);
  });

  it('checks each key on its own, whatever the interleaving of keys', () => {
    // Act: b's replay `2 3` is interleaved with a's new changes.
    const result = checkDeliveries(
      [d('a', 1), d('b', 1), d('a', 2), d('b', 2), d('b', 3), d('a', 3), d('b', 2), d('a', 4), d('b', 3)],
      new Map([['a', 4], ['b', 3]]),
    );

    // Assess
    expect(result).toEqual({ changes: 7, delivered: 7, deadLettered: 0, lost: 0, orderViolations: 0, unfinishedReplays: 0, staleLast: 0, duplicates: 2, unexpected: 0 });
  });

  it('counts changes never delivered as lost, keys never delivered as stale, and unknown keys as unexpected', () => {
    // Act: key a's version 2 and key b entirely are missing; key c was never written.
    const result = checkDeliveries([d('a', 1), d('a', 3), d('c', 1)], new Map([['a', 3], ['b', 2]]));

    // Assess
    expect(result).toMatchObject({ changes: 5, delivered: 2, lost: 3, staleLast: 1, orderViolations: 1, unexpected: 1 });
  });
});
