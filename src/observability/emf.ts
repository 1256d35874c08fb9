import type { EngineObserver } from '../core/engine.js';
import { ConfigError } from '../errors.js';

/** Options of {@link emfObserver}. */
export interface EmfObserverOptions {
  /** CloudWatch namespace of every metric. @default 'DynamoCdc' */
  readonly namespace?: string;
  /**
   * Where each line goes. In Lambda, stdout lines are CloudWatch Logs events, from which CloudWatch
   * extracts the metrics.
   * @default (line) => process.stdout.write(line + '\n')
   */
  readonly write?: (line: string) => void;
  /**
   * Dimensions added to every metric, such as `{ Service: 'tasks-cdc' }`. Each one is a separate
   * CloudWatch metric identity, so keep them few and of low cardinality.
   * @default none
   */
  readonly dimensions?: Readonly<Record<string, string>>;
  /** Epoch ms for `_aws.Timestamp`. @default Date.now */
  readonly now?: () => number;
}

/** Root members the observer writes itself; a custom dimension may not take their names. */
const RESERVED = new Set(['_aws', 'Sink', 'RecordsIn', 'BatchDuration', 'Delivered', 'DeadLettered', 'Retries']);

interface SinkCounts {
  delivered: number;
  deadLettered: number;
  retries: number;
}

/**
 * An engine observer writing CloudWatch Embedded Metric Format (EMF) lines, for the Lambda shape.
 * It counts per sink during a batch and, when the batch ends, writes one line per sink that saw
 * activity (`Delivered`, `DeadLettered`, `Retries`, by `Sink` and in total) and one batch line
 * (`RecordsIn`, `BatchDuration`). Batches that overlap (several shards in one process) may see
 * their counts in each other's lines; the totals stay right.
 *
 * @example
 * export const handler = createStreamHandler(app, { observer: emfObserver({ dimensions: { Service: 'tasks-cdc' } }) });
 */
export const emfObserver = (options: EmfObserverOptions = {}): EngineObserver => {
  const namespace = options.namespace ?? 'DynamoCdc';
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const now = options.now ?? Date.now;
  const dimensions = { ...options.dimensions };
  if (typeof namespace !== 'string' || namespace.length === 0 || namespace.length > 255) {
    throw new ConfigError('namespace', `must be a CloudWatch namespace of 1 to 255 characters, got \`${String(namespace)}\`.`);
  }
  const names = Object.keys(dimensions);
  // The spec allows 30 keys per dimension set; the per-sink set adds `Sink`.
  if (names.length > 29) throw new ConfigError('dimensions', `may hold at most 29 dimensions (CloudWatch allows 30 with \`Sink\`), got ${names.length}.`);
  for (const name of names) {
    if (RESERVED.has(name)) throw new ConfigError(`dimensions.${name}`, `is a name the metrics use themselves; pick another dimension name.`);
    if (typeof dimensions[name] !== 'string' || dimensions[name] === '') throw new ConfigError(`dimensions.${name}`, `must be a non-empty string, got \`${String(dimensions[name])}\`.`);
  }

  let sinks = new Map<string, SinkCounts>();
  const of = (sink: string): SinkCounts => {
    let c = sinks.get(sink);
    if (!c) sinks.set(sink, (c = { delivered: 0, deadLettered: 0, retries: 0 }));
    return c;
  };

  const line = (dimensionSets: string[][], metrics: { Name: string; Unit: string }[], members: Record<string, string | number>): string =>
    JSON.stringify({
      _aws: { Timestamp: Math.round(now()), CloudWatchMetrics: [{ Namespace: namespace, Dimensions: dimensionSets, Metrics: metrics }] },
      ...dimensions,
      ...members,
    });

  return {
    delivered: (sink, count) => {
      of(sink).delivered += count;
    },
    deadLettered: (sink) => {
      of(sink ?? 'none').deadLettered++;
    },
    retried: (sink) => {
      of(sink).retries++;
    },
    batch: (outcome, durationMs) => {
      const done = sinks;
      sinks = new Map();
      // Every member a dimension set names must be on the root of the same line, so per-sink
      // values take a line each; the set without `Sink` publishes the totals from the same lines.
      for (const [sink, c] of done) {
        write(
          line(
            [[...names, 'Sink'], names],
            [
              { Name: 'Delivered', Unit: 'Count' },
              { Name: 'DeadLettered', Unit: 'Count' },
              { Name: 'Retries', Unit: 'Count' },
            ],
            { Sink: sink, Delivered: c.delivered, DeadLettered: c.deadLettered, Retries: c.retries },
          ),
        );
      }
      write(
        line(
          [names],
          [
            { Name: 'RecordsIn', Unit: 'Count' },
            { Name: 'BatchDuration', Unit: 'Milliseconds' },
          ],
          { RecordsIn: outcome.statuses.length, BatchDuration: durationMs },
        ),
      );
    },
  };
};
