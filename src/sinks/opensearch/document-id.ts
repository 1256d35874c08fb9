import { NumberValueImpl } from '@aws-sdk/util-dynamodb';
import { DynamoCdcError } from '../../errors.js';
import type { Item } from '../../events.js';

/** OpenSearch rejects a document `_id` longer than this many UTF-8 bytes. */
export const MAX_DOCUMENT_ID_BYTES = 512;

const render = (name: string, value: unknown): string => {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof NumberValueImpl) return value.value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  throw new DynamoCdcError(`Key attribute ${name} is a ${value === null ? 'null' : typeof value}, not a string, number or binary; set \`id\` on the openSearch sink to make document ids yourself`, 'PERMANENT');
};

// A `|` inside a value is escaped, and so is the escape character, so two different keys never
// make the same id: `a|b` + `c` is `a\|b|c`, `a` + `b|c` is `a|b\|c`.
const escape = (s: string): string => (s.includes('|') || s.includes('\\') ? s.replace(/[\\|]/g, (c) => `\\${c}`) : s);

/**
 * The default document id of an item: its key attribute values ordered by attribute name, joined
 * with `|` (`USER#1|TASK#1` for `{ PK: 'USER#1', SK: 'TASK#1' }`). A `|` or `\` inside a value is
 * escaped with `\`. Numbers print as DynamoDB stores them, binaries as base64. The same key always
 * gives the same id, whichever change of the item it comes from.
 */
export const keyDocumentId = (key: Item): string => {
  const names = Object.keys(key).sort();
  if (names.length === 0) throw new DynamoCdcError('The event has no key attributes, so it has no document id; set `id` on the openSearch sink', 'PERMANENT');
  if (names.length === 1) return escape(render(names[0] as string, key[names[0] as string]));
  return names.map((name) => escape(render(name, key[name]))).join('|');
};
