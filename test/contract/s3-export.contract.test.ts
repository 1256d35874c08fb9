import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { decodeRecord } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { startS3rver } from '../../src/local/s3rver.js';
import type { LocalS3 } from '../../src/local/s3rver.js';
import { s3Export } from '../../src/sinks/s3/index.js';
import { streamRecords } from '../../src/testing/index.js';
import { describeSinkContract } from './sink-contract.js';

const BUCKET = 'contract-lake';

/** Small realistic change events, with fresh eventIDs (and stream positions) on every call. */
const changeEvents = (() => {
  const records = streamRecords();
  return (n: number): ChangeEvent[] => Array.from({ length: n }, (_, i) => decodeRecord(records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1 })));
})();

let s3: LocalS3;

beforeAll(async () => {
  s3 = await startS3rver({ buckets: [BUCKET] });
});

afterAll(async () => {
  await s3?.stop();
});

/** The eventIDs stored under `prefix`: objects in key order, then lines in object order. */
const storedEventIds = async (prefix: string): Promise<string[]> => {
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  const keys = (listed.Contents ?? []).map((o) => o.Key ?? '').sort();
  const ids: string[] = [];
  for (const key of keys) {
    const object = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const text = gunzipSync(Buffer.from((await object.Body?.transformToByteArray()) ?? [])).toString('utf8');
    for (const line of text.split('\n')) if (line !== '') ids.push((JSON.parse(line) as { eventID: string }).eventID);
  }
  return ids;
};

describeSinkContract('s3Export', async () => {
  // A fresh prefix per harness: each test sees only its own objects.
  const prefix = `contract-${randomUUID()}/`;
  return {
    sink: s3Export({ bucket: BUCKET, prefix, client: s3.client }),
    makeEvents: changeEvents,
    received: () => storedEventIds(prefix),
    // Objects are keyed by stream position: the same records sent again replace their object.
    overwritesOnRetry: true,
  };
});
