import { randomBytes } from 'node:crypto';
import type { AttributeValue, TableDescription } from '@aws-sdk/client-dynamodb';
import { DescribeTableCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine, isDone } from '../core/engine.js';
import type { EngineObserver, RecordStatus } from '../core/engine.js';
import { ConfigError, describeError } from '../errors.js';
import { parseStreamArn } from '../events.js';
import { createLogger } from '../observability/logger.js';
import type { Clock, Logger } from '../ports.js';
import { dynamoDbLeaseStore, ensureLeaseTable, leaseKeyOf } from '../worker/dynamodb-lease-store.js';
import { dynamoDbStreamsApi } from '../worker/dynamodb-streams-api.js';
import type { LeaseStore, StreamsApi } from '../worker/ports.js';
import { BackfillRetentionError } from './errors.js';
import { ReadBudget } from './read-budget.js';
import { backfillRecord } from './records.js';
import type { BackfillRecordContext, ScannedItem } from './records.js';
import { BackfillStateStore } from './state-store.js';
import type { BackfillState, SegmentState } from './state-store.js';

/** What the table looked like before the backfill started, and how long it should take. */
export interface BackfillEstimate {
  /** DescribeTable's ItemCount (DynamoDB refreshes it about every six hours). */
  readonly items: number;
  /** DescribeTable's TableSizeBytes. */
  readonly bytes: number;
  /** Read capacity units a full Scan costs: half a unit per 4 KB read (eventually consistent), one with `consistentRead`. */
  readonly readUnits: number;
  /** At `maxRcu`, the time the Scan needs; `undefined` without a budget. */
  readonly durationMs: number | undefined;
}

/** A progress report, after every page. */
export interface BackfillProgress {
  readonly id: string;
  /** Items done (delivered, dead-lettered or unrouted), resumed segments' earlier items included. */
  readonly items: number;
  /** The estimate's item count, or more once more were read. */
  readonly estimatedItems: number;
  readonly segmentsDone: number;
  readonly totalSegments: number;
  /** Read capacity units this run consumed. */
  readonly consumedReadUnits: number;
  /** Items per second in this run. */
  readonly itemsPerSecond: number;
  /** Time left at the current rate; `undefined` until there is a rate. */
  readonly etaMs: number | undefined;
  readonly elapsedMs: number;
}

/** What a backfill did. */
export interface BackfillResult {
  readonly id: string;
  /** `done`: every segment finished; `stopped`: the signal aborted it (resume with the id); `dry-run`: nothing was read or written. */
  readonly status: 'done' | 'stopped' | 'dry-run';
  /** True when it continued an earlier, unfinished backfill. */
  readonly resumed: boolean;
  readonly table: string;
  readonly streamArn: string;
  readonly totalSegments: number;
  /** When the Scan started, epoch ms; stream changes from then on are delivered by the stream. */
  readonly startedAt: number;
  /** Items done in this run, by what became of them (delivered, dead-lettered, unrouted). */
  readonly counts: Readonly<Record<'delivered' | 'dead-lettered' | 'unrouted', number>>;
  /** Items done over every run of this backfill. */
  readonly items: number;
  readonly consumedReadUnits: number;
  readonly durationMs: number;
  /** Leases created at TRIM_HORIZON (or, in a dry run, that would be), so the stream is read from before the Scan. */
  readonly leasesCreated: number;
  /** Leases moved from an unpinned LATEST back to TRIM_HORIZON. */
  readonly leasesRewound: number;
  readonly estimate: BackfillEstimate;
}

/** Options of {@link backfill}. */
export interface BackfillOptions {
  readonly app: App;
  /** The lease table of the workers that read the table's stream (the same as `dynamo-cdc run --lease-table`). */
  readonly leaseTable: string;
  /** Create the lease table when it is missing. @default false */
  readonly createLeaseTable?: boolean;
  /** The stream the backfill hands off to. @default the table's LatestStreamArn */
  readonly streamArn?: string;
  /** Parallel Scan segments (Scan's TotalSegments), 1 to 1000. @default 4 */
  readonly segments?: number;
  /**
   * Read capacity units per second the Scan may consume, across all segments, measured from
   * `ReturnConsumedCapacity`. Keeps production reads from being throttled. @default no limit
   */
  readonly maxRcu?: number;
  /** Items per Scan page (Scan's `Limit`). @default DynamoDB's: up to 1 MB per page */
  readonly pageSize?: number;
  /**
   * Strongly consistent Scan pages (twice the read units). An eventually consistent page may miss
   * a write made within about a second before it was read; the stream delivers that write too
   * unless a running worker's checkpoint is already past it (a new route on a running worker).
   * @default false
   */
  readonly consistentRead?: boolean;
  /**
   * Continue an unfinished backfill: its id, or `'auto'` for the one unfinished backfill of the
   * same table and segment count in the lease table (a new one when there is none), or `false` to
   * always start a new one.
   * @default 'auto'
   */
  readonly resume?: string | 'auto' | false;
  /** Check everything and estimate, read and write nothing. @default false */
  readonly dryRun?: boolean;
  /** The stream's retention. @default 24 h */
  readonly retentionMs?: number;
  /** A backfill estimated to need more than `retentionMs - retentionMarginMs` is refused before it starts. @default 2 h */
  readonly retentionMarginMs?: number;
  /** Called after every page. A callback that throws is logged and ignored. */
  readonly onProgress?: (progress: BackfillProgress) => void;
  /** Stops the backfill after the pages in flight are done and checkpointed. */
  readonly signal?: AbortSignal;
  /** @default the AWS SDK's */
  readonly region?: string;
  /** DynamoDB (and Streams) endpoint, for DynamoDB Local. */
  readonly endpoint?: string;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A DynamoDB client to use instead of building one (then `region`, `endpoint`, `credentials` are ignored for it). */
  readonly client?: DynamoDBClient;
  /** The stream's API (tests); @default one built like `client` */
  readonly streams?: StreamsApi;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly observer?: EngineObserver;
  /** Id of a new backfill. @default a random one */
  readonly id?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** The segments' progress is one item in the lease table (about 200 bytes a segment, 400 KB at most). */
const MAX_SEGMENTS = 1000;

const show = (value: unknown): string => `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;

const checkOptions = (o: BackfillOptions): void => {
  if (typeof o.leaseTable !== 'string' || o.leaseTable === '') throw new ConfigError('leaseTable', `must be the lease table of the stream's workers, got ${show(o.leaseTable)}.`);
  const segments = o.segments ?? 4;
  if (!Number.isInteger(segments) || segments < 1 || segments > MAX_SEGMENTS) {
    throw new ConfigError('segments', `must be an integer from 1 to ${MAX_SEGMENTS} (Scan's TotalSegments; the progress of every segment is kept in one lease-table item), got ${show(segments)}.`);
  }
  if (o.maxRcu !== undefined && (typeof o.maxRcu !== 'number' || !Number.isFinite(o.maxRcu) || o.maxRcu <= 0)) {
    throw new ConfigError('maxRcu', `must be a number of read capacity units per second > 0, got ${show(o.maxRcu)}. Leave it out for no limit.`);
  }
  if (o.pageSize !== undefined && (!Number.isInteger(o.pageSize) || o.pageSize < 1)) throw new ConfigError('pageSize', `must be an integer >= 1, got ${show(o.pageSize)}.`);
};

/** The table's description, with its stream checked: one {@link ConfigError} per way it cannot be backfilled. */
const describeSource = async (client: DynamoDBClient, table: string, streamArn: string | undefined): Promise<{ description: TableDescription; streamArn: string }> => {
  let description: TableDescription | undefined;
  try {
    description = (await client.send(new DescribeTableCommand({ TableName: table }))).Table;
  } catch (error) {
    if ((error as { name?: unknown }).name === 'ResourceNotFoundException') {
      throw new ConfigError('table', `\`${table}\` does not exist. Check the table in the config, the region and the endpoint.`, { cause: error });
    }
    throw error;
  }
  if (!description) throw new ConfigError('table', `\`${table}\` could not be described.`);
  const arn = streamArn ?? description.LatestStreamArn;
  if (!arn || description.StreamSpecification?.StreamEnabled === false) {
    throw new ConfigError(
      'table',
      `\`${table}\` has no stream: a backfill hands off to the stream, so the changes made while it runs are delivered too. Enable a stream with view type NEW_AND_OLD_IMAGES (or NEW_IMAGE).`,
    );
  }
  const viewType = description.StreamSpecification?.StreamViewType;
  if (viewType === 'KEYS_ONLY' || viewType === 'OLD_IMAGE') {
    throw new ConfigError(
      'table',
      `\`${table}\` has a ${viewType} stream, which carries no new images: the changes made during and after the backfill could not be delivered as events. Switch the stream to NEW_AND_OLD_IMAGES (or NEW_IMAGE) first.`,
    );
  }
  return { description, streamArn: arn };
};

const estimateOf = (description: TableDescription, maxRcu: number | undefined, consistent: boolean): BackfillEstimate => {
  const items = description.ItemCount ?? 0;
  const bytes = description.TableSizeBytes ?? 0;
  const readUnits = Math.ceil(bytes / 4096) / (consistent ? 1 : 2);
  return { items, bytes, readUnits, durationMs: maxRcu === undefined ? undefined : Math.ceil((readUnits / maxRcu) * 1000) };
};

const hours = (ms: number): string => `${(ms / 3_600_000).toFixed(1)} h`;

const newId = (clock: Clock): string => `${clock.now().toString(36)}${randomBytes(3).toString('hex')}`;

/** Every shard of the stream gets a lease at a position no later than now (see docs/backfill.md). */
const prepareLeases = async (
  streams: StreamsApi,
  leases: LeaseStore,
  state: BackfillStateStore | undefined,
  streamArn: string,
  logger: Logger,
): Promise<{ created: number; rewound: number }> => {
  const shards = await streams.describeShards(streamArn);
  const existing = new Map((await leases.list(streamArn)).map((l) => [l.shardId, l]));
  let created = 0;
  let rewound = 0;
  for (const shard of shards) {
    const lease = existing.get(shard.shardId);
    if (!lease) {
      if (!state) {
        created++; // dry run: counted, not written
        continue;
      }
      // TRIM_HORIZON is before the Scan; a lease a worker created meanwhile keeps its own position, which is before it too.
      if (await leases.create({ streamArn, shardId: shard.shardId, parents: shard.parentShardId ? [shard.parentShardId] : [], checkpoint: 'TRIM_HORIZON' })) {
        created++;
        logger.info({ shardId: shard.shardId }, 'backfill: lease created at TRIM_HORIZON so the stream is read from before the Scan');
      }
    } else if (lease.checkpoint === 'LATEST') {
      if (!state) {
        rewound++;
        continue;
      }
      let moved = false;
      let current = lease;
      // A holder renewing moves the counter under us; a few tries, then the holder's reader (which read from before the Scan) keeps it.
      for (let attempt = 0; attempt < 3 && !moved && current.checkpoint === 'LATEST'; attempt++) {
        moved = await state.rewindLatestLease(leaseKeyOf(streamArn, shard.shardId), current.counter);
        if (!moved) current = (await leases.list(streamArn)).find((l) => l.shardId === shard.shardId) ?? current;
      }
      if (moved) {
        rewound++;
        logger.info({ shardId: shard.shardId }, 'backfill: unpinned LATEST lease moved back to TRIM_HORIZON so the stream is read from before the Scan');
      } else if (current.checkpoint === 'LATEST') {
        logger.warn({ shardId: shard.shardId, owner: current.owner }, 'backfill: a LATEST lease could not be moved back; its holder reads from before the Scan, but if it fails before reading a record the changes made meanwhile are missed');
      }
    }
  }
  return { created, rewound };
};

/**
 * Sends every item of the table through the app's routes as a `backfill` event, then leaves the
 * rest to the stream: before the Scan starts, every shard of the stream gets a lease in the lease
 * table at a position no later than the Scan's start (TRIM_HORIZON for a shard without one), so a
 * worker delivers every change made during and after the backfill. The Scan runs in `segments`
 * parallel segments within the `maxRcu` budget; each segment's position is checkpointed in the
 * lease table once a page is done (delivered, dead-lettered or unrouted), so a killed backfill
 * resumes where it stopped. Refused before it starts when it cannot finish within the stream's
 * retention; stopped with a {@link BackfillRetentionError} if it runs past it. See docs/backfill.md.
 *
 * @example
 * import { backfill } from 'dynamo-cdc/backfill';
 * const result = await backfill({ app, leaseTable: 'tasks-cdc-leases', segments: 8, maxRcu: 500 });
 * console.log(`${result.items} items backfilled; start the worker (or keep it running) to follow the stream`);
 */
export const backfill = async (options: BackfillOptions): Promise<BackfillResult> => {
  checkOptions(options);
  const { app } = options;
  const clock = options.clock ?? systemClock;
  const logger = (options.logger ?? createLogger()).child({ backfill: true });
  const totalSegments = options.segments ?? 4;
  const retentionMs = options.retentionMs ?? DAY_MS;
  const marginMs = options.retentionMarginMs ?? 2 * 60 * 60 * 1000;
  const clientConfig = {
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 3,
  };
  const client = options.client ?? new DynamoDBClient(clientConfig);
  const streamsClient = options.streams ? undefined : new DynamoDBStreamsClient(clientConfig);
  try {
    const { description, streamArn } = await describeSource(client, app.table, options.streamArn);
    const estimate = estimateOf(description, options.maxRcu, options.consistentRead ?? false);
    const keyNames = (description.KeySchema ?? []).map((k) => k.AttributeName as string);
    const budgetMs = retentionMs - marginMs;
    if (estimate.durationMs !== undefined && estimate.durationMs > budgetMs) {
      const needed = Math.ceil(estimate.readUnits / (budgetMs / 1000));
      throw new ConfigError(
        'maxRcu',
        `(${options.maxRcu}) is too low to backfill \`${app.table}\` (about ${estimate.items} items, ${estimate.bytes} bytes, ${estimate.readUnits} read units) in time: it would take about ${hours(estimate.durationMs)}, and the stream keeps changes for ${hours(retentionMs)}, so the changes made during the backfill must be read within ${hours(budgetMs)}. Raise it to at least ${needed}.`,
      );
    }
    const streams = options.streams ?? dynamoDbStreamsApi({ client: streamsClient as DynamoDBStreamsClient });
    const leases = dynamoDbLeaseStore({ tableName: options.leaseTable, client });
    const store = new BackfillStateStore(client, options.leaseTable);

    if (options.dryRun) {
      let planned = { created: 0, rewound: 0 };
      const leaseTableExists = await client.send(new DescribeTableCommand({ TableName: options.leaseTable })).then(
        () => true,
        (error: unknown) => {
          if ((error as { name?: unknown }).name === 'ResourceNotFoundException') return false;
          throw error;
        },
      );
      if (!leaseTableExists && !options.createLeaseTable) {
        throw new ConfigError('leaseTable', `names table \`${options.leaseTable}\`, which does not exist. Pass createLeaseTable (CLI: --create-lease-table), or point it at the workers' lease table.`);
      }
      if (leaseTableExists) planned = await prepareLeases(streams, leases, undefined, streamArn, logger);
      else planned = { created: (await streams.describeShards(streamArn)).length, rewound: 0 };
      return {
        id: '(dry run)', status: 'dry-run', resumed: false, table: app.table, streamArn, totalSegments, startedAt: clock.now(),
        counts: { delivered: 0, 'dead-lettered': 0, unrouted: 0 }, items: 0, consumedReadUnits: 0, durationMs: 0,
        leasesCreated: planned.created, leasesRewound: planned.rewound, estimate,
      };
    }

    await ensureLeaseTable({ client, tableName: options.leaseTable, create: options.createLeaseTable ?? false });

    let state: BackfillState | undefined;
    const resume = options.resume ?? 'auto';
    if (typeof resume === 'string' && resume !== 'auto') {
      state = await store.get(resume);
      if (!state) throw new ConfigError('resume', `\`${resume}\` is no backfill in lease table \`${options.leaseTable}\`. Leave it out to start a new one.`);
      if (state.table !== app.table) throw new ConfigError('resume', `\`${resume}\` is a backfill of table \`${state.table}\`, not \`${app.table}\`.`);
      if (state.status === 'done') throw new ConfigError('resume', `\`${resume}\` finished already. Leave it out to start a new one.`);
    } else if (resume === 'auto') {
      state = (await store.unfinished(app.table)).find((s) => s.totalSegments === totalSegments && s.streamArn === streamArn);
    }
    const resumed = state !== undefined;
    if (state) {
      const elapsed = clock.now() - state.startedAt;
      if (elapsed > budgetMs) {
        throw new ConfigError(
          'resume',
          `backfill \`${state.id}\` started ${hours(elapsed)} ago; the changes made since its start may be trimmed from the stream (kept ${hours(retentionMs)}) before a worker reads them. Start a new backfill (resume: false, CLI: --no-resume).`,
        );
      }
      if (state.status === 'failed') await store.setStatus(state.id, 'running');
      logger.info({ id: state.id, segmentsDone: state.segments.filter((s) => s.done).length }, 'backfill: resuming');
    }

    // The leases first, then the start time: every lease's position is then no later than the Scan's start.
    const prepared = await prepareLeases(streams, leases, store, streamArn, logger);
    if (!state) {
      state = {
        id: options.id ?? newId(clock),
        table: app.table,
        streamArn,
        startedAt: clock.now(),
        totalSegments,
        status: 'running',
        segments: Array.from({ length: totalSegments }, () => ({ lastKey: undefined, done: false, items: 0 })),
      };
      await store.create(state);
      logger.info({ id: state.id, table: app.table, segments: totalSegments, estimatedItems: estimate.items }, 'backfill: started');
    }
    const run = new BackfillRun({ options, app, client, store, state, keyNames, streamArn, region: parseStreamArn(streamArn)?.region, clock, logger, estimate, retentionMs, budgetMs });
    const outcome = await run.run();
    return { ...outcome, resumed, table: app.table, streamArn, totalSegments, startedAt: state.startedAt, leasesCreated: prepared.created, leasesRewound: prepared.rewound, estimate };
  } finally {
    if (!options.client) client.destroy();
    streamsClient?.destroy();
  }
};

interface RunParts {
  readonly options: BackfillOptions;
  readonly app: App;
  readonly client: DynamoDBClient;
  readonly store: BackfillStateStore;
  readonly state: BackfillState;
  readonly keyNames: readonly string[];
  readonly streamArn: string;
  readonly region: string | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly estimate: BackfillEstimate;
  readonly retentionMs: number;
  readonly budgetMs: number;
}

interface Page {
  readonly items: ScannedItem[];
  readonly lastKey: Record<string, AttributeValue> | undefined;
  readonly scannedAt: number;
}

/** Longest pause between two attempts at a page whose records are not all done. */
const MAX_PAGE_RETRY_MS = 30_000;

/** One run of a backfill: the segments' loops, the budget, the counts. */
class BackfillRun {
  readonly #p: RunParts;
  readonly #engine: Engine;
  readonly #budget: ReadBudget | undefined;
  readonly #segments: SegmentState[];
  readonly #abort = new AbortController();
  readonly #started: number;
  readonly counts = { delivered: 0, 'dead-lettered': 0, unrouted: 0 };
  #consumed = 0;
  #itemsThisRun = 0;
  #warnedRetention = false;
  #failure: unknown;

  constructor(parts: RunParts) {
    this.#p = parts;
    this.#engine = new Engine({ app: parts.app, logger: parts.logger, clock: parts.clock, ...(parts.options.observer ? { observer: parts.options.observer } : {}) });
    this.#budget = parts.options.maxRcu === undefined ? undefined : new ReadBudget(parts.options.maxRcu, parts.clock);
    this.#segments = [...parts.state.segments];
    this.#started = parts.clock.now();
    const outer = parts.options.signal;
    if (outer) {
      if (outer.aborted) this.#abort.abort(outer.reason);
      else outer.addEventListener('abort', () => this.#abort.abort(outer.reason), { once: true });
    }
  }

  get #signal(): AbortSignal {
    return this.#abort.signal;
  }

  async run(): Promise<Pick<BackfillResult, 'id' | 'status' | 'counts' | 'items' | 'consumedReadUnits' | 'durationMs'>> {
    const { state, store, logger, clock } = this.#p;
    await Promise.all(this.#segments.map((_, i) => this.#segment(i)));
    const items = this.#segments.reduce((n, s) => n + s.items, 0);
    const result = { id: state.id, counts: { ...this.counts }, items, consumedReadUnits: this.#consumed, durationMs: clock.now() - this.#started };
    if (this.#failure !== undefined) {
      await store.setStatus(state.id, 'failed', describeError(this.#failure).message).catch(() => {});
      throw this.#failure;
    }
    if (this.#segments.every((s) => s.done)) {
      await store.setStatus(state.id, 'done');
      logger.info({ id: state.id, items, consumedReadUnits: this.#consumed }, 'backfill: done');
      return { ...result, status: 'done' };
    }
    logger.warn({ id: state.id, items }, 'backfill: stopped before the end; resume it with its id');
    return { ...result, status: 'stopped' };
  }

  /** Stops every segment after a failure; the first failure is the one reported. */
  #fail(error: unknown): void {
    this.#failure ??= error;
    this.#abort.abort(error);
  }

  async #segment(segment: number): Promise<void> {
    let current = this.#segments[segment] as SegmentState;
    if (current.done) return;
    let lastCost = 1;
    const read = (startKey: Record<string, AttributeValue> | undefined): Promise<Page> => this.#read(segment, startKey, lastCost).then((p) => {
      lastCost = Math.max(1, p.cost);
      return p;
    });
    try {
      // One page read ahead while the previous one is delivered: the Scan and the sinks overlap.
      let next: Promise<Page> | undefined = read(current.lastKey);
      while (next && !this.#signal.aborted) {
        const page: Page = await next;
        next = page.lastKey && !this.#signal.aborted ? read(page.lastKey) : undefined;
        // Keeps a read ahead that fails while this page is delivered from being an unhandled rejection; it is awaited next turn.
        next?.catch(() => {});
        this.#checkRetention();
        const delivered = await this.#deliver(segment, page);
        if (!delivered) break;
        current = { lastKey: page.lastKey, done: page.lastKey === undefined, items: current.items + page.items.length };
        // Only now, with every item of the page done, may the segment's position move past it.
        await this.#p.store.saveSegment(this.#p.state.id, segment, current);
        this.#segments[segment] = current;
        this.#itemsThisRun += page.items.length;
        this.#report();
      }
    } catch (error) {
      // Once stopped (by the caller, or by another segment's failure) what fails here is the stop itself.
      if (this.#signal.aborted) return;
      this.#fail(error);
    }
  }

  #checkRetention(): void {
    const { clock, state, retentionMs, budgetMs, logger } = this.#p;
    const elapsed = clock.now() - state.startedAt;
    if (elapsed > retentionMs) {
      throw new BackfillRetentionError(
        `backfill ${state.id} has run ${hours(elapsed)}, past the stream's retention (${hours(retentionMs)}): the changes made at its start may be trimmed before a worker reads them, so the hand-off to the stream is no longer gap-free. It was stopped; start a new backfill with a higher read budget (or more segments).`,
      );
    }
    if (elapsed > budgetMs && !this.#warnedRetention) {
      this.#warnedRetention = true;
      logger.error({ id: state.id, elapsedMs: elapsed, retentionMs }, "backfill: close to the stream's retention; it stops when it reaches it");
    }
  }

  async #read(segment: number, startKey: Record<string, AttributeValue> | undefined, reserve: number): Promise<Page & { cost: number }> {
    const { client, app, options, clock } = this.#p;
    await this.#budget?.reserve(reserve, this.#signal);
    const response = await client.send(
      new ScanCommand({
        TableName: app.table,
        Segment: segment,
        TotalSegments: this.#p.state.totalSegments,
        ReturnConsumedCapacity: 'TOTAL',
        ...(options.consistentRead ? { ConsistentRead: true } : {}),
        ...(options.pageSize !== undefined ? { Limit: options.pageSize } : {}),
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
      { abortSignal: this.#signal },
    );
    const cost = response.ConsumedCapacity?.CapacityUnits ?? 0;
    this.#consumed += cost;
    this.#budget?.settle(reserve, cost);
    return { items: (response.Items ?? []) as ScannedItem[], lastKey: response.LastEvaluatedKey, scannedAt: clock.now(), cost };
  }

  /**
   * Delivers a page until every item is done; a record not done (its lane blocked: no dead-letter
   * queue, or the queue failed) is tried again after a pause, as a worker retries a batch. False
   * when the run stopped first: the page is then not checkpointed.
   */
  async #deliver(segment: number, page: Page): Promise<boolean> {
    const { state, keyNames, streamArn, region, clock, logger } = this.#p;
    const ctx: BackfillRecordContext = { streamArn, region, keyNames, info: { id: state.id, segment, totalSegments: state.totalSegments, startedAt: state.startedAt, scannedAt: page.scannedAt } };
    let records: unknown[] = page.items.map((item) => backfillRecord(item, ctx));
    for (let attempt = 1; records.length > 0; attempt++) {
      const outcome = await this.#engine.process(records, { streamArn, signal: this.#signal });
      const left: unknown[] = [];
      outcome.statuses.forEach((status: RecordStatus, i) => {
        if (isDone(status)) {
          if (status === 'delivered' || status === 'skipped') this.counts.delivered++;
          else if (status === 'dead-lettered') this.counts['dead-lettered']++;
          else this.counts.unrouted++;
        } else left.push(records[i]);
      });
      records = left;
      if (records.length === 0) return true;
      if (this.#signal.aborted) return false;
      const delayMs = Math.min(MAX_PAGE_RETRY_MS, 1000 * 2 ** (attempt - 1));
      logger.warn({ id: state.id, segment, notDone: records.length, attempt, delayMs }, 'backfill: items of a page are not done (a lane is blocked); trying them again');
      try {
        await clock.sleep(delayMs, this.#signal);
      } catch {
        return false;
      }
    }
    return true;
  }

  #report(): void {
    const { options, state, clock, estimate, logger } = this.#p;
    if (!options.onProgress) return;
    const elapsedMs = clock.now() - this.#started;
    const items = this.#segments.reduce((n, s) => n + s.items, 0);
    const estimatedItems = Math.max(estimate.items, items);
    const itemsPerSecond = elapsedMs > 0 ? (this.#itemsThisRun / elapsedMs) * 1000 : 0;
    try {
      options.onProgress({
        id: state.id,
        items,
        estimatedItems,
        segmentsDone: this.#segments.filter((s) => s.done).length,
        totalSegments: state.totalSegments,
        consumedReadUnits: this.#consumed,
        itemsPerSecond,
        etaMs: itemsPerSecond > 0 ? ((estimatedItems - items) / itemsPerSecond) * 1000 : undefined,
        elapsedMs,
      });
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'backfill: the progress callback threw; ignored');
    }
  }
}
