import { describe, expect, it } from 'vitest';
import type { RecordStatus } from '../../src/core/engine.js';
import { Lane } from '../../src/core/lane.js';
import type { LaneHost } from '../../src/core/lane.js';

type Settle = (status: RecordStatus) => void;

/** A host whose records settle as `script(index, settle)` decides; no runs. */
const host = (size: number, script: (index: number, settle: Settle) => void, extra: Partial<LaneHost<never>> = {}) => {
  const errors: unknown[] = [];
  const log: string[] = [];
  const h: LaneHost<never> & { errors: unknown[]; log: string[] } = {
    statuses: new Array<RecordStatus>(size).fill('unfinished'),
    alreadyDone: () => false,
    stopping: false,
    collectRun: () => undefined,
    deliverRun: () => {},
    handle: script,
    laneWaits: () => log.push('waits'),
    laneResumes: () => log.push('resumes'),
    laneEnded: () => log.push('ended'),
    internalError: (error) => errors.push(error),
    errors,
    log,
    ...extra,
  };
  return h;
};

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('Lane', () => {
  it('takes records that settle at once in a loop, without growing the stack', async () => {
    // Prepare: 100,000 unrouted records.
    const h = host(100_000, (_, settle) => settle('unrouted'));
    const lane = new Lane(h, range(100_000));

    // Act
    await lane.start();

    // Assess
    expect(lane.state).toBe('done');
    expect(h.statuses.every((s) => s === 'unrouted')).toBe(true);
    expect(h.log).toEqual(['ended']);
  });

  it('waits for a record that settles later, then goes on', async () => {
    // Prepare
    const pending: Settle[] = [];
    const h = host(2, (_, settle) => pending.push(settle));
    const lane = new Lane(h, [0, 1]);

    // Act / Assess
    const ended = lane.start();
    expect(lane.state).toBe('waiting');
    pending[0]?.('delivered');
    expect(lane.state).toBe('waiting');
    pending[1]?.('dead-lettered');
    await ended;
    expect(lane.state).toBe('done');
    expect(h.statuses).toEqual(['delivered', 'dead-lettered']);
    expect(h.log).toEqual(['waits', 'resumes', 'waits', 'resumes', 'ended']);
  });

  it('blocks the rest of the lane at a blocked record', async () => {
    const h = host(4, (index, settle) => settle(index === 1 ? 'blocked' : 'delivered'));
    const lane = new Lane(h, range(4));
    await lane.start();
    expect(lane.state).toBe('blocked');
    expect(h.statuses).toEqual(['delivered', 'blocked', 'blocked', 'blocked']);
  });

  it('stops at an unfinished record or once the host is stopping, leaving the rest unfinished', async () => {
    const h = host(3, (index, settle) => settle(index === 0 ? 'delivered' : 'unfinished'));
    const lane = new Lane(h, range(3));
    await lane.start();
    expect(lane.state).toBe('stopped');
    expect(h.statuses).toEqual(['delivered', 'unfinished', 'unfinished']);

    const stopping = host(2, () => {
      throw new Error('never started');
    }, { stopping: true });
    const idle = new Lane(stopping, range(2));
    await idle.start();
    expect(idle.state).toBe('stopped');
    expect(stopping.errors).toEqual([]);
  });

  it('skips records done in an earlier delivery', async () => {
    const h = host(3, (_, settle) => settle('delivered'), { alreadyDone: (i) => i === 1 });
    await new Lane(h, range(3)).start();
    expect(h.statuses).toEqual(['delivered', 'skipped', 'delivered']);
  });

  it('ends blocked when a step throws, and ignores late and repeated callbacks', async () => {
    // Prepare: record 0 settles later, twice; record 1 throws when started.
    let first: Settle | undefined;
    const h = host(3, (index, settle) => {
      if (index === 0) first = settle;
      else throw new Error('broken collaborator');
    });
    const lane = new Lane(h, range(3));

    // Act
    const ended = lane.start();
    first?.('delivered');
    await ended;
    first?.('delivered');

    // Assess
    expect(lane.state).toBe('blocked');
    expect(h.statuses).toEqual(['delivered', 'blocked', 'blocked']);
    expect(h.errors).toHaveLength(1);
  });
});
