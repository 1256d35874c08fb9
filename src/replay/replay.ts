import { randomUUID } from 'node:crypto';
// Types only: the S3 client is loaded (an optional peer) only when the S3 source is used.
import type { S3Client } from '@aws-sdk/client-s3';
import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { ConfigError } from '../errors.js';
import { parseStreamArn } from '../events.js';
import { importWithPeers } from '../optional-peer.js';
import type { Clock, Logger } from '../ports.js';
import type { Route } from '../routes.js';
import type { StreamsApi } from '../worker/ports.js';
import type { ReplayCheckpointStore, ReplayPlan } from './checkpoints.js';
import { emptyCounts, Sender } from './sender.js';
import type { ReplayCounts } from './sender.js';
import { describeTime, resolveRange } from './range.js';
import type { ReplayRange, TimeInput } from './range.js';
import { routeName, selectRoutes } from './select-routes.js';
import type { UnreadableObject } from './s3-source.js';
import type { ShardReplay } from './stream-source.js';
import { replayFromStream } from './stream-source.js';

/** The stream's retention: records older than this are trimmed. */
export const STREAM_RETENTION_MS = 24 * 3_600_000;

/** The S3 export as a source: the objects an `s3Export` sink of the app wrote. */
export interface S3ReplaySource {
  readonly type: 's3';
  /**
   * The `s3Export` sink of the app whose objects are read (its `name`); its bucket, prefix and
   * client are used. Needed only when the app has more than one.
   * @default the app's only `s3Export` sink
   */
  readonly exportSink?: string;
  /** Reads another bucket than the sink's (a copy, another account). @default the sink's bucket */
  readonly bucket?: string;
  /** @default the sink's prefix; `'cdc/'` (s3Export's default) when `bucket` and `client` are given without a sink */
  readonly prefix?: string;
  /** The S3 client that reads. @default the sink's client */
  readonly client?: S3Client;
  /**
   * `meta.streamArn` of the replayed events (the export's lines do not hold it).
   * @default `arn:aws:dynamodb:<region>::table/<table>/stream/replay`, region from the client
   */
  readonly streamArn?: string;
  /**
   * What an object that cannot be read back (missing permission, bad gzip, a line that is not JSON
   * or not a change event) does: `fail` stops the replay before the hour partition that holds it,
   * so nothing after the gap is sent; `skip` sends the rest. Either way each is reported.
   * @default 'fail'
   */
  readonly onUnreadable?: 'fail' | 'skip';
}

/** The live stream as a source, with checkpoints of the replay's own. */
export interface StreamReplaySource {
  readonly type: 'stream';
  readonly streams: StreamsApi;
  readonly streamArn: string;
  /** Where the replay keeps its checkpoints; needed unless `dryRun` (see `dynamoDbReplayCheckpoints`). */
  readonly checkpoints?: ReplayCheckpointStore;
  /**
   * Names the replay in its checkpoints: run again with the same id to resume where it stopped.
   * @default a new id (`replay-<time>-<random>`), in the report
   */
  readonly id?: string;
  /** Pause after an empty read of an open shard. @default 1000 */
  readonly pollIntervalMs?: number;
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  readonly app: App;
  /** Send through every route to these sinks (by `Sink.name`). At least one sink or route is needed. */
  readonly sinks?: readonly string[];
  /** Send through these routes: `0` or `routes[0]` (place in `routes`), or a description such as `Task.modify -> eventbridge`. */
  readonly routes?: readonly string[];
  readonly source: S3ReplaySource | StreamReplaySource;
  /** Records created at or after this time: epoch ms, a Date, ISO 8601, or a duration before now (`2h`). @default the oldest */
  readonly from?: TimeInput;
  /** Records created before this time. @default the stream's tip when the replay begins (stream); the newest object (S3) */
  readonly to?: TimeInput;
  /** Records at or after this sequence number. */
  readonly fromSequence?: string;
  /** Records at or before this sequence number. */
  readonly toSequence?: string;
  /** Count what would be sent, per sink and route and kind, and send nothing (no checkpoint written). @default false */
  readonly dryRun?: boolean;
  /** Records per engine call. @default 1000 */
  readonly batchSize?: number;
  /** @default a logger that drops everything */
  readonly logger?: Logger;
  /** @default the system clock */
  readonly clock?: Clock;
  /** Stops the replay; what was sent stays checkpointed. */
  readonly signal?: AbortSignal;
}

/** What a replay did (or, dry, would do). */
export interface ReplayReport extends ReplayCounts {
  readonly source: 's3' | 'stream';
  readonly dryRun: boolean;
  /** The replay's id (stream source). */
  readonly id: string | undefined;
  /** True when the stream replay resumed an earlier run with this id. */
  readonly resumed: boolean;
  /** True when an earlier run with this id finished the range: nothing was read or sent. */
  readonly finishedBefore: boolean;
  readonly range: { readonly from: string | null; readonly to: string | null; readonly fromSequence: string | null; readonly toSequence: string | null };
  /** The chosen routes. */
  readonly routes: readonly string[];
  /** S3: objects read. */
  readonly objects: number;
  /** S3: objects that could not be read back. */
  readonly unreadable: readonly UnreadableObject[];
  /** S3: copies of records already read (a record can be in several objects). */
  readonly duplicates: number;
  /** Stream: per shard. */
  readonly shards: readonly ShardReplay[];
  /** Why the replay did not cover the whole range, one line each. Empty when it did. */
  readonly problems: readonly string[];
  /** True when every record of the range was done (delivered, dead-lettered, or taken by no chosen route). */
  readonly complete: boolean;
}

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

interface S3ExportLike {
  readonly name: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
}

const isS3Export = (sink: unknown): sink is S3ExportLike => {
  const s = sink as Partial<S3ExportLike> | null;
  return s !== null && typeof s === 'object' && typeof s.bucket === 'string' && typeof s.prefix === 'string' && typeof s.client === 'object' && s.client !== null;
};

/** The s3Export sink whose objects a replay reads. */
export const exportSinkOf = (app: App, name: string | undefined): S3ExportLike => {
  const exports = [...new Set(app.routes.map((r): unknown => r.sink).filter(isS3Export))];
  if (name !== undefined) {
    const found = exports.find((s) => s.name === name);
    if (!found) throw new ConfigError('exportSink', `\`${name}\` is not an s3Export sink of the app. Its s3Export sinks: ${exports.map((s) => s.name).join(', ') || '(none)'}.`);
    return found;
  }
  if (exports.length === 1) return exports[0] as S3ExportLike;
  if (exports.length === 0) throw new ConfigError('exportSink', 'names no s3Export sink, and the app has none to read from. Add route(...).to(s3Export({ bucket })) to the config, or replay from the stream.');
  throw new ConfigError('exportSink', `must name the s3Export sink to read, as the app has several: ${exports.map((s) => s.name).join(', ')}.`);
};

const rangeText = (range: ReplayRange, to: number | undefined) => ({
  from: range.from === undefined ? null : describeTime(range.from, ''),
  to: to === undefined ? null : describeTime(to, ''),
  fromSequence: range.fromSequence ?? null,
  toSequence: range.toSequence ?? null,
});

const checkRetention = (range: ReplayRange, now: number): void => {
  const oldest = now - STREAM_RETENTION_MS;
  if (range.from !== undefined && range.from < oldest) {
    throw new ConfigError(
      'from',
      `(${new Date(range.from).toISOString()}) is outside the stream's 24 h retention: the oldest record it can hold is from ${new Date(oldest).toISOString()}. Replay older changes from the S3 export (source s3), or start later.`,
    );
  }
  if (range.to !== undefined && range.to <= oldest) {
    throw new ConfigError(
      'to',
      `(${new Date(range.to).toISOString()}) is outside the stream's 24 h retention: the oldest record it can hold is from ${new Date(oldest).toISOString()}, so the range is empty. Replay it from the S3 export (source s3).`,
    );
  }
  if (range.from !== undefined && range.from > now) throw new ConfigError('from', `(${new Date(range.from).toISOString()}) is in the future.`);
  if (range.to !== undefined && range.to > now) {
    throw new ConfigError('to', `(${new Date(range.to).toISOString()}) is in the future; a replay of the stream stops at its tip. Leave it out to stop at the tip.`);
  }
};

/**
 * Sends a range of changes again through chosen routes of the app, from the S3 export or from the
 * live stream, with the engine's order, retry and dead-letter semantics. With `dryRun`, counts
 * what would be sent and sends nothing. Problems that leave part of the range unsent are in the
 * report (`complete: false`, `problems`); a bad option (unknown sink or route, a range outside the
 * stream's retention) is a {@link ConfigError} before anything is read. See docs/replay.md.
 *
 * @example
 * import { replay } from 'dynamo-cdc/replay';
 * const report = await replay({ app, sinks: ['search'], from: '2h', source: { type: 's3' } });
 * if (!report.complete) console.error(report.problems.join('\n'));
 */
export const replay = async (options: ReplayOptions): Promise<ReplayReport> => {
  const { app, source } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silent;
  const dryRun = options.dryRun === true;
  const batchSize = options.batchSize ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000) throw new ConfigError('batchSize', `must be an integer from 1 to 1000, got \`${String(batchSize)}\`.`);
  const chosen: Route[] = selectRoutes(app, { sinks: options.sinks ?? [], routes: options.routes ?? [] });
  const routes = chosen.map((r) => routeName(r, app.routes.indexOf(r)));
  const now = clock.now();
  const range = resolveRange(options, now);
  const counts = emptyCounts();
  const sender = new Sender({ app, routes: chosen, dryRun, logger, clock, counts });
  const base = { dryRun, routes, objects: 0, unreadable: [] as UnreadableObject[], duplicates: 0, shards: [] as ShardReplay[], finishedBefore: false };

  if (source.type === 's3') {
    const sink = source.bucket !== undefined && source.client !== undefined ? undefined : exportSinkOf(app, source.exportSink);
    const client = source.client ?? (sink as S3ExportLike).client;
    const region = await Promise.resolve(client.config.region()).catch(() => '');
    const streamArn = source.streamArn ?? `arn:aws:dynamodb:${region}::table/${app.table}/stream/replay`;
    if (parseStreamArn(streamArn) === undefined) throw new ConfigError('source.streamArn', `must be a DynamoDB stream ARN, got \`${streamArn}\`.`);
    const { replayFromS3 } = await importWithPeers('dynamo-cdc/replay (source s3)', ['@aws-sdk/client-s3'], () => import('./s3-source.js'));
    const result = await replayFromS3({
      client,
      bucket: source.bucket ?? (sink as S3ExportLike).bucket,
      // Without a sink to ask (a copy read with a bucket and client of its own), the export's default.
      prefix: source.prefix ?? sink?.prefix ?? 'cdc/',
      table: app.table,
      streamArn,
      range,
      onUnreadable: source.onUnreadable ?? 'fail',
      dryRun,
      batchSize,
      sender,
      clock,
      logger,
      signal: options.signal,
    });
    const problems = [...result.problems];
    if (result.unreadable.length > 0 && problems.length === 0) {
      problems.push(`${result.unreadable.length} export object${result.unreadable.length === 1 ? '' : 's'} could not be read${dryRun ? '' : '; their records were not sent'}`);
    }
    return { ...base, ...counts, source: 's3', id: undefined, resumed: false, range: rangeText(range, range.to), objects: result.objects, unreadable: result.unreadable, duplicates: result.duplicates, problems, complete: problems.length === 0 };
  }

  checkRetention(range, now);
  if (!dryRun && source.checkpoints === undefined) throw new ConfigError('source.checkpoints', 'is needed to replay the stream (the replay keeps its own checkpoints). Pass dynamoDbReplayCheckpoints({ tableName: <lease table>, client }), or set dryRun.');
  const id = source.id ?? `replay-${new Date(now).toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomUUID().slice(0, 8)}`;
  const runId = randomUUID();
  let plan: ReplayPlan = { streamArn: source.streamArn, range, to: range.to ?? now, routes: chosen.map((r) => r.description) };
  let saved: ReadonlyMap<string, string> = new Map();
  let resumed = false;
  if (!dryRun && source.checkpoints) {
    const state = await source.checkpoints.begin(id, plan, runId);
    plan = { ...state.plan, range: { ...state.plan.range } };
    saved = state.checkpoints;
    resumed = state.resumed;
    if (state.finished) {
      return { ...base, ...counts, source: 'stream', id, resumed, finishedBefore: true, range: rangeText(plan.range, plan.to), problems: [], complete: true };
    }
  }
  const result = await replayFromStream({
    streams: source.streams,
    streamArn: source.streamArn,
    range: plan.range,
    to: plan.to,
    checkpoints: !dryRun && source.checkpoints ? { store: source.checkpoints, id, runId, saved } : undefined,
    sender,
    batchSize,
    pollIntervalMs: source.pollIntervalMs ?? 1000,
    clock,
    logger,
    signal: options.signal,
  });
  const complete = result.problems.length === 0 && result.shards.every((s) => s.state === 'done');
  if (complete && !dryRun && source.checkpoints) await source.checkpoints.finish(id, runId);
  return { ...base, ...counts, source: 'stream', id, resumed, range: rangeText(plan.range, plan.to), shards: result.shards, problems: result.problems, complete };
};
