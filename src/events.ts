import { convertToNative, NumberValueImpl } from '@aws-sdk/util-dynamodb';
import type { NumberValue } from '@aws-sdk/util-dynamodb';
import { MalformedRecordError } from './errors.js';

/** A DynamoDB attribute value in the wire format of stream records (one member set). */
export interface AttributeValue {
  S?: string;
  N?: string;
  B?: Uint8Array | string;
  SS?: string[];
  NS?: string[];
  BS?: (Uint8Array | string)[];
  M?: Record<string, AttributeValue>;
  L?: AttributeValue[];
  NULL?: boolean;
  BOOL?: boolean;
}

/** An item as stored: attribute names to unmarshalled values. */
export type Item = Record<string, unknown>;

/**
 * The kind of change, from the record's `eventName`; `'backfill'` for an item read by a backfill's
 * Scan (its current state, not a change: see docs/backfill.md).
 */
export type ChangeKind = 'insert' | 'modify' | 'remove' | 'backfill';

/** Where a record sits in its stream; enough to find it again or to report a gap. */
export interface StreamPosition {
  readonly streamArn: string;
  /** Known to the worker; the Lambda event does not carry it. */
  readonly shardId: string | undefined;
  readonly sequenceNumber: string;
  readonly eventID: string;
}

/** Facts about the record, as opposed to the item. */
export interface EventMeta extends StreamPosition {
  /** Table name, parsed from the stream ARN. */
  readonly table: string;
  readonly region: string | undefined;
  /** When the change was made, epoch milliseconds (DynamoDB gives it to the second). */
  readonly approximateCreationTime: number;
  /** Size of the stream record as DynamoDB reports it. */
  readonly sizeBytes: number;
  /** Set on backfill events only; lets code tell them apart without looking at `kind`. */
  readonly backfill?: undefined;
}

/** Which backfill read an item, and when. */
export interface BackfillInfo {
  /** The backfill's id (its record in the lease table; `--resume <id>`). */
  readonly id: string;
  /** The Scan segment that read the item, from 0. */
  readonly segment: number;
  readonly totalSegments: number;
  /** When the Scan started, epoch ms; every stream change made from then on is delivered by the stream too. */
  readonly startedAt: number;
  /** When the page holding the item was read, epoch ms. */
  readonly scannedAt: number;
}

/**
 * Facts about a backfill event. It has no stream position: `sequenceNumber` is `''` (as for a
 * record whose position cannot be read, so it is never taken for one) and `shardId` is
 * `undefined`; `kind === 'backfill'` or `meta.backfill` tells it apart. And `approximateCreationTime` is the Scan's start, so "the state is at least as new
 * as this time" holds as it does for a change.
 */
export interface BackfillMeta {
  /** The table scanned. */
  readonly table: string;
  readonly region: string | undefined;
  /** The stream the backfill hands off to. */
  readonly streamArn: string;
  readonly shardId: undefined;
  /** Always `''`: a backfilled item has no stream position. */
  readonly sequenceNumber: '';
  readonly eventID: string;
  /** The backfill's start ({@link BackfillInfo.startedAt}), epoch ms. */
  readonly approximateCreationTime: number;
  /** Size of the item as read (an estimate: the JSON of its attribute values). */
  readonly sizeBytes: number;
  readonly backfill: BackfillInfo;
}

interface ChangeEventBase {
  /** Unique per stream record; the idempotency key every sink carries downstream. */
  readonly eventID: string;
  /** Name of the first entity whose key patterns match, or `undefined`. */
  readonly entity: string | undefined;
  /** The item's primary key attributes, unmarshalled. */
  readonly key: Item;
  /**
   * Names of the attributes that differ between the images (deep comparison), sorted. For an insert,
   * every attribute of the new image; for a remove, every attribute of the old image; for a modify
   * without an old image (stream view `NEW_IMAGE`), every attribute of the new image.
   */
  readonly changed: readonly string[];
  /** True for a delete made by DynamoDB's time-to-live process rather than by a caller. */
  readonly expired: boolean;
  readonly meta: EventMeta;
}

export interface InsertEvent<T = Item> extends ChangeEventBase {
  readonly kind: 'insert';
  readonly newImage: T;
  readonly oldImage?: undefined;
}

export interface ModifyEvent<T = Item> extends ChangeEventBase {
  readonly kind: 'modify';
  readonly newImage: T;
  /** Absent when the stream view type is `NEW_IMAGE`. */
  readonly oldImage: T | undefined;
}

export interface RemoveEvent<T = Item> extends ChangeEventBase {
  readonly kind: 'remove';
  readonly newImage?: undefined;
  /** Absent when the stream view type is `NEW_IMAGE`. */
  readonly oldImage: T | undefined;
}

/**
 * An item's current state read by a backfill's Scan rather than a change from the stream: no
 * `oldImage`, `changed` lists every attribute, `meta` carries the backfill instead of a stream
 * position. `eventID` is `bf-<backfill id>-<digest of the key>`: the same item in the same backfill
 * (a resumed one included) always has the same id.
 */
export interface BackfillEvent<T = Item> extends Omit<ChangeEventBase, 'meta'> {
  readonly kind: 'backfill';
  readonly newImage: T;
  readonly oldImage?: undefined;
  readonly meta: BackfillMeta;
}

/** A typed change to one item (or a backfilled item), discriminated on `kind`. */
export type ChangeEvent<T = Item> = InsertEvent<T> | ModifyEvent<T> | RemoveEvent<T> | BackfillEvent<T>;

/** How far before a backfill's start {@link backfillVersion} reaches back: the clock skew between the backfill's host and DynamoDB it tolerates. */
export const BACKFILL_VERSION_MARGIN_MS = 60_000;

/**
 * The version a consumer that keeps state gives a backfilled item, on the scale of stream changes'
 * `meta.approximateCreationTime`: a write lands only if its version is at least the stored one.
 * It is 1 ms below the whole minute at or before `startedAt - 60 s`, so every stream change made at or
 * after the Scan's start carries a higher version, whatever the resolution of the creation time
 * (DynamoDB gives seconds, DynamoDB Local whole minutes) and with the backfill host's clock up to
 * a minute ahead. The price: a change made in the minute or two before the Scan also wins over
 * the (newer) backfilled state, which the stream then corrects with the changes after it.
 * OpenSearch's default version uses it; see docs/backfill.md for the rule every consumer follows.
 */
export const backfillVersion = (startedAt: number): number =>
  Math.max(0, Math.floor((startedAt - BACKFILL_VERSION_MARGIN_MS) / 60_000) * 60_000 - 1);

/** True for an event a backfill made (an item's state read by a Scan), false for a stream change. */
export const isBackfillEvent = <T>(event: ChangeEvent<T>): event is BackfillEvent<T> => event.kind === 'backfill';

/**
 * How DynamoDB numbers become JavaScript values. DynamoDB numbers carry up to 38 digits; a JS
 * number carries about 17.
 * - `'number'`: a JS number; a number that would lose digits fails its record (dead letter) with an
 *   error naming the attribute, never rounded silently.
 * - `'auto'`: a JS number where exact, otherwise a `NumberValue` holding the exact digits.
 * - `'exact'`: every number is a `NumberValue` (`.value` is the string, `.toString()` too).
 *
 * In every mode, a value that is not a DynamoDB number (not a decimal, more than 38 significant
 * digits, or a magnitude outside 1E-130 to 9.99...E+125) fails its record as malformed.
 */
export type NumberMode = 'number' | 'auto' | 'exact';

/** Options of {@link decodeRecord}. */
export interface DecodeOptions {
  /** Stream ARN for records without `eventSourceARN` (the GetRecords shape). */
  readonly streamArn?: string;
  readonly shardId?: string;
  /** @default 'number' */
  readonly numbers?: NumberMode;
  /** Resolves the entity name from the raw key; `defineApp` supplies it from the entities in use. */
  readonly entityOf?: (keys: Readonly<Record<string, AttributeValue>>) => string | undefined;
}

/** The stream record's attribute values, as in both the Lambda and the GetRecords shapes. */
type RawImage = Record<string, AttributeValue>;

interface RawStreamData {
  ApproximateCreationDateTime?: number | Date | string;
  Keys?: RawImage;
  NewImage?: RawImage;
  OldImage?: RawImage;
  SequenceNumber?: string;
  SizeBytes?: number;
  StreamViewType?: string;
}

/**
 * A DynamoDB stream record in either shape: Lambda's event record (`eventSourceARN`, epoch seconds,
 * `userIdentity.principalId`) or `@aws-sdk/client-dynamodb-streams` GetRecords' (`Date`,
 * `userIdentity.PrincipalId`).
 */
export interface RawStreamRecord {
  eventID?: string;
  eventName?: string;
  eventSource?: string;
  eventSourceARN?: string;
  awsRegion?: string;
  dynamodb?: RawStreamData;
  userIdentity?: { type?: string; principalId?: string; Type?: string; PrincipalId?: string };
  /** Only on records a backfill makes (`eventName: 'BACKFILL'`). */
  backfill?: BackfillInfo;
}

const KINDS: Readonly<Record<string, ChangeKind>> = { INSERT: 'insert', MODIFY: 'modify', REMOVE: 'remove', BACKFILL: 'backfill' };

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** `{ negative, digits, exponent }` with no leading or trailing zeros in `digits`; zero is `''`. */
const canonicalDecimal = (s: string): string | undefined => {
  const m = DECIMAL.exec(s);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  let digits = (m[2] ?? '') + fraction;
  let exponent = Number(m[4] ?? 0) - fraction.length;
  digits = digits.replace(/^0+/, '');
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  if (trimmed === '') return '0';
  return `${m[1] === '-' ? '-' : ''}${trimmed}e${exponent}`;
};

/** True when `n` prints back as the same decimal as `s`: converting lost no digit. */
export const isExactNumber = (s: string, n: number): boolean => {
  if (!Number.isFinite(n)) return false;
  // Up to 15 significant digits always survive a double in DynamoDB's range (1e-130 to 1e126, all
  // normal doubles), and 15 characters cannot hold more: the common case needs no printing.
  if (s.length <= 15 && n !== 0) return true;
  const printed = String(n);
  return printed === s || canonicalDecimal(printed) === canonicalDecimal(s);
};

/** The largest and smallest power of ten a DynamoDB number's leading digit may have (9.99...E+125, 1E-130). */
const MAX_MAGNITUDE = 125;
const MIN_MAGNITUDE = -130;
const MAX_DIGITS = 38;

/**
 * What keeps `s` from being a DynamoDB number, or `undefined` when it is one: a decimal (optional
 * sign, digits with an optional point, optional exponent) with at most 38 significant digits
 * (leading and trailing zeros do not count) and, unless it is zero, a magnitude from 1E-130 to
 * 9.99...E+125. One pass over the characters, no allocation: it runs for every number of every
 * image. The answer never quotes the value (messages reach logs; images hold user data).
 */
export const numberProblem = (s: string): string | undefined => {
  if (typeof s !== 'string') return `it is not a decimal number (a ${typeof s}, not a string)`;
  const length = s.length;
  let i = 0;
  let c = s.charCodeAt(0);
  if (c === 43 || c === 45) i++; // + -
  let digits = 0; // mantissa digits, zeros included
  let point = -1; // mantissa digits before the point
  let first = -1; // index (among the mantissa digits) of the first and last non-zero digit
  let last = -1;
  for (; i < length; i++) {
    c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (c !== 48) {
        if (first < 0) first = digits;
        last = digits;
      }
      digits++;
    } else if (c === 46 && point < 0) point = digits;
    else break;
  }
  if (digits === 0) return 'it is not a decimal number (no digits)';
  if (point < 0) point = digits;
  let exponent = 0;
  if (i < length) {
    if (c !== 101 && c !== 69) return 'it is not a decimal number (a character no decimal number holds)'; // e E
    c = s.charCodeAt(++i);
    const negative = c === 45;
    if (c === 43 || c === 45) i++;
    if (i >= length) return 'it is not a decimal number (an exponent without digits)';
    for (; i < length; i++) {
      c = s.charCodeAt(i);
      if (c < 48 || c > 57) return 'it is not a decimal number (an exponent with a character that is not a digit)';
      // Past a million the number is out of range whatever the mantissa: stop growing.
      if (exponent < 1e6) exponent = exponent * 10 + (c - 48);
    }
    if (negative) exponent = -exponent;
  }
  if (first < 0) return undefined; // zero, whatever its exponent
  const significant = last - first + 1;
  if (significant > MAX_DIGITS) return `it has ${significant} significant digits; DynamoDB keeps at most ${MAX_DIGITS}`;
  const magnitude = point - first - 1 + exponent; // the power of ten of the leading digit
  if (magnitude > MAX_MAGNITUDE) return 'it is larger in magnitude than 9.99...E+125, the largest DynamoDB number';
  if (magnitude < MIN_MAGNITUDE) return 'it is smaller in magnitude than 1E-130, the smallest non-zero DynamoDB number';
  return undefined;
};

/** Thrown by a converter; `toItem` turns it into a {@link MalformedRecordError} naming the attribute. */
class BadNumber extends Error {
  constructor(
    readonly problem: string,
    readonly lossy: boolean,
  ) {
    super(problem);
  }
}

type Converter = (value: string) => number | NumberValue;

const toNumber = (mode: NumberMode): Converter => {
  if (mode === 'exact') {
    return (value) => {
      const problem = numberProblem(value);
      if (problem !== undefined) throw new BadNumber(problem, false);
      return NumberValueImpl.from(value);
    };
  }
  return (value) => {
    const problem = numberProblem(value);
    if (problem !== undefined) throw new BadNumber(problem, false);
    const n = Number(value);
    if (isExactNumber(value, n)) return n;
    if (mode === 'auto') return NumberValueImpl.from(value);
    throw new BadNumber('does not fit a JavaScript number without losing digits', true);
  };
};

/** Converters made once per mode, not once per record. */
const converters = new Map<NumberMode, Converter>((['number', 'auto', 'exact'] as const).map((mode) => [mode, toNumber(mode)]));

type ImageSlot = 'Keys' | 'NewImage' | 'OldImage';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const step = (path: string, name: string): string => (NAME.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`);

/**
 * The path of the first number in `image` that `convert` refuses, found by walking the image again:
 * paths are built only for a record that fails, never on the hot path.
 */
const findBadNumber = (value: AttributeValue, path: string, convert: Converter): string | undefined => {
  const fails = (n: string): boolean => {
    try {
      convert(n);
      return false;
    } catch {
      return true;
    }
  };
  if (value === null || typeof value !== 'object') return undefined;
  if (value.N !== undefined) return fails(value.N) ? path : undefined;
  if (Array.isArray(value.NS)) {
    const at = value.NS.findIndex(fails);
    return at < 0 ? undefined : `${path}[${at}]`;
  }
  if (Array.isArray(value.L)) {
    for (let i = 0; i < value.L.length; i++) {
      const found = findBadNumber(value.L[i] as AttributeValue, `${path}[${i}]`, convert);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value.M !== undefined && value.M !== null && typeof value.M === 'object') return findInImage(value.M, path, convert);
  return undefined;
};

const findInImage = (image: RawImage, path: string, convert: Converter): string | undefined => {
  for (const name in image) {
    const found = findBadNumber(image[name] as AttributeValue, step(path, name), convert);
    if (found !== undefined) return found;
  }
  return undefined;
};

/**
 * One attribute value to its native form, as `convertToNative` from `@aws-sdk/util-dynamodb` does
 * it, with scalars, lists and maps walked inline: `convertToNative` allocates `Object.entries` for
 * every value it looks at, which was a third of the cost of a record. Sets and binaries, and
 * anything malformed, still go through `convertToNative`; a test holds the output equal to
 * `unmarshall`'s.
 */
const toNative = (v: AttributeValue, wrapNumbers: Converter): unknown => {
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return wrapNumbers(v.N);
  if (v.BOOL !== undefined) return Boolean(v.BOOL);
  if (v.NULL !== undefined) return null;
  if (v.M !== undefined && v.M !== null && typeof v.M === 'object') return toMap(v.M, wrapNumbers);
  if (Array.isArray(v.L)) return v.L.map((item) => toNative(item, wrapNumbers));
  return convertToNative(v as Parameters<typeof convertToNative>[0], { wrapNumbers });
};

const toMap = (image: RawImage, wrapNumbers: Converter): Item => {
  const item: Item = {};
  for (const name in image) item[name] = toNative(image[name] as AttributeValue, wrapNumbers);
  return item;
};

const toItem = (image: RawImage, mode: NumberMode, slot: ImageSlot): Item => {
  const convert = converters.get(mode) as Converter;
  try {
    return toMap(image, convert);
  } catch (error) {
    if (error instanceof BadNumber) {
      const path = findInImage(image, `dynamodb.${slot}`, convert) ?? `dynamodb.${slot}`;
      if (error.lossy) {
        throw new MalformedRecordError(
          `${path} ${error.problem}; set \`numbers: 'auto'\` or \`numbers: 'exact'\` in defineApp to keep it exact`,
        );
      }
      throw new MalformedRecordError(`${path} is not a DynamoDB number: ${error.problem}`);
    }
    if (error instanceof MalformedRecordError) throw error;
    throw new MalformedRecordError(`dynamodb.${slot} is not a valid DynamoDB image: ${(error as Error).message}`, { cause: error });
  }
};

const sameSet = (a: readonly unknown[], b: readonly unknown[]): boolean => {
  if (a.length !== b.length) return false;
  const seen = new Set(a.map((v) => String(v)));
  return b.every((v) => seen.has(String(v)));
};

const sameBytes = (a: unknown, b: unknown): boolean => {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  const x = a as Uint8Array;
  const y = b as Uint8Array;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
};

/** Deep equality of two raw attribute values; sets compare as sets, so element order does not matter. */
export const sameAttributeValue = (a: AttributeValue, b: AttributeValue): boolean => {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  if (x['S'] !== undefined) return x['S'] === y['S'];
  if (x['N'] !== undefined) {
    if (x['N'] === y['N']) return true;
    // Different doubles mean different decimals; equal doubles may still be different decimals.
    return y['N'] !== undefined && Number(x['N']) === Number(y['N']) && canonicalDecimal(x['N'] as string) === canonicalDecimal(y['N'] as string);
  }
  if (x['BOOL'] !== undefined) return x['BOOL'] === y['BOOL'];
  if (x['NULL'] !== undefined) return y['NULL'] !== undefined;
  if (x['B'] !== undefined) return y['B'] !== undefined && sameBytes(x['B'], y['B']);
  if (x['SS'] !== undefined) return Array.isArray(y['SS']) && sameSet(x['SS'] as unknown[], y['SS']);
  if (x['NS'] !== undefined) return Array.isArray(y['NS']) && sameSet((x['NS'] as string[]).map(canonicalDecimal), (y['NS'] as string[]).map(canonicalDecimal));
  if (x['BS'] !== undefined) return Array.isArray(y['BS']) && sameSet((x['BS'] as unknown[]).map(String), (y['BS'] as unknown[]).map(String));
  if (x['L'] !== undefined) {
    const l = x['L'] as AttributeValue[];
    const m = y['L'] as AttributeValue[] | undefined;
    return Array.isArray(m) && l.length === m.length && l.every((v, i) => sameAttributeValue(v, m[i] as AttributeValue));
  }
  if (x['M'] !== undefined) return y['M'] !== undefined && sameImage(x['M'] as RawImage, y['M'] as RawImage);
  return false;
};

const sameImage = (a: RawImage, b: RawImage): boolean => {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => b[k] !== undefined && sameAttributeValue(a[k] as AttributeValue, b[k] as AttributeValue));
};

/** Names of the attributes that differ between two raw images, sorted. */
/**
 * An image's attribute names, sorted: the `changed` of an insert, a remove or a backfill. Sorting
 * is most of its cost, and the records of a batch mostly carry the same attributes in the same
 * order (one writer, one item shape), so the last answer is kept and handed out again, frozen,
 * while the names come in the same order.
 */
export const attributeNames = (image: RawImage | undefined): readonly string[] => {
  if (image === undefined) return NO_NAMES;
  const names = Object.keys(image);
  if (names.length === lastNames.length) {
    let same = true;
    for (let i = 0; i < names.length; i++) {
      if (names[i] !== lastNames[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastSorted;
  }
  lastNames = names;
  lastSorted = Object.freeze(names.slice().sort());
  return lastSorted;
};

const NO_NAMES: readonly string[] = Object.freeze([]);
let lastNames: readonly string[] = [];
let lastSorted: readonly string[] = NO_NAMES;

export const changedAttributes = (oldImage: RawImage, newImage: RawImage): string[] => {
  // for...in rather than Object.keys: no array of names per image, on every modify of a batch.
  const changed: string[] = [];
  for (const name in newImage) {
    const before = oldImage[name];
    if (before === undefined || !sameAttributeValue(before, newImage[name] as AttributeValue)) changed.push(name);
  }
  for (const name in oldImage) if (newImage[name] === undefined) changed.push(name);
  return changed.length > 1 ? changed.sort() : changed;
};

/** The key attributes, taken from an image already unmarshalled (they are in it) or else from `Keys`. */
const keyOf = (keys: RawImage, image: Item | undefined, mode: NumberMode): Item => {
  if (image) {
    const key: Item = {};
    let complete = true;
    for (const name in keys) {
      const value = image[name];
      if (value === undefined) complete = false;
      key[name] = value;
    }
    if (complete) return key;
  }
  return toItem(keys, mode, 'Keys');
};

const TABLE_FROM_ARN = /^arn:[^:]+:dynamodb:([^:]*):[^:]*:table\/([^/]+)\/stream\//;

/** The table name and region in a DynamoDB stream ARN, or `undefined` for other strings. */
export const parseStreamArn = (arn: string): { table: string; region: string } | undefined => {
  const m = TABLE_FROM_ARN.exec(arn);
  return m ? { table: m[2] as string, region: m[1] as string } : undefined;
};

// Every record of a batch carries the same ARN: parse it once.
let lastArn: { arn: string; parsed: ReturnType<typeof parseStreamArn> } | undefined;
const parseStreamArnCached = (arn: string) => {
  if (lastArn?.arn !== arn) lastArn = { arn, parsed: parseStreamArn(arn) };
  return lastArn.parsed;
};

const creationTime = (value: RawStreamData['ApproximateCreationDateTime']): number => {
  if (value instanceof Date) return value.getTime();
  // Lambda gives epoch seconds (sometimes with a fraction); GetRecords gives a Date.
  if (typeof value === 'number') return Math.round(value * 1000);
  if (typeof value === 'string') {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return t;
  }
  throw new MalformedRecordError(`dynamodb.ApproximateCreationDateTime is missing or not a time: ${String(value)}`);
};

const isImage = (v: unknown): v is RawImage => v !== null && typeof v === 'object' && !Array.isArray(v);

const isEmpty = (image: RawImage): boolean => {
  for (const _ in image) return false;
  return true;
};

/**
 * The position of a raw record, as far as it can be read. Used for dead letters of records that do
 * not decode, so it never throws.
 */
export const positionOf = (raw: unknown, options: Pick<DecodeOptions, 'streamArn' | 'shardId'> = {}): StreamPosition => {
  const r = (raw ?? {}) as RawStreamRecord;
  return {
    streamArn: typeof r.eventSourceARN === 'string' ? r.eventSourceARN : (options.streamArn ?? ''),
    shardId: options.shardId,
    sequenceNumber: typeof r.dynamodb?.SequenceNumber === 'string' ? r.dynamodb.SequenceNumber : '',
    eventID: typeof r.eventID === 'string' ? r.eventID : '',
  };
};

/**
 * The sequence number of a raw stream record (Lambda or GetRecords shape), or `''` when it has
 * none that is a non-empty string. Never throws: it runs before a record is validated.
 */
export const sequenceOf = (raw: unknown): string => {
  const seq = (raw as RawStreamRecord | null | undefined)?.dynamodb?.SequenceNumber;
  return typeof seq === 'string' ? seq : '';
};

const SEQUENCE_DIGITS = /^[0-9]+$/;

/**
 * Orders two sequence numbers as the integers they are (a shorter one is smaller: comparing the
 * strings would put `'9'` after `'10'`). Negative, zero or positive, like a sort comparator.
 * Throws a TypeError when either is not a decimal number.
 */
export const compareSequenceNumbers = (a: string, b: string): number => {
  if (!SEQUENCE_DIGITS.test(a) || !SEQUENCE_DIGITS.test(b)) throw new TypeError(`Expected two decimal sequence numbers, got \`${a}\` and \`${b}\``);
  const x = a.replace(/^0+(?=.)/, '');
  const y = b.replace(/^0+(?=.)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
};

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A backfill record (see `backfillRecord` in src/backfill/records.ts) to its event. */
const decodeBackfill = <T>(r: RawStreamRecord, d: RawStreamData, options: DecodeOptions): ChangeEvent<T> => {
  const info = r.backfill;
  if (!info || typeof info.id !== 'string' || !isCount(info.segment) || !isCount(info.totalSegments) || !isCount(info.startedAt) || !isCount(info.scannedAt)) {
    throw new MalformedRecordError(`Backfill record ${String(r.eventID)} has no valid backfill section (id, segment, totalSegments, startedAt, scannedAt)`);
  }
  if (!isImage(d.Keys) || Object.keys(d.Keys).length === 0) throw new MalformedRecordError(`Backfill record ${String(r.eventID)} has no dynamodb.Keys`);
  if (!isImage(d.NewImage)) throw new MalformedRecordError(`Backfill record ${String(r.eventID)} has no dynamodb.NewImage`);
  const streamArn = typeof r.eventSourceARN === 'string' ? r.eventSourceARN : (options.streamArn ?? '');
  const mode = options.numbers ?? 'number';
  const parsedArn = streamArn === '' ? undefined : parseStreamArnCached(streamArn);
  const newImage = toItem(d.NewImage, mode, 'NewImage');
  const event: BackfillEvent = {
    kind: 'backfill',
    eventID: r.eventID as string,
    entity: options.entityOf?.(d.Keys),
    key: keyOf(d.Keys, newImage, mode),
    newImage,
    changed: attributeNames(d.NewImage),
    expired: false,
    meta: {
      table: parsedArn?.table ?? '',
      region: r.awsRegion ?? parsedArn?.region,
      streamArn,
      shardId: undefined,
      sequenceNumber: '',
      eventID: r.eventID as string,
      approximateCreationTime: info.startedAt,
      sizeBytes: typeof d.SizeBytes === 'number' ? d.SizeBytes : 0,
      backfill: { id: info.id, segment: info.segment, totalSegments: info.totalSegments, startedAt: info.startedAt, scannedAt: info.scannedAt },
    },
  };
  return event as unknown as ChangeEvent<T>;
};

/**
 * Turns one raw DynamoDB stream record, in the Lambda or the GetRecords shape, into a typed
 * {@link ChangeEvent}. Throws {@link MalformedRecordError} naming what is wrong.
 *
 * @example
 * const event = decodeRecord(lambdaEvent.Records[0]);
 * if (event.kind === 'modify' && event.changed.includes('Status')) notify(event.newImage);
 */
export const decodeRecord = <T = Item>(raw: unknown, options: DecodeOptions = {}): ChangeEvent<T> => {
  if (raw === null || typeof raw !== 'object') throw new MalformedRecordError(`Stream record is not an object: ${typeof raw}`);
  const r = raw as RawStreamRecord;
  const kind = KINDS[r.eventName as string];
  if (!kind) throw new MalformedRecordError(`Stream record has eventName ${JSON.stringify(r.eventName)}; expected INSERT, MODIFY or REMOVE`);
  if (typeof r.eventID !== 'string' || r.eventID === '') throw new MalformedRecordError('Stream record has no eventID');
  const d = r.dynamodb;
  if (d === null || typeof d !== 'object') throw new MalformedRecordError(`Stream record ${r.eventID} has no dynamodb section`);
  if (kind === 'backfill') return decodeBackfill<T>(r, d, options);
  if (typeof d.SequenceNumber !== 'string' || d.SequenceNumber === '') throw new MalformedRecordError(`Stream record ${r.eventID} has no dynamodb.SequenceNumber`);
  if (!isImage(d.Keys) || isEmpty(d.Keys)) throw new MalformedRecordError(`Stream record ${r.eventID} has no dynamodb.Keys`);
  const streamArn = typeof r.eventSourceARN === 'string' ? r.eventSourceARN : options.streamArn;
  if (!streamArn) throw new MalformedRecordError(`Stream record ${r.eventID} has no eventSourceARN and no streamArn was given`);
  const mode = options.numbers ?? 'number';
  const parsedArn = parseStreamArnCached(streamArn);

  const newRaw = isImage(d.NewImage) ? d.NewImage : undefined;
  const oldRaw = isImage(d.OldImage) ? d.OldImage : undefined;
  if (kind !== 'remove' && !newRaw) {
    throw new MalformedRecordError(`${r.eventName} record ${r.eventID} has no NewImage; the stream view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES`);
  }
  const principal = r.userIdentity?.principalId ?? r.userIdentity?.PrincipalId;
  const identityType = r.userIdentity?.type ?? r.userIdentity?.Type;

  const newImage = newRaw ? toItem(newRaw, mode, 'NewImage') : undefined;
  const oldImage = oldRaw ? toItem(oldRaw, mode, 'OldImage') : undefined;
  const event = {
    kind,
    eventID: r.eventID,
    entity: options.entityOf?.(d.Keys),
    key: keyOf(d.Keys, newImage ?? oldImage, mode),
    newImage,
    oldImage,
    changed:
      kind === 'modify' && newRaw && oldRaw
        ? changedAttributes(oldRaw, newRaw)
        : attributeNames(kind === 'remove' ? oldRaw : newRaw),
    expired: kind === 'remove' && identityType === 'Service' && principal === 'dynamodb.amazonaws.com',
    meta: {
      table: parsedArn?.table ?? '',
      region: r.awsRegion ?? parsedArn?.region,
      streamArn,
      shardId: options.shardId,
      sequenceNumber: d.SequenceNumber,
      eventID: r.eventID,
      approximateCreationTime: creationTime(d.ApproximateCreationDateTime),
      sizeBytes: typeof d.SizeBytes === 'number' ? d.SizeBytes : 0,
    },
  };
  return event as ChangeEvent<T>;
};
