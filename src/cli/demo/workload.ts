/**
 * The demo's workload against the TaskApp table: users and tasks, status changes under optimistic
 * locking, deletes, one item that breaks its schema, and the deletes of expired tasks.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConditionalCheckFailedException, DeleteItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { TABLE } from './app.js';

const DAY_S = 24 * 60 * 60;

// No UpdateTimeToLive on the table: DynamoDB Local's own sweeper runs at moments of its choosing
// and writes its deletes with an event name the SDK does not know; the workload expires items itself.

/** What the workload did so far; the progress line reads it while the workload runs. */
export interface Tally {
  /** Writes that changed an item, so one stream record each. */
  changes: number;
  /** When each of those writes was acknowledged, in order (epoch ms). */
  readonly writtenAt: number[];
  /** Updates refused by optimistic locking: no change, so no stream record. */
  conflicts: number;
  /** Tasks deleted because their `ExpiresAt` passed. */
  expired: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The data that is in the table before dynamo-cdc is set up: per user asked for, one earlier user
 * (`USER#L<n>`) with one finished task. These writes are in the stream too (it was on already),
 * but a new destination has never seen them: the backfill sends them. Returns the items written.
 */
export const seedExisting = async (client: DynamoDBClient, users: number, tally: Tally): Promise<number> => {
  let items = 0;
  for (let u = 0; u < users; u++) {
    const profile = { PK: `USER#L${u}`, SK: 'PROFILE', UserId: `L${u}`, Name: `Earlier user ${u}` };
    const task = { PK: `USER#L${u}`, SK: 'TASK#0', TaskId: `L${u}-0`, Title: 'Written before dynamo-cdc', Status: 'DONE', Version: 3 };
    for (const item of [profile, task]) {
      await client.send(new PutItemCommand({ TableName: TABLE, Item: marshall(item) }));
      tally.changes++;
      tally.writtenAt.push(Date.now());
      items++;
    }
  }
  return items;
};

/**
 * Users and their tasks; status changes under optimistic locking on `Version` where some stale
 * writers lose; deletes; one item that breaks the Task schema; and the deletes of expired tasks.
 */
export const runWorkload = async (client: DynamoDBClient, size: { users: number; tasks: number }, tally: Tally, signal: AbortSignal): Promise<void> => {
  const changed = () => {
    tally.changes++;
    tally.writtenAt.push(Date.now());
  };
  const put = async (item: Record<string, unknown>) => {
    signal.throwIfAborted();
    await client.send(new PutItemCommand({ TableName: TABLE, Item: marshall(item, { removeUndefinedValues: true }) }));
    changed();
  };
  const setStatus = async (user: number, task: number, status: string, expectedVersion: number) => {
    signal.throwIfAborted();
    try {
      await client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: { PK: { S: `USER#${user}` }, SK: { S: `TASK#${task}` } },
          UpdateExpression: 'SET #status = :status, Version = :next',
          ConditionExpression: 'Version = :expected',
          ExpressionAttributeNames: { '#status': 'Status' },
          ExpressionAttributeValues: { ':status': { S: status }, ':next': { N: String(expectedVersion + 1) }, ':expected': { N: String(expectedVersion) } },
        }),
      );
      changed();
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      tally.conflicts++;
    }
  };

  // Every fourth task (from the second) is a reminder that lapses a second after it is created;
  // every fourth (from the fourth) lives a week. The others never expire.
  let lastExpiry = 0;
  const expiryOf = (task: number): number | undefined => {
    if (task % 4 === 1) return (lastExpiry = nowSeconds() + 1);
    if (task % 4 === 3) return nowSeconds() + 7 * DAY_S;
    return undefined;
  };
  for (let u = 0; u < size.users; u++) {
    await put({ PK: `USER#${u}`, SK: 'PROFILE', UserId: `${u}`, Name: `User ${u}` });
    for (let t = 0; t < size.tasks; t++) {
      await put({ PK: `USER#${u}`, SK: `TASK#${t}`, TaskId: `${u}-${t}`, Title: `Task ${t} of user ${u}`, Status: 'OPEN', Version: 1, ExpiresAt: expiryOf(t) });
    }
  }
  for (let u = 0; u < size.users; u++) {
    for (let t = 0; t < size.tasks; t++) {
      await setStatus(u, t, 'IN_PROGRESS', 1);
      if (t % 3 === 0) await setStatus(u, t, 'DONE', 1); // a stale writer: it read Version 1 before the change above
      await setStatus(u, t, 'DONE', 2);
    }
  }
  for (let u = 0; u < size.users; u++) {
    signal.throwIfAborted();
    await client.send(new DeleteItemCommand({ TableName: TABLE, Key: { PK: { S: `USER#${u}` }, SK: { S: 'TASK#0' } } }));
    changed();
  }
  // One item that breaks the Task schema: it must reach the dead-letter queue, not stop the rest.
  await put({ PK: 'USER#0', SK: 'TASK#bad', TaskId: 'bad', Title: 'Archived by an old client', Status: 'ARCHIVED', Version: 1 });

  // Time-to-live expiry. On AWS, with TTL enabled on `ExpiresAt`, DynamoDB's own TTL process deletes
  // these items some time after they expire; their stream records carry the DynamoDB service as
  // userIdentity, and dynamo-cdc marks them `expired: true`. DynamoDB Local does not run that process
  // on demand, so the demo makes the same deletes itself, conditional on the expiry as the TTL
  // process's are. They are ordinary deletes in the stream (`expired: false`): the demo does not fake
  // the service's identity.
  // A timer may fire a millisecond before the wall clock turns the second: wait on the clock itself.
  while (nowSeconds() <= lastExpiry) await sleep(Math.max(1, (lastExpiry + 1) * 1000 - Date.now()), undefined, { signal });
  const now = { ':now': { N: String(nowSeconds()) } };
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    signal.throwIfAborted();
    const page = await client.send(
      new ScanCommand({ TableName: TABLE, FilterExpression: 'ExpiresAt < :now', ExpressionAttributeValues: now, ProjectionExpression: 'PK, SK', ExclusiveStartKey: startKey }),
    );
    for (const key of page.Items ?? []) {
      try {
        await client.send(new DeleteItemCommand({ TableName: TABLE, Key: key, ConditionExpression: 'ExpiresAt < :now', ExpressionAttributeValues: now }));
        changed();
        tally.expired++;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
};
