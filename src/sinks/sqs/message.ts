import { createHash } from 'node:crypto';
import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { toJson } from '../../serialize.js';

/** Message attributes by name; only `String` ones are made here. */
export type Attributes = Record<string, MessageAttributeValue>;

const NONCHARACTERS = /[\uFFFE\uFFFF]/g;

/**
 * JSON that SQS accepts as a body. SQS allows tab, LF, CR and U+0020 to U+10FFFF except surrogates
 * and U+FFFE/U+FFFF. `JSON.stringify` already escapes control characters and lone surrogates; the
 * two noncharacters can only occur inside JSON strings, where their `\u` escape means the same.
 */
export const sqsJson = (value: unknown): string => toJson(value).replace(NONCHARACTERS, (c) => (c === '\uFFFE' ? '\\ufffe' : '\\uffff'));

const OUTSIDE_SQS_TEXT = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * `String` message attributes from name/value pairs, skipping absent and empty values (SQS rejects
 * empty ones). Attributes copy what the body holds, so a character SQS would reject becomes U+FFFD.
 */
export const stringAttributes = (pairs: Readonly<Record<string, unknown>>): Attributes => {
  const attributes: Attributes = {};
  for (const [name, value] of Object.entries(pairs)) {
    if (typeof value !== 'string' || value === '') continue;
    attributes[name] = { DataType: 'String', StringValue: value.replace(OUTSIDE_SQS_TEXT, '\uFFFD') };
  }
  return attributes;
};

const utf8 = (s: string | undefined): number => (s === undefined ? 0 : Buffer.byteLength(s, 'utf8'));

/** Bytes the attributes add to a message as SQS counts them: each name, data type and value. */
export const attributeBytes = (attributes: Attributes): number => {
  let bytes = 0;
  for (const [name, a] of Object.entries(attributes)) {
    bytes += utf8(name) + utf8(a.DataType) + utf8(a.StringValue) + (a.BinaryValue?.byteLength ?? 0);
  }
  return bytes;
};

export const sha256Hex = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

/** What SQS allows in `MessageGroupId` and `MessageDeduplicationId`: 1 to 128 of ASCII `!` to `~`. */
const SQS_ID = /^[\x21-\x7E]{1,128}$/;

/**
 * A valid `MessageGroupId` or `MessageDeduplicationId` for any string, one-to-one: a valid value
 * without `%` stays as it is; otherwise every character outside `!`..`~`, and `%` itself, is
 * escaped (`%XX`, `%uXXXX`), and a result longer than 128 characters becomes the SHA-256 of the
 * value (64 hex digits). Equal inputs always give equal ids, different inputs different ids, so a
 * message group never splits and two events never share a deduplication id.
 *
 * @example
 * toSqsId('e7c4a1f0')        // 'e7c4a1f0'
 * toSqsId('USER#Zoë TASK#1') // 'USER#Zo%EB%20TASK#1'
 */
export const toSqsId = (value: string): string => {
  if (SQS_ID.test(value) && !value.includes('%')) return value;
  let mapped = '';
  for (let i = 0; i < value.length && mapped.length <= 128; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0x21 && c <= 0x7e && c !== 0x25) mapped += value[i];
    else if (c < 0x100) mapped += `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else mapped += `%u${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return mapped.length >= 1 && mapped.length <= 128 ? mapped : sha256Hex(value);
};

/** The same JSON for the same key whatever the order of its attributes. */
export const stableKeyJson = (key: object): string => {
  const record = key as Record<string, unknown>;
  return toJson(Object.fromEntries(Object.keys(record).sort().map((name) => [name, record[name]])));
};
