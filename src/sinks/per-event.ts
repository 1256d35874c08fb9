import type { SinkFailure } from '../ports.js';

/**
 * Memoises `build` per event object, so a sink serialises an event once although the engine asks
 * for its size (`sizeOf`) before it is sent. Primitives are built every time.
 */
export const perEvent = <E, P>(build: (event: E) => P): ((event: E) => P) => {
  const cache = new WeakMap<object, P>();
  return (event) => {
    if (event === null || typeof event !== 'object') return build(event);
    let built = cache.get(event);
    if (built === undefined) {
      built = build(event);
      cache.set(event, built);
    }
    return built;
  };
};

/**
 * Prepares every event of a request with `prepare`; an event that cannot be prepared fails alone
 * (its index and error go to `failed`) and the others go on to `each`.
 */
export const prepareEach = <E, P>(events: readonly E[], prepare: (event: E) => P, failed: SinkFailure[], each: (prepared: P, index: number, event: E) => void): void => {
  events.forEach((event, index) => {
    let prepared: P;
    try {
      prepared = prepare(event);
    } catch (error) {
      failed.push({ index, error });
      return;
    }
    each(prepared, index, event);
  });
};
