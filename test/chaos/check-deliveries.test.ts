import { describe, expect, it } from 'vitest';
import { checkDeliveries } from './check-deliveries.js';

const d = (key: string, version: number) => ({ key, version });

describe('checkDeliveries', () => {
  it('passes every change delivered once, in order per key, whatever the interleaving of keys', () => {
    // Act
    const result = checkDeliveries([d('a', 1), d('b', 1), d('a', 2), d('b', 2), d('a', 3)], new Map([['a', 3], ['b', 2]]));

    // Assess
    expect(result).toEqual({ changes: 5, delivered: 5, lost: 0, orderViolations: 0, duplicates: 0, unexpected: 0 });
  });

  it('counts a re-delivery of older versions after a crash as duplicates, not order violations', () => {
    // Act: versions 2 and 3 are delivered again after 3 (a restart from an older checkpoint).
    const result = checkDeliveries([d('a', 1), d('a', 2), d('a', 3), d('a', 2), d('a', 3), d('a', 4)], new Map([['a', 4]]));

    // Assess
    expect(result).toMatchObject({ lost: 0, orderViolations: 0, duplicates: 2 });
  });

  it('counts a version first delivered after a higher one as an order violation', () => {
    // Act
    const result = checkDeliveries([d('a', 1), d('a', 3), d('a', 2), d('a', 4)], new Map([['a', 4]]));

    // Assess
    expect(result).toMatchObject({ lost: 0, orderViolations: 1, duplicates: 0 });
  });

  it('counts changes never delivered as lost, and versions never written as unexpected', () => {
    // Act: key a's version 2 and key b entirely are missing; version 9 was never written.
    const result = checkDeliveries([d('a', 1), d('a', 3), d('a', 9)], new Map([['a', 3], ['b', 2]]));

    // Assess
    expect(result).toMatchObject({ changes: 5, delivered: 2, lost: 3, unexpected: 1 });
  });
});
