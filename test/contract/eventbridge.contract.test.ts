import { randomUUID } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { PutEventsCommandInput, PutEventsCommandOutput } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { decodeRecord } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { eventBridge } from '../../src/sinks/eventbridge/index.js';
import { streamRecords } from '../../src/testing/index.js';
import { describeSinkContract } from './sink-contract.js';

/** Small realistic change events, with fresh eventIDs on every call. */
const changeEvents = (() => {
  const records = streamRecords();
  return (n: number): ChangeEvent[] => Array.from({ length: n }, (_, i) => decodeRecord(records.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Status: 'OPEN', Version: 1 })));
})();

describeSinkContract('eventBridge', async () => {
  // One client per harness, mocked on its own: PutEvents accepts every entry, as AWS answers it.
  const client = new EventBridgeClient({ region: 'us-east-1', maxAttempts: 1 });
  const mock = mockClient(client);
  const details: string[] = [];
  mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput): PutEventsCommandOutput => {
    const entries = input.Entries ?? [];
    details.push(...entries.map((e) => e.Detail ?? 'null'));
    return { $metadata: { httpStatusCode: 200 }, FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: randomUUID() })) };
  });
  return {
    sink: eventBridge({ busName: 'contract-bus', client }),
    makeEvents: changeEvents,
    received: async () => details.map((d) => (JSON.parse(d) as { eventID: string }).eventID),
    close: async () => mock.restore(),
  };
});
