import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { consoleSink, each, fileSink } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { MemorySink, streamRecords } from '../../src/testing/index.js';
import { decodeRecord } from '../../src/index.js';
import { describeSinkContract } from './sink-contract.js';

/** Small realistic change events, with fresh eventIDs on every call. */
export const changeEvents = (() => {
  const records = streamRecords();
  return (n: number): ChangeEvent[] => Array.from({ length: n }, (_, i) => decodeRecord(records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1 })));
})();

describeSinkContract('MemorySink', async () => {
  const sink = new MemorySink();
  return { sink, makeEvents: changeEvents, received: async () => sink.delivered.map((e) => e.eventID) };
});

describeSinkContract('fileSink', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-file-'));
  const path = join(dir, 'events.ndjson');
  const ids = async () => {
    const text = await readFile(path, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { eventID: string }).eventID);
  };
  return { sink: fileSink({ path }), makeEvents: changeEvents, received: ids, close: () => rm(dir, { recursive: true, force: true }) };
});

describeSinkContract('consoleSink', async () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const ids = async () => text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { eventID: string }).eventID);
  return { sink: consoleSink({ stream }), makeEvents: changeEvents, received: ids };
});

describeSinkContract('each', async () => {
  const ids: string[] = [];
  return { sink: each(async (event: ChangeEvent) => void ids.push(event.eventID)), makeEvents: changeEvents, received: async () => [...ids] };
});
