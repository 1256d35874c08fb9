import { describe, expect, it } from 'vitest';
import { defineApp, Engine, route } from '../../src/index.js';
import type { Sink } from '../../src/index.js';
import { FakeClock, silentLogger, streamRecords } from '../../src/testing/index.js';

/** A sink that answers at once (a resolved promise) and records the size of every request. */
class InstantSink implements Sink {
  readonly name = 'instant';
  readonly limits = { maxRecords: 100, maxBytes: Infinity };
  readonly preservesOrderWithinRequest = false;
  readonly sizes: number[] = [];
  async send(events: readonly unknown[]) {
    this.sizes.push(events.length);
    return { failed: [] };
  }
}

const batch = (n: number, keys: number) => {
  const records = streamRecords();
  return Array.from({ length: n }, (_, i) => records.modify({ PK: `K#${i % keys}`, SK: 'A', V: i }, { PK: `K#${i % keys}`, SK: 'A', V: i + 1 }));
};

describe('Engine scheduling', () => {
  it('sends a request at once when every lane waits on it, with every lane that became ready in it', async () => {
    const sink = new InstantSink();
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: silentLogger, clock: new FakeClock() });
    const outcome = await engine.process(batch(1000, 10));
    expect(outcome.counts.delivered).toBe(1000);
    // 10 lanes, one record each per round: every request carries all ten, never fewer.
    expect(sink.sizes).toEqual(new Array(100).fill(10));
  });

  it('lets the event loop turn during a long batch to a sink that answers at once (timers are not starved)', async () => {
    const sink = new InstantSink();
    const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: silentLogger, clock: new FakeClock() });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const done = engine.process(batch(3000, 3));
    let finishedAt = -1;
    await done.then(() => (finishedAt = ticks));
    clearInterval(timer);
    // 1,000 rounds of 3 records, at most 32 rounds a turn: the timer ran while the batch was going.
    expect(finishedAt).toBeGreaterThan(0);
    expect(sink.sizes.reduce((a, b) => a + b, 0)).toBe(3000);
  });
});
