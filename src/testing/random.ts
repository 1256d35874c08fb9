/**
 * A small seeded source of numbers in [0, 1) (mulberry32), for tests and simulations that must
 * replay exactly from their seed: pass it wherever `Math.random` would go.
 *
 * @example
 * const random = seededRandom(42);
 * await simulateRandomEventSourceMapping({ records, clock, random, startInstance });
 */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};
