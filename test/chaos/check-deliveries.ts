/**
 * The chaos run's checker. Its input is what the destination holds, in the order it accepted it:
 * the lines of one NDJSON file that every worker process appends to (one write(2) per request on
 * a file opened for appending, so the file's line order is the order the writes happened).
 *
 * - lost: a written change, (key, version) with 1 <= version <= the key's last version, that
 *   never appears.
 * - orderViolations: per key, versions whose FIRST delivery comes after the first delivery of a
 *   higher version of the same key. A re-delivery of an older version after a crash (at least
 *   once) is a duplicate, not a violation.
 * - duplicates: deliveries beyond the first of each (key, version).
 * - unexpected: deliveries of a (key, version) that was never written (should be 0).
 */
export interface DeliveryCheck {
  readonly changes: number;
  /** Distinct (key, version) delivered that were written. */
  readonly delivered: number;
  readonly lost: number;
  readonly orderViolations: number;
  readonly duplicates: number;
  readonly unexpected: number;
}

/** What the checker needs of a delivered line. */
export interface CheckedDelivery {
  readonly key: string;
  readonly version: number | undefined;
}

/** Takes deliveries in destination order, as they are read; `check()` any time. */
export class DeliveryChecker {
  readonly #firsts = new Map<string, Set<number>>();
  /** Per key, the highest version first-delivered so far. */
  readonly #highest = new Map<string, number>();
  #deliveries = 0;
  #orderViolations = 0;
  #distinct = 0;

  add(delivery: CheckedDelivery): void {
    this.#deliveries++;
    const version = delivery.version ?? Number.NaN;
    let firsts = this.#firsts.get(delivery.key);
    if (!firsts) this.#firsts.set(delivery.key, (firsts = new Set()));
    if (firsts.has(version)) return;
    firsts.add(version);
    this.#distinct++;
    const highest = this.#highest.get(delivery.key);
    if (highest !== undefined && version < highest) this.#orderViolations++;
    if (highest === undefined || version > highest) this.#highest.set(delivery.key, version);
  }

  /** Distinct (key, version) seen, written or not: cheap, for "is everything there yet". */
  get distinct(): number {
    return this.#distinct;
  }

  /** `written`: each key's last version; versions 1..last were written. */
  check(written: ReadonlyMap<string, number>): DeliveryCheck {
    let changes = 0;
    let delivered = 0;
    for (const [key, last] of written) {
      changes += last;
      const firsts = this.#firsts.get(key);
      if (!firsts) continue;
      for (const v of firsts) if (Number.isInteger(v) && v >= 1 && v <= last) delivered++;
    }
    return {
      changes,
      delivered,
      lost: changes - delivered,
      orderViolations: this.#orderViolations,
      duplicates: this.#deliveries - this.#distinct,
      unexpected: this.#distinct - delivered,
    };
  }
}

/** Checks a whole list of deliveries at once. */
export const checkDeliveries = (deliveries: Iterable<CheckedDelivery>, written: ReadonlyMap<string, number>): DeliveryCheck => {
  const checker = new DeliveryChecker();
  for (const d of deliveries) checker.add(d);
  return checker.check(written);
};
