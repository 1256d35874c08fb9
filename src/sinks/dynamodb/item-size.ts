import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/** DynamoDB's item size limit: 400 KB, attribute names and values together. */
export const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Significant digits of a number as DynamoDB stores it: leading and trailing zeros do not count. */
const numberSize = (n: string): number => {
  const digits = n.replace(/[eE].*$/, '').replace(/[^0-9]/g, '').replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(digits.length, 1) / 2) + 1;
};

const binarySize = (b: Uint8Array | string): number => (typeof b === 'string' ? utf8(b) : b.byteLength);

/**
 * Size of one attribute value as DynamoDB counts it towards the item limit: strings and binaries by
 * their bytes, a number by about half its significant digits plus one, booleans and nulls one byte,
 * lists and maps 3 bytes plus one per element (and a map's names).
 */
export const attributeValueSize = (value: AttributeValue): number => {
  if (value.S !== undefined) return utf8(value.S);
  if (value.N !== undefined) return numberSize(value.N);
  if (value.B !== undefined) return binarySize(value.B);
  if (value.SS !== undefined) return value.SS.reduce((n, s) => n + utf8(s), 0);
  if (value.NS !== undefined) return value.NS.reduce((n, s) => n + numberSize(s), 0);
  if (value.BS !== undefined) return value.BS.reduce((n, b) => n + binarySize(b), 0);
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.L !== undefined) return value.L.reduce((n, v) => n + attributeValueSize(v) + 1, 3);
  if (value.M !== undefined) return Object.entries(value.M).reduce((n, [name, v]) => n + utf8(name) + attributeValueSize(v) + 1, 3);
  return 0;
};

/** Size of an item as DynamoDB counts it: every attribute's name and value. */
export const itemSize = (item: Record<string, AttributeValue>): number => {
  let size = 0;
  for (const name in item) size += utf8(name) + attributeValueSize(item[name] as AttributeValue);
  return size;
};
