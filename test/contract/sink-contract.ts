import { describe, expect, it } from 'vitest';
import type { Sink } from '../../src/index.js';

/** What the contract suite needs to drive one sink implementation. */
export interface SinkHarness<E> {
  readonly sink: Sink<E>;
  /** `n` small events this sink accepts, each with a distinct `eventID` that reaches the destination. */
  makeEvents(n: number): E[];
  /** The `eventID`s the destination has received so far, in arrival order. */
  received(): Promise<string[]>;
  close?(): Promise<void>;
  /**
   * The destination replaces what a retry sends again instead of adding a copy (objects keyed by
   * stream position): the same events sent twice are then received once.
   */
  readonly overwritesOnRetry?: boolean;
}

const requestSize = (sink: Sink<unknown>) => Math.min(sink.limits.maxRecords, 25);

/**
 * The behaviour every {@link Sink} must have, whatever it talks to. Run it with a fresh harness per
 * test: `describeSinkContract('fileSink', async () => ({ sink, makeEvents, received }))`.
 */
export const describeSinkContract = <E>(label: string, setup: () => Promise<SinkHarness<E>>) => {
  const withHarness = (fn: (h: SinkHarness<E>) => Promise<void>) => async () => {
    const h = await setup();
    try {
      await fn(h);
    } finally {
      await h.close?.();
    }
  };

  describe(`Sink contract: ${label}`, () => {
    it(
      'declares a name and usable limits',
      withHarness(async ({ sink }) => {
        expect(typeof sink.name).toBe('string');
        expect(sink.name.length).toBeGreaterThan(0);
        expect(Number.isInteger(sink.limits.maxRecords) && sink.limits.maxRecords >= 1).toBe(true);
        expect(sink.limits.maxBytes).toBeGreaterThan(0);
        expect(typeof sink.preservesOrderWithinRequest).toBe('boolean');
      }),
    );

    it(
      'sizes small events within its byte limit',
      withHarness(async ({ sink, makeEvents }) => {
        for (const event of makeEvents(3)) {
          const size = sink.sizeOf ? sink.sizeOf(event) : Buffer.byteLength(JSON.stringify(event));
          expect(Number.isFinite(size) && size > 0).toBe(true);
          expect(size).toBeLessThanOrEqual(sink.limits.maxBytes);
        }
      }),
    );

    it(
      'delivers a full request once each and reports no failure',
      withHarness(async ({ sink, makeEvents, received }) => {
        // Prepare
        const events = makeEvents(requestSize(sink));

        // Act
        const { failed } = await sink.send(events, new AbortController().signal);

        // Assess
        expect(failed).toEqual([]);
        const ids = await received();
        expect([...ids].sort()).toEqual(events.map((e) => (e as { eventID: string }).eventID).sort());
      }),
    );

    it(
      'keeps the order of a request when it says it does',
      withHarness(async ({ sink, makeEvents, received }) => {
        // Prepare
        const events = makeEvents(requestSize(sink));

        // Act
        await sink.send(events, new AbortController().signal);

        // Assess
        if (sink.preservesOrderWithinRequest) expect(await received()).toEqual(events.map((e) => (e as { eventID: string }).eventID));
        else expect(await received()).toHaveLength(events.length);
      }),
    );

    it(
      'carries the same eventID when the same events are sent again (a retry)',
      withHarness(async ({ sink, makeEvents, received, overwritesOnRetry }) => {
        // Prepare
        const events = makeEvents(2);

        // Act
        await sink.send(events, new AbortController().signal);
        await sink.send(events, new AbortController().signal);

        // Assess: at least once, and the duplicates are recognisable downstream (or replaced).
        const ids = await received();
        for (const e of events) expect(ids.filter((id) => id === (e as { eventID: string }).eventID)).toHaveLength(overwritesOnRetry ? 1 : 2);
      }),
    );

    it(
      'sends nothing when its signal is already aborted',
      withHarness(async ({ sink, makeEvents, received }) => {
        // Prepare
        const abort = new AbortController();
        abort.abort(new Error('deadline'));

        // Act
        const result = await sink.send(makeEvents(2), abort.signal).then(
          (r) => r.failed.length,
          () => 'rejected' as const,
        );

        // Assess: rejected, or every entry reported failed; the destination got nothing.
        expect(result === 'rejected' || result === 2).toBe(true);
        expect(await received()).toEqual([]);
      }),
    );
  });
};
