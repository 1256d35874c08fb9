import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { App } from '../app.js';
import type { ChangeEvent, Item, RawStreamRecord } from '../events.js';

const keyString = (key: Item, names: readonly string[]): string => {
  let s = '';
  for (const name of names) {
    const v = key[name];
    // Tag strings apart from numbers and binaries so that "1" and 1 are different keys; numbers
    // print the same whether they arrive as number, bigint or NumberValue.
    const tag = typeof v === 'string' ? 's' : v instanceof Uint8Array ? 'b' : 'n';
    s += `${name}\u0001${tag}\u0001${String(v)}\u0002`;
  }
  return s;
};

/** The lane (ordering key) of a decoded event. May throw when the user's ordering function does. */
export const laneOf = (app: App, event: ChangeEvent): string => {
  if (app.ordering === 'item') return keyString(event.key, Object.keys(event.key).sort());
  if (app.ordering === 'partitionKey') return keyString(event.key, [app.partitionKey as string]);
  const lane = app.ordering(event);
  if (typeof lane !== 'string') throw new TypeError(`ordering function returned ${typeof lane}; it must return a string`);
  return lane;
};

/**
 * The lane of a record that failed to decode, from its raw key when that can be read, so its dead
 * letter keeps its place in the key's order. `undefined` when there is no usable key.
 */
export const laneOfRaw = (app: App, raw: unknown): string | undefined => {
  if (typeof app.ordering === 'function') return undefined;
  const keys = (raw as RawStreamRecord | undefined)?.dynamodb?.Keys;
  if (!keys || typeof keys !== 'object') return undefined;
  try {
    const key = unmarshall(keys as Parameters<typeof unmarshall>[0], { wrapNumbers: true }) as Item;
    const names = app.ordering === 'item' ? Object.keys(key).sort() : [app.partitionKey as string];
    if (names.some((n) => key[n] === undefined)) return undefined;
    return keyString(key, names);
  } catch {
    return undefined;
  }
};
