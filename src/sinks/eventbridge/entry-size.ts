import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';

/**
 * Size of one PutEvents entry as EventBridge counts it towards the request quota: 14 bytes for
 * `Time` when set, plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each of `Resources`.
 * `EventBusName` does not count. Bytes, never string length: `é` is 1 character and 2 bytes.
 */
export const putEventsEntrySize = (entry: PutEventsRequestEntry): number => {
  let size = entry.Time === undefined ? 0 : 14;
  if (entry.Source !== undefined) size += Buffer.byteLength(entry.Source, 'utf8');
  if (entry.DetailType !== undefined) size += Buffer.byteLength(entry.DetailType, 'utf8');
  if (entry.Detail !== undefined) size += Buffer.byteLength(entry.Detail, 'utf8');
  for (const resource of entry.Resources ?? []) size += Buffer.byteLength(resource, 'utf8');
  return size;
};
