/**
 * OpenSearch bulk request-count benchmark. `measureOpenSearchRequests()` sends 10,000 change events
 * of mixed sizes (200 B to 24 KB of multi-byte text, more small than large), one per item, through
 * the engine into the OpenSearch sink, pointed at a local HTTP server that answers every bulk item
 * with success. `requests` is the bulk requests the server received; `min` is the fewest the sink's
 * limits allow for the same events in stream order: a greedy contiguous cut of the events' `sizeOf`
 * sequence into requests of at most `maxRecords` actions and `maxBytes` bytes, which is optimal for
 * a sequence whose order is kept. Run on its own (`tsx bench/opensearch.ts`) it prints one JSON line.
 *
 * The app's `concurrency` covers the batch (10,000 lanes, Lambda's largest batch). Each lane has one
 * record in flight, so the lane limit, not the sink, caps how many documents can be waiting for a
 * request: with the default 256 no request could hold more than 256 of the 1,000 documents a bulk
 * may carry (ratio about 3), and with 2,000 the refills after each answer leave partial requests
 * (about 1.5). docs/opensearch.md gives that advice.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { decodeRecord, defineApp, Engine, route } from '../src/index.js';
import type { ChangeEvent } from '../src/index.js';
import { openSearch } from '../src/sinks/opensearch/index.js';
import { silentLogger, streamRecords } from '../src/testing/index.js';
import { systemClock } from '../src/core/clock.js';
import { minimumRequests } from './minimum-requests.js';

const EVENTS = 10_000;

/** A deterministic pseudo-random sequence, so every run measures the same events. */
const rng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
};

const makeRecords = () => {
  const random = rng(7);
  const records = streamRecords();
  return Array.from({ length: EVENTS }, (_, i) => {
    const bytes = 200 + Math.floor(random() ** 3 * 24 * 1024);
    const text = 'änderung-✓-'.repeat(Math.ceil(bytes / 14)).slice(0, Math.ceil(bytes / 1.2));
    return records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1, Body: text });
  });
};


/** A bulk endpoint that answers every action with success and counts the requests and actions. */
const startServer = async () => {
  const stats = { requests: 0, actions: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const items: unknown[] = [];
      if (req.url === '/_bulk') {
        stats.requests++;
        const lines = Buffer.concat(chunks).toString('utf8').split('\n');
        for (let i = 0; i < lines.length - 1; i++) {
          const action = JSON.parse(lines[i] as string) as Record<string, { _index: string; _id: string }>;
          const kind = Object.keys(action)[0] as string;
          if (kind === 'index') i++; // skip the document line
          items.push({ [kind]: { _index: action[kind]?._index, _id: action[kind]?._id, _version: 1, result: 'created', status: 201 } });
        }
        stats.actions += items.length;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === '/_bulk' ? { took: 1, errors: false, items } : {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

/** Bulk requests the OpenSearch sink makes for 10,000 events, the fewest its limits allow, and their ratio. */
export const measureOpenSearchRequests = async (): Promise<{ requests: number; min: number; ratio: number }> => {
  const records = makeRecords();
  const server = await startServer();
  try {
    const sink = openSearch({ index: 'bench', node: server.url });
    const sizes = records.map((r) => sink.sizeOf(decodeRecord(r) as ChangeEvent));
    const min = minimumRequests(sizes, sink.limits.maxRecords, sink.limits.maxBytes);
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], concurrency: EVENTS });
    const outcome = await new Engine({ app, logger: silentLogger, clock: systemClock }).process(records);
    if (outcome.counts.delivered !== EVENTS || server.stats.actions !== EVENTS) {
      throw new Error(`opensearch: ${outcome.counts.delivered} of ${EVENTS} delivered, ${server.stats.actions} actions received`);
    }
    const requests = server.stats.requests;
    return { requests, min, ratio: Math.round((requests / min) * 1000) / 1000 };
  } finally {
    await server.close();
  }
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify({ bench: 'opensearch', ...(await measureOpenSearchRequests()) }));
}
