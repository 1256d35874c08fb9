import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { describeError } from '../errors.js';
import { dynamoDbStreamsApi } from '../worker/dynamodb-streams-api.js';
import { resumePosition } from '../worker/checkpoints.js';
import type { IteratorPosition, ShardDescription, StreamsApi } from '../worker/ports.js';
import type { CommandSpec, FlagSpec } from './args.js';
import { helpText, parseFlags, requiredFlag, stringFlag } from './args.js';
import type { AwsTarget } from './aws.js';
import { awsTarget, ENDPOINT_FLAG, explainAwsError, isNotFound, quickClientConfig, REGION_FLAG, whereOf } from './aws.js';
import { findConfigFile, loadConfig } from './config.js';
import { CliError } from './errors.js';
import { CONFIG_FLAG, JSON_FLAG, LEASE_TABLE_FLAG, STREAM_ARN_FLAG } from './flags.js';
import { duration, isoOrNull, table } from './format.js';
import type { CliIo } from './io.js';
import { streamOfTable } from './run.js';

const TABLE_FLAG: FlagSpec = { name: 'table', type: 'string', value: '<name>', help: "The source table, to find its latest stream without a config file." };
const LAG_FLAG: FlagSpec = {
  name: 'lag',
  type: 'boolean',
  help: 'Also read one page (up to 1,000 records) after each open shard\'s checkpoint and report how many records wait and how old the oldest is. Costs a GetShardIterator and a GetRecords per shard.',
};

export const STATUS_SPEC: CommandSpec = {
  name: 'status',
  summary: "show each shard's lease owner, checkpoint, last activity and lag, and the shard lineage as a tree",
  usage: ['status --lease-table <name> [--stream-arn <arn> | --table <name> | --config <file>] [--lag] [--json]'],
  description: [
    "Reads the lease table (a consistent Scan) and the stream's shards (DescribeStream); it never takes or changes a lease, so it is safe to run next to live workers. The stream is --stream-arn, else the latest stream of --table or of the config's table, else every stream the lease table holds leases for.",
    "LAST ACTIVE is the lease's updatedAt: the owner's last write to it (take, renewal every lease-duration / 3, checkpoint, release). The time of a worker's last read is known only inside that process (its /healthz and metrics); a live owner renews every few seconds, so an old LAST ACTIVE on an owned shard means its owner stopped and a peer will take the shard once the lease expires.",
    'CHECKPOINT is a sequence number up to which every record is done, AT_SEQUENCE_NUMBER:<seq> (reading resumes at that record: a worker that started at LATEST or TRIM_HORIZON pins its position to the first record it read, and nothing from it on is done yet), TRIM_HORIZON or LATEST (nothing read yet), or SHARD_END (the shard is finished; its children may be read). STATE is open, closed (no new records; ending sequence number known), gone (trimmed from the stream), or ? when DescribeStream failed.',
  ],
  flags: [LEASE_TABLE_FLAG, STREAM_ARN_FLAG, TABLE_FLAG, CONFIG_FLAG, REGION_FLAG, ENDPOINT_FLAG, LAG_FLAG, JSON_FLAG],
  examples: ['dynamo-cdc status --lease-table tasks-cdc-leases', 'dynamo-cdc status --lease-table tasks-cdc-leases --lag --json | jq \'.streams[0].shards[] | {shardId, owner, lag}\''],
};

/** How far a shard's checkpoint is behind the stream, from one GetRecords page. */
export interface LagReport {
  /** Where the page was read from. */
  readonly from: 'checkpoint' | 'TRIM_HORIZON';
  /** Records after the checkpoint in that page. */
  readonly records: number;
  /** True when the page was full: there may be more. */
  readonly more: boolean;
  /** Creation time of the oldest record not yet checkpointed. */
  readonly oldestPendingAt: string | null;
  /** Creation time of the newest record in the page. */
  readonly newestAt: string | null;
  /** How long the oldest pending record has waited, now − its creation time (1 s resolution). */
  readonly behindMs: number | null;
  /** Why there is no number: trimmed data, a LATEST checkpoint, an error. */
  readonly note?: string;
}

/** One shard of `status --json`. */
export interface ShardReport {
  readonly shardId: string;
  readonly parents: readonly string[];
  /** `held` by an owner, `free` (no owner), or `none`: no worker has created its lease yet. */
  readonly lease: 'held' | 'free' | 'none';
  readonly owner: string | null;
  readonly checkpoint: string | null;
  /** The lease's fencing counter: every take, renewal and release adds one. */
  readonly counter: number | null;
  /** The lease's updatedAt: the owner's last write (take, renewal, checkpoint, release). */
  readonly updatedAt: string | null;
  /** The checkpoint is SHARD_END. */
  readonly finished: boolean;
  /** `open`, `closed`, `gone` (no longer in DescribeStream: trimmed), or `unknown` when DescribeStream failed. */
  readonly shard: 'open' | 'closed' | 'gone' | 'unknown';
  readonly startingSequenceNumber: string | null;
  readonly endingSequenceNumber: string | null;
  readonly lag?: LagReport;
}

/** The lineage: each shard with its children (the shards it split into). */
export interface LineageNode {
  readonly shardId: string;
  readonly children: readonly LineageNode[];
}

export interface StreamReport {
  readonly streamArn: string;
  /** False when DescribeStream failed; `describeError` says why. */
  readonly described: boolean;
  readonly describeError?: string;
  readonly shards: readonly ShardReport[];
  readonly lineage: readonly LineageNode[];
  readonly owners: readonly { readonly owner: string; readonly shards: number }[];
}

/** What `status --json` prints. */
export interface StatusReport {
  readonly leaseTable: string;
  readonly generatedAt: string;
  readonly streams: readonly StreamReport[];
}

interface LeaseItem {
  readonly streamArn: string;
  readonly shardId: string;
  readonly owner: string | undefined;
  readonly counter: number;
  readonly checkpoint: string;
  readonly parents: readonly string[];
  readonly updatedAt: number | undefined;
}

const strings = (value: AttributeValue | undefined): string[] => (value?.L ?? []).flatMap((v) => (v.S !== undefined ? [v.S] : []));

const toLeaseItem = (item: Record<string, AttributeValue>): LeaseItem | undefined => {
  const streamArn = item['streamArn']?.S;
  const shardId = item['shardId']?.S;
  if (streamArn === undefined || shardId === undefined) return undefined;
  const updatedAt = Number(item['updatedAt']?.N);
  return {
    streamArn,
    shardId,
    owner: item['owner']?.S,
    counter: Number(item['counter']?.N ?? 0),
    checkpoint: item['checkpoint']?.S ?? '?',
    parents: strings(item['parents']),
    updatedAt: Number.isFinite(updatedAt) ? updatedAt : undefined,
  };
};

/** Every lease of the table (of one stream when given), read consistently. */
const scanLeases = async (client: DynamoDBClient, tableName: string, streamArn: string | undefined, target: AwsTarget): Promise<LeaseItem[]> => {
  const leases: LeaseItem[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  try {
    do {
      const page = await client.send(
        new ScanCommand({
          TableName: tableName,
          ConsistentRead: true,
          ...(streamArn ? { FilterExpression: '#s = :s', ExpressionAttributeNames: { '#s': 'streamArn' }, ExpressionAttributeValues: { ':s': { S: streamArn } } } : {}),
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const lease = toLeaseItem(item);
        if (lease) leases.push(lease);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  } catch (error) {
    if (isNotFound(error)) {
      throw new CliError(`lease table ${tableName} does not exist in ${whereOf(target)}. Check --lease-table (and --region / --endpoint), or start a worker with --create-lease-table`, { cause: error });
    }
    throw explainAwsError(error, target);
  }
  return leases;
};

const timeOf = (record: unknown): number | undefined => {
  const t = (record as { dynamodb?: { ApproximateCreationDateTime?: unknown } } | undefined)?.dynamodb?.ApproximateCreationDateTime;
  if (t instanceof Date) return t.getTime();
  if (typeof t === 'number') return t * 1000;
  return undefined;
};

const PAGE = 1000;

const measureLag = async (streams: StreamsApi, streamArn: string, row: { shardId: string; checkpoint: string | null }, now: number): Promise<LagReport> => {
  const checkpoint = row.checkpoint;
  const from: LagReport['from'] = checkpoint === null || checkpoint === 'TRIM_HORIZON' ? 'TRIM_HORIZON' : 'checkpoint';
  const empty = { from, records: 0, more: false, oldestPendingAt: null, newestAt: null, behindMs: null };
  if (checkpoint === 'LATEST') return { ...empty, note: 'checkpoint is LATEST: the worker starts at records written after it began' };
  // An AT_SEQUENCE_NUMBER:<seq> checkpoint resumes at that record, a sequence number after it.
  const position: IteratorPosition = (checkpoint === null ? undefined : resumePosition(checkpoint)) ?? { type: 'TRIM_HORIZON' };
  try {
    const iterator = await streams.getShardIterator(streamArn, row.shardId, position);
    const page = await streams.getRecords(iterator, PAGE);
    const oldest = timeOf(page.records[0]);
    const newest = timeOf(page.records.at(-1));
    return {
      from,
      records: page.records.length,
      more: page.records.length >= PAGE,
      oldestPendingAt: isoOrNull(oldest),
      newestAt: isoOrNull(newest),
      behindMs: oldest === undefined ? null : Math.max(0, now - oldest),
    };
  } catch (error) {
    const { name, message } = describeError(error);
    if (name === 'TrimmedDataAccessException') return { ...empty, note: "records after the checkpoint were trimmed (past the stream's 24 h retention)" };
    if (name === 'ResourceNotFoundException') return { ...empty, note: 'the shard is gone from the stream' };
    return { ...empty, note: `${name}: ${message}` };
  }
};

const lineageOf = (shards: readonly ShardReport[]): LineageNode[] => {
  const ids = new Set(shards.map((s) => s.shardId));
  const children = new Map<string, ShardReport[]>();
  const roots: ShardReport[] = [];
  for (const s of shards) {
    // A shard hangs under its first known parent; one whose parents are all gone is a root.
    const parent = s.parents.find((p) => ids.has(p) && p !== s.shardId);
    if (parent === undefined) roots.push(s);
    else children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const seen = new Set<string>();
  const node = (s: ShardReport): LineageNode => {
    seen.add(s.shardId);
    const kids = (children.get(s.shardId) ?? []).filter((c) => !seen.has(c.shardId));
    return { shardId: s.shardId, children: kids.sort((a, b) => a.shardId.localeCompare(b.shardId)).map(node) };
  };
  const tree = roots.sort((a, b) => a.shardId.localeCompare(b.shardId)).map(node);
  // Shards in a parent cycle (a corrupt table) are shown as roots rather than lost.
  for (const s of shards) if (!seen.has(s.shardId)) tree.push(node(s));
  return tree;
};

const reportStream = async (
  streamArn: string,
  leases: readonly LeaseItem[],
  streams: StreamsApi,
  target: AwsTarget,
  withLag: boolean,
  now: number,
): Promise<StreamReport> => {
  let described: ShardDescription[] | undefined;
  let describeFailure: string | undefined;
  try {
    described = await streams.describeShards(streamArn);
  } catch (error) {
    const explained = explainAwsError(error, target);
    if (explained instanceof CliError) throw explained;
    const { name, message } = describeError(error);
    describeFailure = `${name}: ${message}`;
  }
  const byShard = new Map((described ?? []).map((d) => [d.shardId, d]));
  const leaseByShard = new Map(leases.map((l) => [l.shardId, l]));
  const shardIds = [...new Set([...leases.map((l) => l.shardId), ...byShard.keys()])].sort();
  const shards: ShardReport[] = [];
  for (const shardId of shardIds) {
    const lease = leaseByShard.get(shardId);
    const d = byShard.get(shardId);
    const row: ShardReport = {
      shardId,
      parents: lease ? lease.parents : d?.parentShardId ? [d.parentShardId] : [],
      lease: lease === undefined ? 'none' : lease.owner ? 'held' : 'free',
      owner: lease?.owner ?? null,
      checkpoint: lease?.checkpoint ?? null,
      counter: lease?.counter ?? null,
      updatedAt: isoOrNull(lease?.updatedAt),
      finished: lease?.checkpoint === 'SHARD_END',
      shard: described === undefined ? 'unknown' : d === undefined ? 'gone' : d.endingSequenceNumber !== undefined ? 'closed' : 'open',
      startingSequenceNumber: d?.startingSequenceNumber ?? null,
      endingSequenceNumber: d?.endingSequenceNumber ?? null,
    };
    const measurable = withLag && d !== undefined && !row.finished;
    shards.push(measurable ? { ...row, lag: await measureLag(streams, streamArn, row, now) } : row);
  }
  const owners = new Map<string, number>();
  for (const s of shards) if (s.owner) owners.set(s.owner, (owners.get(s.owner) ?? 0) + 1);
  return {
    streamArn,
    described: described !== undefined,
    ...(describeFailure ? { describeError: describeFailure } : {}),
    shards,
    lineage: lineageOf(shards),
    owners: [...owners].map(([owner, count]) => ({ owner, shards: count })).sort((a, b) => a.owner.localeCompare(b.owner)),
  };
};

const lagText = (lag: LagReport | undefined): string => {
  if (!lag) return '';
  if (lag.note) return lag.note;
  if (lag.records === 0) return 'caught up';
  const count = `${lag.records}${lag.more ? '+' : ''} record${lag.records === 1 ? '' : 's'}`;
  return lag.behindMs === null ? count : `${count}, oldest ${duration(lag.behindMs)} old`;
};

const renderText = (report: StatusReport, withLag: boolean, now: number): string => {
  const out: string[] = [];
  if (report.streams.length === 0) out.push(`No leases in ${report.leaseTable}: no worker has started on any stream yet.`);
  for (const stream of report.streams) {
    if (out.length) out.push('');
    const held = stream.shards.filter((s) => s.lease === 'held').length;
    const finished = stream.shards.filter((s) => s.finished).length;
    const owners = stream.owners.map((o) => `${o.owner} (${o.shards})`).join(', ') || 'none';
    out.push(`stream       ${stream.streamArn}`);
    const leased = stream.shards.filter((s) => s.lease !== 'none').length;
    out.push(`lease table  ${report.leaseTable}: ${leased} lease${leased === 1 ? '' : 's'}, ${held} owned, ${finished} finished`);
    out.push(`owners       ${owners}`);
    if (!stream.described) out.push(`DescribeStream failed (${stream.describeError ?? 'unknown'}): shards and lineage come from the lease table only.`);
    if (stream.shards.length === 0) {
      out.push('', 'No shards: no worker has created leases for this stream yet, and the stream lists none.');
      continue;
    }
    const byId = new Map(stream.shards.map((s) => [s.shardId, s]));
    const rows: string[][] = [];
    const walk = (node: LineageNode, prefix: string, branch: string) => {
      const s = byId.get(node.shardId);
      if (s) {
        const owner = s.lease === 'none' ? '(no lease)' : (s.owner ?? '(free)');
        const active = s.updatedAt ? `${duration(now - Date.parse(s.updatedAt))} ago` : '-';
        const shard = s.shard === 'closed' ? 'closed' : s.shard === 'unknown' ? '?' : s.shard;
        rows.push([`${prefix}${branch}${s.shardId}`, owner, s.checkpoint ?? '-', active, shard, ...(withLag ? [lagText(s.lag) || '-'] : [])]);
      }
      const childPrefix = prefix + (branch === '├── ' ? '│   ' : branch === '└── ' ? '    ' : '');
      node.children.forEach((child, i) => walk(child, childPrefix, i === node.children.length - 1 ? '└── ' : '├── '));
    };
    for (const root of stream.lineage) walk(root, '', '');
    out.push('', ...table(['SHARD', 'OWNER', 'CHECKPOINT', 'LAST ACTIVE', 'STATE', ...(withLag ? ['LAG'] : [])], rows));
  }
  return `${out.join('\n')}\n`;
};

/** `dynamo-cdc status`: the lease table and the stream's shards, as a tree or as JSON. */
export const statusCommand = async (argv: readonly string[], io: CliIo): Promise<number> => {
  const { values } = parseFlags(STATUS_SPEC, argv);
  if (values['help']) {
    io.stdout.write(helpText(STATUS_SPEC));
    return 0;
  }
  const leaseTable = requiredFlag(values, io, LEASE_TABLE_FLAG, STATUS_SPEC);
  const target = awsTarget(values, io);
  const withLag = values['lag'] === true;
  const dynamo = new DynamoDBClient(quickClientConfig(target));
  const streamsClient = new DynamoDBStreamsClient(quickClientConfig(target));
  try {
    let streamArn = stringFlag(values, io, STREAM_ARN_FLAG);
    const tableName = stringFlag(values, io, TABLE_FLAG);
    if (!streamArn && tableName) {
      streamArn = await streamOfTable(dynamo, tableName, target, 'Check --table (and --region / --endpoint), or pass --stream-arn');
    } else if (!streamArn) {
      const explicit = stringFlag(values, io, CONFIG_FLAG);
      if (explicit !== undefined || (await findConfigFile(io.cwd, undefined)) !== undefined) {
        const { app, file } = await loadConfig(io.cwd, explicit);
        streamArn = await streamOfTable(dynamo, app.table, target, `Check the table in ${file}, or create it (or pass --stream-arn)`);
      }
    }
    const leases = await scanLeases(dynamo, leaseTable, streamArn, target);
    const streamArns = streamArn ? [streamArn] : [...new Set(leases.map((l) => l.streamArn))].sort();
    const streams = dynamoDbStreamsApi({ client: streamsClient });
    const now = Date.now();
    const report: StatusReport = {
      leaseTable,
      generatedAt: new Date(now).toISOString(),
      streams: await Promise.all(streamArns.map((arn) => reportStream(arn, leases.filter((l) => l.streamArn === arn), streams, target, withLag, now))),
    };
    io.stdout.write(values['json'] ? `${JSON.stringify(report, null, 2)}\n` : renderText(report, withLag, now));
    return 0;
  } finally {
    dynamo.destroy();
    streamsClient.destroy();
  }
};
