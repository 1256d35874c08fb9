import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeRecord } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { openSearch } from '../../src/sinks/opensearch/index.js';
import { streamRecords } from '../../src/testing/index.js';
import { describeSinkContract } from './sink-contract.js';

/** Small realistic change events, with fresh eventIDs (and later creation times) on every call. */
const changeEvents = (() => {
  const records = streamRecords();
  return (n: number): ChangeEvent[] => Array.from({ length: n }, (_, i) => decodeRecord(records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1 })));
})();

/**
 * A local bulk endpoint that checks the NDJSON body (an action line with `_index`, `_id`, an integer
 * `version` and `version_type: external_gte`, then a document line), applies OpenSearch's
 * `external_gte` check per document and answers per-item results. `received` holds the `eventID` of
 * every accepted item, in order: a resend of the same change carries the same version, which
 * `external_gte` accepts, so a retry shows up twice, as the contract expects.
 */
const startServer = async () => {
  const received: string[] = [];
  const versions = new Map<string, bigint>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.url !== '/_bulk') return answer(200, {});
      const body = Buffer.concat(chunks).toString('utf8');
      const lines = body.split('\n');
      if (!req.headers['content-type']?.startsWith('application/x-ndjson') || lines.pop() !== '') return answer(400, { error: { type: 'parse_exception', reason: 'not NDJSON' }, status: 400 });
      const items: unknown[] = [];
      for (let i = 0; i < lines.length; i += 2) {
        const action = JSON.parse(lines[i] as string) as { index?: { _index?: unknown; _id?: unknown; version_type?: unknown } };
        const meta = action.index;
        const version = /"version":(\d+)[,}]/.exec(lines[i] as string)?.[1];
        const source = JSON.parse(lines[i + 1] ?? 'null') as { eventID?: unknown } | null;
        if (typeof meta?._index !== 'string' || typeof meta._id !== 'string' || version === undefined || meta.version_type !== 'external_gte' || typeof source?.eventID !== 'string') {
          return answer(400, { error: { type: 'action_request_validation_exception', reason: `bad action at line ${i}` }, status: 400 });
        }
        const key = `${meta._index}/${meta._id}`;
        const current = versions.get(key);
        if (current !== undefined && current > BigInt(version)) {
          items.push({ index: { _index: meta._index, _id: meta._id, status: 409, error: { type: 'version_conflict_engine_exception', reason: 'version conflict' } } });
          continue;
        }
        versions.set(key, BigInt(version));
        received.push(source.eventID);
        items.push({ index: { _index: meta._index, _id: meta._id, _version: Number(version), result: current === undefined ? 'created' : 'updated', status: current === undefined ? 201 : 200 } });
      }
      answer(200, { took: 1, errors: false, items });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

describeSinkContract('openSearch', async () => {
  const server = await startServer();
  return {
    // The default document is the new image; the contract needs the eventID to reach the server.
    sink: openSearch({ index: 'contract', node: server.url, document: (e) => ({ ...e.newImage, eventID: e.eventID }) }),
    makeEvents: changeEvents,
    received: async () => [...server.received],
    close: server.close,
  };
});
