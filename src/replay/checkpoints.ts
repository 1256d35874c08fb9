/**
 * A replay's own checkpoints, kept in the worker's lease table under keys of their own
 * (`replay|<id>` and `replay|<id>|<shardId>`) and without the `streamArn` attribute the worker and
 * `dynamo-cdc status` select leases by, so neither ever sees them and the worker's leases are never
 * read or written by a replay.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetItemCommand, PutItemCommand, ScanCommand, TransactWriteItemsCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../errors.js';
import type { ReplayRange } from './range.js';

/** What a replay of the stream fixes at its first run, so that a resumed run sends the same range to the same routes. */
export interface ReplayPlan {
  readonly streamArn: string;
  readonly range: ReplayRange;
  /** Where the replay stops: `range.to`, or the time the first run began (the stream's tip then). */
  readonly to: number;
  /** The chosen routes' descriptions (`Task.modify -> bus`): a resume may add routes to the config, not change these. */
  readonly routes: readonly string[];
}

/** A replay as its store knows it. */
export interface ReplayState {
  readonly plan: ReplayPlan;
  /** True when an earlier run finished the whole range. */
  readonly finished: boolean;
  /** True when this replay existed before this run (it resumes). */
  readonly resumed: boolean;
  /** Per shard: a sequence number (every record up to it is done) or `END` (nothing left in the range). */
  readonly checkpoints: ReadonlyMap<string, string>;
}

/** Where replays of the stream keep their progress. */
export interface ReplayCheckpointStore {
  /**
   * Starts replay `id` with `plan`, or resumes it with the plan it began with (a different
   * stream or other routes is a {@link ConfigError}). `runId` takes the replay over: a run that
   * began earlier cannot write its checkpoints any more.
   */
  begin(id: string, plan: ReplayPlan, runId: string): Promise<ReplayState>;
  /** Writes a shard's checkpoint; false when another run has taken the replay over. */
  save(id: string, runId: string, shardId: string, checkpoint: string): Promise<boolean>;
  /** Marks the replay finished. */
  finish(id: string, runId: string): Promise<void>;
}

/** The checkpoint of a shard with nothing left in the range. */
export const SHARD_DONE = 'END';

export const replayKey = (id: string, shardId?: string): string => `replay|${id}${shardId === undefined ? '' : `|${shardId}`}`;

const samePlan = (a: ReplayPlan, b: ReplayPlan): string | undefined => {
  if (a.streamArn !== b.streamArn) return `on another stream (${b.streamArn})`;
  if (a.routes.join('\n') !== b.routes.join('\n')) return `with other routes (${b.routes.join(', ')})`;
  return undefined;
};

const mismatch = (id: string, what: string): ConfigError =>
  new ConfigError('id', `\`${id}\` names a replay that began ${what}. Pass a new --id for a new replay, or the same sink/route to resume it.`);

/** An in-memory {@link ReplayCheckpointStore}, for tests. */
export class MemoryReplayCheckpoints implements ReplayCheckpointStore {
  readonly replays = new Map<string, { plan: ReplayPlan; runId: string; finished: boolean; checkpoints: Map<string, string> }>();

  begin(id: string, plan: ReplayPlan, runId: string): Promise<ReplayState> {
    const known = this.replays.get(id);
    if (known) {
      const other = samePlan(plan, known.plan);
      if (other) return Promise.reject(mismatch(id, other));
      known.runId = runId;
      return Promise.resolve({ plan: known.plan, finished: known.finished, resumed: true, checkpoints: new Map(known.checkpoints) });
    }
    this.replays.set(id, { plan, runId, finished: false, checkpoints: new Map() });
    return Promise.resolve({ plan, finished: false, resumed: false, checkpoints: new Map() });
  }

  save(id: string, runId: string, shardId: string, checkpoint: string): Promise<boolean> {
    const known = this.replays.get(id);
    if (!known || known.runId !== runId) return Promise.resolve(false);
    known.checkpoints.set(shardId, checkpoint);
    return Promise.resolve(true);
  }

  finish(id: string, runId: string): Promise<void> {
    const known = this.replays.get(id);
    if (known && known.runId === runId) known.finished = true;
    return Promise.resolve();
  }
}

const KEY = 'leaseKey';

const planItem = (plan: ReplayPlan): AttributeValue => ({ S: JSON.stringify(plan) });

const isConditionFailure = (error: unknown): boolean => {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'ConditionalCheckFailedException') return true;
  if (name !== 'TransactionCanceledException') return false;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.some((r) => r.Code === 'ConditionalCheckFailed');
};

/** Options of {@link dynamoDbReplayCheckpoints}. */
export interface DynamoDbReplayCheckpointsOptions {
  /** The worker's lease table (partition key `leaseKey`, see `leaseTableDefinition`). */
  readonly tableName: string;
  readonly client: DynamoDBClient;
}

/**
 * A {@link ReplayCheckpointStore} in the lease table. Items:
 *
 * | `leaseKey` | attributes |
 * |---|---|
 * | `replay\|<id>` | `replayPlan` (JSON), `runId`, `replayStatus` (`running` / `finished`), `updatedAt` |
 * | `replay\|<id>\|<shardId>` | `replayCheckpoint`, `runId`, `updatedAt` |
 *
 * A checkpoint write is a transaction conditional on the replay item's `runId`, so a run that was
 * taken over stops writing. None of these items has `streamArn`: the worker's lease scans (and
 * `dynamo-cdc status`) filter on it and never see them.
 */
export const dynamoDbReplayCheckpoints = (options: DynamoDbReplayCheckpointsOptions): ReplayCheckpointStore => {
  const { client, tableName } = options;
  const now = (): AttributeValue => ({ N: String(Date.now()) });
  return {
    async begin(id, plan, runId) {
      const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: { [KEY]: { S: replayKey(id) } }, ConsistentRead: true }));
      if (!item) {
        try {
          await client.send(
            new PutItemCommand({
              TableName: tableName,
              Item: { [KEY]: { S: replayKey(id) }, replayPlan: planItem(plan), runId: { S: runId }, replayStatus: { S: 'running' }, updatedAt: now() },
              ConditionExpression: 'attribute_not_exists(#k)',
              ExpressionAttributeNames: { '#k': KEY },
            }),
          );
          return { plan, finished: false, resumed: false, checkpoints: new Map() };
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
          return this.begin(id, plan, runId); // another run created it a moment ago: resume it
        }
      }
      const stored = JSON.parse(item['replayPlan']?.S ?? 'null') as ReplayPlan | null;
      if (!stored) throw new Error(`Corrupt replay item \`${replayKey(id)}\` in ${tableName}: no replayPlan`);
      const other = samePlan(plan, stored);
      if (other) throw mismatch(id, other);
      await client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: { [KEY]: { S: replayKey(id) } },
          UpdateExpression: 'SET runId = :run, updatedAt = :now',
          ExpressionAttributeValues: { ':run': { S: runId }, ':now': now() },
        }),
      );
      const checkpoints = new Map<string, string>();
      let start: Record<string, AttributeValue> | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: tableName,
            ConsistentRead: true,
            FilterExpression: 'begins_with(#k, :p)',
            ExpressionAttributeNames: { '#k': KEY },
            ExpressionAttributeValues: { ':p': { S: replayKey(id, '') } },
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        );
        for (const shard of page.Items ?? []) {
          const key = shard[KEY]?.S ?? '';
          const checkpoint = shard['replayCheckpoint']?.S;
          if (checkpoint !== undefined) checkpoints.set(key.slice(replayKey(id, '').length), checkpoint);
        }
        start = page.LastEvaluatedKey;
      } while (start);
      return { plan: stored, finished: item['replayStatus']?.S === 'finished', resumed: true, checkpoints };
    },

    async save(id, runId, shardId, checkpoint) {
      try {
        await client.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: tableName,
                  Key: { [KEY]: { S: replayKey(id) } },
                  ConditionExpression: 'runId = :run',
                  ExpressionAttributeValues: { ':run': { S: runId } },
                },
              },
              {
                Put: {
                  TableName: tableName,
                  Item: { [KEY]: { S: replayKey(id, shardId) }, replayCheckpoint: { S: checkpoint }, runId: { S: runId }, updatedAt: now() },
                },
              },
            ],
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async finish(id, runId) {
      try {
        await client.send(
          new UpdateItemCommand({
            TableName: tableName,
            Key: { [KEY]: { S: replayKey(id) } },
            UpdateExpression: 'SET replayStatus = :done, updatedAt = :now',
            ConditionExpression: 'runId = :run',
            ExpressionAttributeValues: { ':done': { S: 'finished' }, ':now': now(), ':run': { S: runId } },
          }),
        );
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    },
  };
};
