import type { App } from '../app.js';
import { Engine } from '../core/engine.js';
import type { BatchOutcome, ProcessOptions, RecordStatus } from '../core/engine.js';
import type { ChangeEvent, ChangeKind, DecodeOptions } from '../events.js';
import type { Clock, Logger } from '../ports.js';
import type { Route } from '../routes.js';
import { routeName } from './select-routes.js';

/** Per kind of change, how many records. */
export type KindCounts = Partial<Record<ChangeKind, number>>;

/** What a replay counted: per sink and per route, per kind, the records routed there. */
export interface ReplayCounts {
  /** Records in the range (each once, duplicates of the S3 export left out). */
  records: number;
  /** Per sink name, per kind: records the chosen routes send (or, in a dry run, would send) to it. */
  readonly bySink: Record<string, KindCounts>;
  /** Per route (`routes[0] (Task.modify -> eventbridge)`), per kind. */
  readonly byRoute: Record<string, KindCounts>;
  /** Records in the range that no chosen route takes. */
  unrouted: number;
  /** Records that cannot be decoded or whose route throws: the engine dead-letters them. */
  invalid: number;
  /** What became of the records sent (all zero in a dry run). */
  readonly statuses: Record<RecordStatus, number>;
}

export const emptyCounts = (): ReplayCounts => ({
  records: 0,
  bySink: {},
  byRoute: {},
  unrouted: 0,
  invalid: 0,
  statuses: { delivered: 0, 'dead-lettered': 0, unrouted: 0, skipped: 0, replicated: 0, blocked: 0, unfinished: 0 },
});

/** What a rebuilt record's decoding must take from elsewhere than the record: see {@link ReplayEngine}. */
export interface Overrides {
  readonly shardId: string | undefined;
  readonly changed: readonly string[] | undefined;
}

/**
 * The engine, with one difference for records rebuilt from the S3 export: their shard and their
 * `changed` list come from the exported line rather than from decoding (the line knows the shard,
 * and `changed` was computed from the original images, whose sets and binaries JSON turned into
 * arrays and strings). Records without overrides decode as in the stream.
 */
class ReplayEngine extends Engine {
  readonly overrides = new WeakMap<object, Overrides>();

  override decode(raw: unknown, options: DecodeOptions): ChangeEvent {
    const extra = raw !== null && typeof raw === 'object' ? this.overrides.get(raw) : undefined;
    if (extra === undefined) return super.decode(raw, options);
    const event = super.decode(raw, { ...options, ...(extra.shardId !== undefined ? { shardId: extra.shardId } : {}) });
    return extra.changed === undefined ? event : ({ ...event, changed: extra.changed } as ChangeEvent);
  }
}

export interface SenderOptions {
  readonly app: App;
  /** The routes chosen; the engine runs with these only. */
  readonly routes: readonly Route[];
  readonly dryRun: boolean;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly counts: ReplayCounts;
}

const add = (table: Record<string, KindCounts>, name: string, kind: ChangeKind): void => {
  const row = table[name] ?? (table[name] = {});
  row[kind] = (row[kind] ?? 0) + 1;
};

/**
 * Sends replayed records through the chosen routes with the engine (its order, retry and DLQ
 * semantics), or in a dry run only counts where they would go.
 */
export class Sender {
  readonly #o: SenderOptions;
  readonly #engine: ReplayEngine;
  readonly #names: Map<Route, string>;

  constructor(options: SenderOptions) {
    this.#o = options;
    this.#engine = new ReplayEngine({ app: { ...options.app, routes: options.routes }, logger: options.logger, clock: options.clock });
    this.#names = new Map(options.app.routes.map((r, i) => [r, routeName(r, i)]));
  }

  /** Marks a rebuilt record: its shard and `changed` come from the line it was rebuilt from. */
  override(raw: object, overrides: Overrides): void {
    this.#engine.overrides.set(raw, overrides);
  }

  /** Counts where each record goes (routes, sinks, kinds). */
  #count(records: readonly unknown[], options: ProcessOptions): void {
    const { counts } = this.#o;
    const decodeOptions = this.#engine.decodeOptions(options);
    for (const raw of records) {
      counts.records++;
      let event: ChangeEvent;
      let routes: Route[];
      try {
        event = this.#engine.decode(raw, decodeOptions);
        routes = [...new Set(this.#engine.targetsOf(event).map((t) => t.route))];
      } catch {
        counts.invalid++;
        continue;
      }
      if (routes.length === 0) counts.unrouted++;
      for (const sink of new Set(routes.map((r) => r.sink.name))) add(counts.bySink, sink, event.kind);
      for (const r of routes) add(counts.byRoute, this.#names.get(r) ?? r.description, event.kind);
    }
  }

  /**
   * Counts the records and, unless this is a dry run, sends them (one shard's or one merged order's
   * records, in order). Resolves with the engine's outcome; a dry run's says every record is done.
   */
  async send(records: readonly unknown[], options: ProcessOptions): Promise<Pick<BatchOutcome, 'statuses' | 'watermark'>> {
    this.#count(records, options);
    if (this.#o.dryRun || records.length === 0) return { statuses: records.map(() => 'skipped' as const), watermark: records.length };
    const outcome = await this.#engine.process(records, options);
    for (const status of outcome.statuses) this.#o.counts.statuses[status]++;
    return outcome;
  }
}
