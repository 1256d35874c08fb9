import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/testing/index.js';
import { fairShare, HeartbeatObserver, planRound } from '../../src/worker/balancer.js';
import type { Lease } from '../../src/worker/ports.js';

const lease = (shardId: string, owner?: string, counter = 1): Lease => ({ streamArn: 'arn', shardId, owner, counter, checkpoint: 'TRIM_HORIZON', parents: [], doneAbove: [] });

describe('fairShare', () => {
  it('splits the open leases evenly, the first ids (sorted) taking the remainder, the same on every worker', () => {
    // Act
    const shares = ['c', 'a', 'b'].map((id) => [id, fairShare(id, ['c', 'a', 'b'], 1024)]);

    // Assess: 341 each and one more for `a`; the shares add up.
    expect(shares).toEqual([['c', 341], ['a', 342], ['b', 341]]);
    expect(fairShare('x', ['a', 'b'], 10)).toBe(0);
  });
});

describe('planRound', () => {
  it('takes leases that are free or whose owner is no longer registered, never a registered peer\'s', () => {
    // Prepare: four open leases; `gone` expired (no longer registered), `peer` is registered.
    const open = [lease('s1', 'gone'), lease('s2'), lease('s3', 'peer'), lease('s4')];

    // Act
    const plan = planRound({ workerId: 'me', open, members: new Set(['me', 'peer']), held: new Set() });

    // Assess: a share of two; s1, s2 and s4 are candidates, s3 is not.
    expect(plan.target).toBe(2);
    expect(plan.handBack).toBe(0);
    expect(plan.take.map((l) => l.shardId).sort()).toEqual(['s1', 's2', 's4']);
  });

  it('hands leases back above its share instead of peers taking them', () => {
    // Act: me holds three of four leases; a peer joined.
    const plan = planRound({ workerId: 'me', open: [lease('s1', 'me'), lease('s2', 'me'), lease('s3', 'me'), lease('s4')], members: new Set(['me', 'peer']), held: new Set(['s1', 's2', 's3']) });

    // Assess
    expect(plan).toMatchObject({ target: 2, handBack: 1, take: [] });
  });

  it('tries free leases in an order of its own, so that peers seldom race for the same one', () => {
    // Prepare
    const open = Array.from({ length: 50 }, (_, i) => lease(`s${i}`));
    const members = new Set(['a', 'b']);

    // Act
    const a = planRound({ workerId: 'a', open, members, held: new Set() }).take.map((l) => l.shardId);
    const b = planRound({ workerId: 'b', open, members, held: new Set() }).take.map((l) => l.shardId);

    // Assess: the same leases, in different orders.
    expect([...a].sort()).toEqual([...b].sort());
    expect(a.slice(0, 5)).not.toEqual(b.slice(0, 5));
  });

  it('takes nothing before this worker is registered', () => {
    expect(planRound({ workerId: 'me', open: [lease('s1')], members: new Set(['peer']), held: new Set() })).toEqual({ target: 0, take: [], handBack: 0 });
  });
});

describe('HeartbeatObserver', () => {
  it('judges a peer expired on its own clock, a lease duration after it first saw the heartbeat token', () => {
    // Prepare
    const clock = new FakeClock();
    const observer = new HeartbeatObserver(clock, 1000);
    observer.observe({ beats: new Map([['peer', 't1']]), version: 1 });

    // Act / Assess: unchanged for 999 ms: live; the token moves: the wait starts again.
    clock.advance(999);
    observer.observe({ beats: new Map([['peer', 't1']]), version: 1 });
    expect(observer.expired('peer', 't1')).toBe(false);
    observer.observe({ beats: new Map([['peer', 't2']]), version: 1 });
    clock.advance(999);
    expect(observer.expired('peer', 't2')).toBe(false);
    clock.advance(1);
    expect(observer.expired('peer', 't2')).toBe(true);
    // A token it never saw counts from now.
    expect(observer.expired('peer', 't3')).toBe(false);
  });
});
