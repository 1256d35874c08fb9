/**
 * The embedded demo: DynamoDB Local, the TaskApp table with a stream, a realistic workload, and the
 * Lambda shape of dynamo-cdc driven as Lambda's event source mapping drives it, with flaky sinks,
 * a poison item and re-deliveries. No AWS account needed. The last line is machine-readable:
 *   {"demo":"ok","changes":N,"delivered":N,"deadLettered":N}
 *
 * Usage: npm run demo [-- --tasks-per-user N --users N --out DIR]
 */
import { rm, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConditionalCheckFailedException, DeleteItemCommand, DescribeTableCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { CreateTableCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { z } from 'zod';
import { consoleSink, defineApp, entity, fileDeadLetterQueue, fileSink, route, systemClock } from '../index.js';
import type { Sink } from '../index.js';
import { createStreamHandler, dynamoDbProgressStore, progressTableDefinition } from '../lambda/index.js';
import { startDynamoDbLocal, localClientConfig } from '../local/dynamodb-local.js';
import { readWholeStream } from '../local/read-stream.js';
import { createLogger } from '../observability/logger.js';
import { simulateEventSourceMapping } from '../testing/event-source-mapping.js';
import { throttlingError } from '../testing/sinks.js';

const { values: flags } = parseArgs({
  options: {
    users: { type: 'string', default: '4' },
    'tasks-per-user': { type: 'string', default: '6' },
    out: { type: 'string', default: 'out/demo' },
    'batch-size': { type: 'string', default: '25' },
  },
});
const USERS = Number(flags.users);
const TASKS = Number(flags['tasks-per-user']);
const OUT = flags.out as string;
const say = (line: string) => process.stderr.write(`${line}\n`);

const TaskSchema = z.object({
  PK: z.string(),
  SK: z.string(),
  TaskId: z.string(),
  Title: z.string(),
  Status: z.enum(['OPEN', 'IN_PROGRESS', 'DONE']),
  Version: z.number().int(),
  ExpiresAt: z.number().optional(),
});
const Task = entity('Task', { key: { PK: 'USER#', SK: 'TASK#' }, schema: TaskSchema });
const User = entity('User', { key: { PK: 'USER#', SK: 'PROFILE' } });

/** Fails the first try of every fifth request with a throttle, as a busy destination does. */
const flaky = <E>(inner: Sink<E>): Sink<E> => {
  let requests = 0;
  return {
    ...inner,
    send: async (events, signal) => {
      requests++;
      if (requests % 5 === 0) throw throttlingError();
      return inner.send(events, signal);
    },
  };
};

const createTaskApp = async (client: DynamoDBClient) => {
  await client.send(
    new CreateTableCommand({
      TableName: 'TaskApp',
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'PK', KeyType: 'HASH' },
        { AttributeName: 'SK', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'PK', AttributeType: 'S' },
        { AttributeName: 'SK', AttributeType: 'S' },
      ],
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, { TableName: 'TaskApp' });
  const { Table } = await client.send(new DescribeTableCommand({ TableName: 'TaskApp' }));
  return Table?.LatestStreamArn as string;
};

/** Users, their tasks, status changes under optimistic locking (some lose the race), deletes. Returns the changes made. */
const workload = async (client: DynamoDBClient) => {
  let changes = 0;
  let conflicts = 0;
  const put = async (item: Record<string, unknown>) => {
    await client.send(new PutItemCommand({ TableName: 'TaskApp', Item: Object.fromEntries(Object.entries(item).map(([k, v]) => [k, typeof v === 'number' ? { N: String(v) } : { S: String(v) }])) }));
    changes++;
  };
  const setStatus = async (user: number, task: number, status: string, expected: number) => {
    try {
      await client.send(
        new UpdateItemCommand({
          TableName: 'TaskApp',
          Key: { PK: { S: `USER#${user}` }, SK: { S: `TASK#${task}` } },
          UpdateExpression: 'SET #s = :s, Version = :next',
          ConditionExpression: 'Version = :expected',
          ExpressionAttributeNames: { '#s': 'Status' },
          ExpressionAttributeValues: { ':s': { S: status }, ':next': { N: String(expected + 1) }, ':expected': { N: String(expected) } },
        }),
      );
      changes++;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      conflicts++; // a stale writer lost: no change, so nothing in the stream
    }
  };
  for (let u = 0; u < USERS; u++) {
    await put({ PK: `USER#${u}`, SK: 'PROFILE', UserId: `${u}`, Name: `User ${u}` });
    for (let t = 0; t < TASKS; t++) await put({ PK: `USER#${u}`, SK: `TASK#${t}`, TaskId: `${u}-${t}`, Title: `Task ${t} of user ${u}`, Status: 'OPEN', Version: 1 });
  }
  for (let u = 0; u < USERS; u++) {
    for (let t = 0; t < TASKS; t++) {
      await setStatus(u, t, 'IN_PROGRESS', 1);
      if (t % 3 === 0) await setStatus(u, t, 'DONE', 1); // stale: expects Version 1 again
      await setStatus(u, t, 'DONE', 2);
    }
  }
  for (let u = 0; u < USERS; u++) {
    await client.send(new DeleteItemCommand({ TableName: 'TaskApp', Key: { PK: { S: `USER#${u}` }, SK: { S: 'TASK#0' } } }));
    changes++;
  }
  // One item that breaks the Task schema: it must reach the dead-letter queue, not stop the rest.
  await put({ PK: 'USER#0', SK: 'TASK#bad', TaskId: 'bad', Title: 'Archived by an old client', Status: 'ARCHIVED', Version: 1 });
  return { changes, conflicts };
};

const countLines = async (path: string) => {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
};

const main = async () => {
  await rm(OUT, { recursive: true, force: true });
  say('starting DynamoDB Local ...');
  const local = await startDynamoDbLocal();
  try {
    const streamArn = await createTaskApp(local.client);
    await local.client.send(new CreateTableCommand(progressTableDefinition('dynamo-cdc-progress')));
    say('writing the TaskApp workload ...');
    const { changes, conflicts } = await workload(local.client);
    say(`  ${changes} changes written, ${conflicts} stale updates rejected by optimistic locking`);

    const streams = new DynamoDBStreamsClient(localClientConfig(local.endpoint));
    const records = await readWholeStream(streams, streamArn, changes);
    streams.destroy();
    say(`  ${records.length} records in the stream`);

    const app = defineApp({
      table: 'TaskApp',
      routes: [
        route(Task)
          .on('modify')
          .when((e) => e.changed.includes('Status'))
          .transform((e) => ({ type: `Task.${e.newImage.Status}`, taskId: e.newImage.TaskId, version: e.newImage.Version, eventID: e.eventID }))
          .to(flaky(fileSink({ name: 'task-status', path: `${OUT}/task-status.ndjson` }))),
        route('*').to(flaky(fileSink({ name: 'all-changes', path: `${OUT}/changes.ndjson` }))),
        route(User).to(consoleSink({ name: 'console', format: 'summary', stream: process.stderr })),
      ],
      retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 },
      deadLetter: fileDeadLetterQueue({ path: `${OUT}/dead-letters.ndjson` }),
    });
    const handler = createStreamHandler(app, {
      logger: createLogger({ level: process.env['LOG_LEVEL'] ?? 'error' }),
      progressStore: dynamoDbProgressStore({ tableName: 'dynamo-cdc-progress', client: local.client }),
    });
    say('delivering through the Lambda handler, batch by batch ...');
    const { invocations } = await simulateEventSourceMapping({ records, handler, clock: systemClock, batchSize: Number(flags['batch-size']) });
    for (const i of invocations) say(`  batch of ${String(i.size).padStart(3)} from #${String(i.from).padStart(3)}: ${i.result} in ${i.durationMs} ms`);

    const delivered = new Set((await countLines(`${OUT}/changes.ndjson`)).map((l) => l['eventID']));
    const letters = await countLines(`${OUT}/dead-letters.ndjson`);
    const statusEvents = await countLines(`${OUT}/task-status.ndjson`);
    say('');
    say(`changes written        ${changes}`);
    say(`delivered (all-changes) ${delivered.size}  -> ${OUT}/changes.ndjson`);
    say(`status events           ${statusEvents.length}  -> ${OUT}/task-status.ndjson`);
    say(`dead-lettered           ${letters.length}  -> ${OUT}/dead-letters.ndjson`);
    for (const l of letters) say(`  ${(l['error'] as { name: string }).name}: ${(l['error'] as { message: string }).message}`);
    // Every change is accounted for: delivered, or dead-lettered with its record.
    const lettered = new Set(letters.map((l) => (l['record'] as { eventID?: string }).eventID));
    const ok = records.length === changes && records.every((r) => delivered.has(r.eventID) !== lettered.has(r.eventID));
    console.log(JSON.stringify({ demo: ok ? 'ok' : 'failed', changes, delivered: delivered.size, deadLettered: letters.length }));
    if (!ok) process.exitCode = 1;
  } finally {
    await local.stop();
  }
};

await main();
