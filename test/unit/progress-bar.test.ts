import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressBar } from '../../src/cli/progress.js';

const capture = () => {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  return { stream, text: () => chunks.join('') };
};

describe('ProgressBar', () => {
  it('on a terminal redraws one line in place, with the rate and ETA after the count', () => {
    const { stream, text } = capture();
    const bar = new ProgressBar(stream, 'backfill TaskApp', 100, true);
    bar.update(25, undefined, '500 items/s, ETA 0s');
    bar.update(50, 100, '510 items/s, ETA 0s');
    bar.finish();
    expect(text()).toBe(
      `\rbackfill TaskApp [${'#'.repeat(8)}${'.'.repeat(22)}] 25/100 (500 items/s, ETA 0s)\u001b[K` +
        `\rbackfill TaskApp [${'#'.repeat(15)}${'.'.repeat(15)}] 50/100 (510 items/s, ETA 0s)\u001b[K` +
        `\rbackfill TaskApp [${'#'.repeat(15)}${'.'.repeat(15)}] 50/100 (510 items/s, ETA 0s)\u001b[K\n`,
    );
  });

  it('elsewhere writes plain lines, at most one a second, and the last', () => {
    const { stream, text } = capture();
    const bar = new ProgressBar(stream, 'backfill TaskApp', 10, false);
    bar.update(1, undefined, 'a');
    bar.update(2, undefined, 'b'); // within the second: not written
    bar.finish();
    expect(text()).not.toContain('\r');
    expect(text().trim().split('\n')).toEqual([`backfill TaskApp [###${'.'.repeat(27)}] 1/10 (a)`, `backfill TaskApp [######${'.'.repeat(24)}] 2/10 (b)`]);
  });
});
