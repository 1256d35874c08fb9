/**
 * The chaos run's checker. Its input is what the destination holds, in the order it accepted it:
 * the lines of one NDJSON file that every worker process appends to (one write(2) per request on
 * a file opened for appending, so the file's line order is the order the writes happened).
 *
 * Per key (item), let W be the versions written that the destination's routes match, in stream
 * order (ascending; a key may have gaps: versions never written, or routed elsewhere), X ⊆ W the
 * versions dead-lettered (handed to the DLQ on some attempt: a replay may still deliver them),
 * and R = W \ X the versions the destination must get. Let d1 … dm be the key's deliveries of
 * written versions, in destination order (deliveries of versions never written are `unexpected`
 * and take no part in what follows).
 *
 * **Contiguous replay.** Each delivery after the first is one of:
 * - a step forward: d(i+1) > d(i) and no version of R lies strictly between them (the next
 *   version written, passing over dead-lettered ones only);
 * - a restart: d(i+1) <= d(i) (a new owner re-delivering from its checkpoint, or a request sent
 *   again), which opens a replay that owes the key a delivery >= max(d1 … di), the high-water
 *   mark, before the key's deliveries end.
 * Anything else (a step up that passes over a version of R) is an order violation, and so is a
 * first delivery d1 with a version of R below it. A replay climbs back by steps forward only, so
 * `1 2 3 2 3` passes and `1 3 2 3` (3 before 2 was ever delivered) and `1 2 3 1 3` (a replay that
 * skips 2) fail. A replay may itself be cut short by another restart (a second crash before the
 * new owner checkpointed: `1 2 3 4 5 2 3 2 3 4 5` passes); every replay is paid back exactly
 * when the key's last delivery is its highest, so the key's deliveries must end at their
 * high-water mark: `1 2 3 2` fails.
 *
 * **Last delivery is the last change.** No version of R is above the key's last delivery (and a
 * key with versions in R has at least one delivery), so a projection built from the deliveries
 * ends at the source's state.
 *
 * Counts:
 * - lost: versions of R never delivered.
 * - orderViolations: deliveries that are neither a step forward nor a restart (as above).
 * - unfinishedReplays: keys whose last delivery is below their highest (a replay never paid back).
 * - staleLast: keys whose last delivery is not their last change (as above).
 * - duplicates: deliveries beyond the first of each (key, version): re-deliveries, at least once.
 * - unexpected: distinct (key, version) delivered that were never written (should be 0).
 */
export interface DeliveryCheck {
  readonly changes: number;
  /** Distinct (key, version) delivered that were written. */
  readonly delivered: number;
  /** Distinct (key, version) written and dead-lettered (on some attempt). */
  readonly deadLettered: number;
  readonly lost: number;
  readonly orderViolations: number;
  readonly unfinishedReplays: number;
  readonly staleLast: number;
  readonly duplicates: number;
  readonly unexpected: number;
}

/** What the checker needs of a delivered line (or a dead letter). */
export interface CheckedDelivery {
  readonly key: string;
  readonly version: number | undefined;
}

/**
 * Per key, what was written: `n` for versions 1..n, or the versions in stream order (ascending)
 * when some were never written.
 */
export type Written = ReadonlyMap<string, number | readonly number[]>;

/** True when nothing was lost, out of order, stale at the end or never written. */
export const isClean = (check: DeliveryCheck): boolean =>
  check.lost === 0 && check.orderViolations === 0 && check.unfinishedReplays === 0 && check.staleLast === 0 && check.unexpected === 0;

const versionsOf = (written: number | readonly number[]): readonly number[] =>
  typeof written === 'number' ? Array.from({ length: written }, (_, i) => i + 1) : written;

/** Takes deliveries in destination order, as they are read; `check()` any time. */
export class DeliveryChecker {
  /** Per key, every delivered version in destination order. */
  readonly #sequences = new Map<string, number[]>();
  readonly #firsts = new Map<string, Set<number>>();
  #deliveries = 0;
  #distinct = 0;

  add(delivery: CheckedDelivery): void {
    this.#deliveries++;
    const version = delivery.version ?? Number.NaN;
    let sequence = this.#sequences.get(delivery.key);
    if (!sequence) this.#sequences.set(delivery.key, (sequence = []));
    sequence.push(version);
    let firsts = this.#firsts.get(delivery.key);
    if (!firsts) this.#firsts.set(delivery.key, (firsts = new Set()));
    if (firsts.has(version)) return;
    firsts.add(version);
    this.#distinct++;
  }

  /** Distinct (key, version) seen, written or not: cheap, for "is everything there yet". */
  get distinct(): number {
    return this.#distinct;
  }

  check(written: Written, deadLetters: Iterable<CheckedDelivery> = []): DeliveryCheck {
    const dead = new Map<string, Set<number>>();
    for (const { key, version } of deadLetters) {
      if (version === undefined) continue;
      let set = dead.get(key);
      if (!set) dead.set(key, (set = new Set()));
      set.add(version);
    }
    const result = { changes: 0, delivered: 0, deadLettered: 0, lost: 0, orderViolations: 0, unfinishedReplays: 0, staleLast: 0 };
    for (const [key, writtenVersions] of written) {
      const all = versionsOf(writtenVersions);
      const deadHere = dead.get(key) ?? new Set<number>();
      const isWritten = new Set(all);
      const required = all.filter((v) => !deadHere.has(v));
      const firsts = this.#firsts.get(key) ?? new Set<number>();
      result.changes += all.length;
      result.deadLettered += all.filter((v) => deadHere.has(v)).length;
      result.delivered += all.filter((v) => firsts.has(v)).length;
      result.lost += required.filter((v) => !firsts.has(v)).length;
      const sequence = (this.#sequences.get(key) ?? []).filter((v) => isWritten.has(v));
      const order = keyOrder(required, sequence);
      result.orderViolations += order.orderViolations;
      if (order.unfinished) result.unfinishedReplays++;
      if (order.staleLast) result.staleLast++;
    }
    return { ...result, duplicates: this.#deliveries - this.#distinct, unexpected: this.#distinct - result.delivered };
  }
}

/** Index of the first element of the ascending `sorted` that is > `v`. */
const firstAbove = (sorted: readonly number[], v: number): number => {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) > v) hi = mid;
    else lo = mid + 1;
  }
  return lo;
};

/** One key's rules (see the file's comment): `required` ascending, `sequence` written versions only. */
const keyOrder = (required: readonly number[], sequence: readonly number[]) => {
  let orderViolations = 0;
  let previous = Number.NEGATIVE_INFINITY;
  let highest = Number.NEGATIVE_INFINITY;
  for (const v of sequence) {
    // A step forward passes over no required version: the first required one above `previous` is >= v.
    if (v > previous) {
      const next = required[firstAbove(required, previous)];
      if (next !== undefined && next < v) orderViolations++;
    }
    previous = v;
    highest = Math.max(highest, v);
  }
  const lastRequired = required.at(-1);
  return {
    orderViolations,
    unfinished: sequence.length > 0 && previous < highest,
    staleLast: lastRequired !== undefined && (sequence.length === 0 || previous < lastRequired),
  };
};

/** Checks a whole list of deliveries at once. */
export const checkDeliveries = (deliveries: Iterable<CheckedDelivery>, written: Written, deadLetters?: Iterable<CheckedDelivery>): DeliveryCheck => {
  const checker = new DeliveryChecker();
  for (const d of deliveries) checker.add(d);
  return checker.check(written, deadLetters);
};
