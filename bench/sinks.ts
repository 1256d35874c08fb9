/**
 * Sink benchmark. Prints one JSON object as its last line:
 *   {"bench":"sinks","eventbridgeRequestsVsMin":R,"sqsRequestsVsMin":R,"s3BytesPerSec":N,"openSearchRequestsVsMin":R,
 *    "s3ObjectsPer100kDefault":N,"s3ObjectsPer100kWindowed":N}
 * (the S3 and OpenSearch parts are described in bench/s3-export.ts and bench/opensearch.ts; the
 * objects per 100,000 changes come from a worker at a steady 100 changes a second, with its default
 * batching and with `batchSize: 10_000, batchWindowMs: 60_000`).
 *
 * 1,000 change events of mixed sizes (1 KB to 300 KB, multi-byte text included), one per item, go
 * through the engine to each sink, whose AWS client is mocked (aws-sdk-client-mock) to accept every
 * entry. Each ratio is the requests the sink made over the fewest requests the service limits allow
 * for the same events in the same (stream) order: cutting the sequence greedily into requests of at
 * most 10 entries and the byte limit, with entry sizes as the sink computes them (AWS's documented
 * rules), which is optimal for a sequence whose order must be kept.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { decodeRecord, defineApp, Engine, route } from '../src/index.js';
import type { ChangeEvent, Sink } from '../src/index.js';
import { eventBridge } from '../src/sinks/eventbridge/index.js';
import { sqs } from '../src/sinks/sqs/index.js';
import { measureOpenSearchRequests } from './opensearch.js';
import { measureS3Export, measureWorkerS3Objects, WINDOWED } from './s3-export.js';
import { silentLogger, streamRecords } from '../src/testing/index.js';
import { systemClock } from '../src/core/clock.js';
import { minimumRequests } from './minimum-requests.js';

const EVENTS = 1000;

/** A deterministic pseudo-random sequence, so every run measures the same events. */
const rng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
};

const makeRecords = () => {
  const random = rng(42);
  const records = streamRecords();
  return Array.from({ length: EVENTS }, (_, i) => {
    const kb = 1 + Math.floor(random() ** 2 * 299); // more small events than large ones
    const text = 'änderung-✓-'.repeat(Math.ceil((kb * 1024) / 16)).slice(0, kb * 1024 - 400);
    return records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1, Body: text });
  });
};


const measure = async (sink: Sink<ChangeEvent>, calls: () => number, records: ReturnType<typeof makeRecords>) => {
  const events = records.map((r) => decodeRecord(r));
  const sizeOf = sink.sizeOf?.bind(sink) ?? ((e: ChangeEvent) => Buffer.byteLength(JSON.stringify(e)));
  const min = minimumRequests(events.map(sizeOf), sink.limits.maxRecords, sink.limits.maxBytes);
  const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] }), logger: silentLogger, clock: systemClock });
  const outcome = await engine.process(records);
  if (outcome.counts.delivered !== EVENTS) throw new Error(`${sink.name}: ${outcome.counts.delivered} of ${EVENTS} delivered`);
  return { requests: calls(), min, bytes: events.reduce((s, e) => s + sizeOf(e), 0) };
};

const main = async () => {
  const records = makeRecords();

  const eb = new EventBridgeClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const ebMock = mockClient(eb);
  ebMock.on(PutEventsCommand).callsFake((input: { Entries?: unknown[] }) => ({
    FailedEntryCount: 0,
    Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `id-${i}` })),
  }));
  const ebResult = await measure(eventBridge({ busName: 'app', client: eb }) as Sink<ChangeEvent>, () => ebMock.commandCalls(PutEventsCommand).length, records);
  console.log(JSON.stringify({ part: 'eventbridge', ...ebResult }));

  const q = new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const sqsMock = mockClient(q);
  sqsMock.on(SendMessageBatchCommand).callsFake((input: { Entries?: { Id?: string }[] }) => ({
    Successful: (input.Entries ?? []).map((e, i) => ({ Id: e.Id, MessageId: `m-${i}`, MD5OfMessageBody: '' })),
    Failed: [],
  }));
  const sqsResult = await measure(sqs({ queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/changes', client: q }) as Sink<ChangeEvent>, () => sqsMock.commandCalls(SendMessageBatchCommand).length, records);
  console.log(JSON.stringify({ part: 'sqs', ...sqsResult }));

  const s3Result = await measureS3Export();
  console.log(JSON.stringify({ part: 's3', ...s3Result }));
  const s3Default = await measureWorkerS3Objects();
  console.log(JSON.stringify({ part: 's3-worker-default', ...s3Default }));
  const s3Windowed = await measureWorkerS3Objects(WINDOWED);
  console.log(JSON.stringify({ part: 's3-worker-windowed', ...WINDOWED, ...s3Windowed }));
  const osResult = await measureOpenSearchRequests();
  console.log(JSON.stringify({ part: 'opensearch', ...osResult }));

  const r = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify({
      bench: 'sinks',
      eventbridgeRequestsVsMin: r(ebResult.requests / ebResult.min),
      sqsRequestsVsMin: r(sqsResult.requests / sqsResult.min),
      s3BytesPerSec: Math.round(s3Result.s3BytesPerSec),
      openSearchRequestsVsMin: r(osResult.ratio),
      s3ObjectsPer100kDefault: Math.round((s3Default.objects * 100_000) / s3Default.changes),
      s3ObjectsPer100kWindowed: Math.round((s3Windowed.objects * 100_000) / s3Windowed.changes),
    }),
  );
};

await main();
