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
