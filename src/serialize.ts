import { NumberValueImpl } from '@aws-sdk/util-dynamodb';

/**
 * JSON.stringify replacer for unmarshalled DynamoDB values: sets become arrays, binaries base64,
 * exact numbers (`NumberValue`, `bigint`) their digits as a string so no digit is lost.
 */
export const jsonReplacer = function (this: unknown, _key: string, value: unknown): unknown {
  if (value === null || (typeof value !== 'object' && typeof value !== 'bigint')) return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Set) return [...value];
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (value instanceof NumberValueImpl) return value.value;
  return value;
};

/** `JSON.stringify` that handles every value an unmarshalled item can hold. */
export const toJson = (value: unknown): string => JSON.stringify(value, jsonReplacer) ?? 'null';
