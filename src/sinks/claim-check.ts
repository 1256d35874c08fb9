import type { ChangeEvent } from '../events.js';
import type { ClaimCheckPointer } from '../ports.js';

/**
 * What a sink sends in place of an event too large for it: where the full event is, and enough of
 * the event to route and deduplicate on without fetching it.
 */
export interface ClaimCheckEnvelope {
  readonly claimCheck: ClaimCheckPointer;
  readonly eventID: string | undefined;
  readonly kind: string | undefined;
  readonly entity: string | undefined;
  readonly key: unknown;
  readonly sequenceNumber: string | undefined;
}

/** The pointer message for an event stored in a claim-check store. */
export const claimCheckEnvelope = (event: unknown, pointer: ClaimCheckPointer): ClaimCheckEnvelope => {
  const e = (event ?? {}) as Partial<ChangeEvent>;
  return {
    claimCheck: pointer,
    eventID: e.eventID,
    kind: e.kind,
    entity: e.entity,
    key: e.key,
    sequenceNumber: e.meta?.sequenceNumber,
  };
};
