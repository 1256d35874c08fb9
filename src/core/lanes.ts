import type { App } from '../app.js';
import type { AttributeValue, ChangeEvent, RawStreamRecord } from '../events.js';

// A table's key attributes have fixed names and types, so the raw values alone tell keys apart.
const scalar = (v: AttributeValue | undefined): string | undefined => {
  if (!v) return undefined;
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return v.N;
  if (v.B !== undefined) return typeof v.B === 'string' ? v.B : Buffer.from(v.B).toString('base64');
  return undefined;
};

/**
 * The lane (ordering key) of a raw record, read from its `Keys` without decoding the images, so a
 * batch can be split into lanes before any record is decoded. `undefined` when the key is unusable
 * (the record then gets a lane of its own and fails to decode in it).
 */
export const laneOfRaw = (app: App, raw: unknown): string | undefined => {
  const keys = (raw as RawStreamRecord | null | undefined)?.dynamodb?.Keys;
  if (!keys || typeof keys !== 'object') return undefined;
  // A partition key missing from the record's key is a misconfiguration (the engine logs it):
  // fall back to the whole item, which still keeps each item's order.
  if (app.ordering === 'partitionKey' && keys[app.partitionKey as string] !== undefined) return scalar(keys[app.partitionKey as string]);
  // One or two key attributes (every DynamoDB table) without allocating their names: this runs
  // for every record of a batch before anything else.
  let first: string | undefined;
  let second: string | undefined;
  let more = false;
  for (const name in keys) {
    if (first === undefined) first = name;
    else if (second === undefined) second = name;
    else {
      more = true;
      break;
    }
  }
  if (first === undefined) return undefined;
  if (second === undefined) return scalar(keys[first]);
  if (!more) {
    const a = scalar(keys[first < second ? first : second]);
    const b = scalar(keys[first < second ? second : first]);
    // The length prefix keeps "a"+"bc" apart from "ab"+"c", whatever characters the values hold.
    return a === undefined || b === undefined ? undefined : `${a.length}:${a}${b.length}:${b}`;
  }
  const names = Object.keys(keys);
  if (names.length === 0) return undefined;
  names.sort();
  let lane: string | undefined = '';
  for (const name of names) {
    const value = scalar(keys[name]);
    if (value === undefined) return undefined;
    // The length prefix keeps "a"+"bc" apart from "ab"+"c", whatever characters the values hold.
    lane += `${value.length}:${value}`;
  }
  return lane;
};

/** True when `ordering: 'partitionKey'` names an attribute this record's key does not have. */
export const lacksPartitionKey = (app: App, raw: unknown): boolean => {
  if (app.ordering !== 'partitionKey') return false;
  const keys = (raw as RawStreamRecord | null | undefined)?.dynamodb?.Keys;
  return !!keys && typeof keys === 'object' && keys[app.partitionKey as string] === undefined && Object.keys(keys).length > 0;
};

/** The lane of a decoded event under a user's ordering function. Throws when the function does. */
export const laneOfEvent = (ordering: (event: ChangeEvent) => string, event: ChangeEvent): string => {
  const lane = ordering(event);
  if (typeof lane !== 'string') throw new TypeError(`ordering function returned ${typeof lane}; it must return a string`);
  return lane;
};
