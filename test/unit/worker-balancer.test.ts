import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/testing/index.js';
import { LeaseObserver, planTakes } from '../../src/worker/balancer.js';
import type { Lease } from '../../src/worker/ports.js';

const lease = (shardId: string, owner?: string, counter = 1): Lease => ({ streamArn: 'arn', shardId, owner, counter, checkpoint: 'TRIM_HORIZON', parents: [], doneAbove: [] });
const never = () => false;

describe('planTakes', () => {
  it('takes free leases before expired ones, up to an even share', () => {
    // Prepare: four open leases, one held by a live peer.
    const open = [lease('s1', 'dead'), lease('s2'), lease('s3', 'peer'), lease('s4')];

    // Act
    const plan = planTakes({ workerId: 'me', open, held: new Set(), expired: (l) => l.owner === 'dead' });

    // Assess: two live owners (me, peer): a share of two; free s2 and s4 first, then the expired s1.
    expect(plan.target).toBe(2);
    expect(plan.candidates.map((c) => [c.lease.shardId, c.why])).toEqual([
      ['s2', 'free'],
      ['s4', 'free'],
      ['s1', 'expired'],
    ]);
  });

  it("takes one lease from the busiest peer above its share, and only when nothing is free", () => {
    // Prepare
    const open = [lease('s1', 'peer'), lease('s2', 'peer'), lease('s3', 'peer'), lease('s4', 'other')];

    // Act
    const plan = planTakes({ workerId: 'me', open, held: new Set(), expired: never });

    // Assess
    expect(plan.target).toBe(2);
    expect(plan.candidates.map((c) => [c.lease.shardId, c.why])).toEqual([['s1', 'balance']]);
  });

  it('takes nothing from peers once this worker holds its share', () => {
    const open = [lease('s1', 'peer'), lease('s2', 'peer'), lease('s3', 'me')];
    expect(planTakes({ workerId: 'me', open, held: new Set(['s3']), expired: never }).candidates).toEqual([]);
  });

  it("treats this worker's own lease that it does not hold (an earlier incarnation's) like any other: taken once expired", () => {
    const open = [lease('s1', 'me')];
    expect(planTakes({ workerId: 'me', open, held: new Set(), expired: never }).candidates).toEqual([]);
    expect(planTakes({ workerId: 'me', open, held: new Set(), expired: () => true }).candidates.map((c) => c.why)).toEqual(['expired']);
  });
});

describe('LeaseObserver', () => {
  it('judges expiry on its own clock, a lease duration after it first saw the counter', () => {
    // Prepare
    const clock = new FakeClock();
    const observer = new LeaseObserver(clock, 1000);
    observer.observe([lease('s1', 'peer', 5)]);

    // Act: the counter stays; then it moves.
    clock.advance(999);
    const before = observer.expired(lease('s1', 'peer', 5));
    clock.advance(1);
    const at = observer.expired(lease('s1', 'peer', 5));
    observer.observe([lease('s1', 'peer', 6)]);

    // Assess
    expect([before, at]).toEqual([false, true]);
    expect(observer.expired(lease('s1', 'peer', 6))).toBe(false);
    expect(observer.quietAt(lease('s1', 'peer', 6))).toBe(clock.now() + 1000);
  });
});
