import type { Writable } from 'node:stream';
import type { ChangeEvent } from '../../events.js';
import type { Sink } from '../../ports.js';
import { toJson } from '../../serialize.js';

/** Options of {@link consoleSink}. */
export interface ConsoleSinkOptions {
  /** @default 'console' */
  readonly name?: string;
  /** Where lines go. @default process.stdout */
  readonly stream?: Writable;
  /**
   * `'json'`: the whole event, one JSON object a line. `'summary'`: one short line an event
   * (kind, entity, key, changed attributes; no images).
   * @default 'json'
   */
  readonly format?: 'json' | 'summary';
}

const summary = (e: unknown): string => {
  const c = e as Partial<ChangeEvent>;
  if (c.kind === undefined) return toJson(e);
  const changed = c.kind === 'modify' ? ` changed=${(c.changed ?? []).join(',')}` : '';
  return `${c.kind.padEnd(6)} ${c.entity ?? '-'} ${toJson(c.key)}${changed}${c.expired ? ' (ttl)' : ''}`;
};

/**
 * Prints events, for development. Acknowledges once the stream has taken the lines.
 *
 * @example
 * route('*').to(consoleSink({ format: 'summary' }))
 */
export const consoleSink = <E = ChangeEvent>(options: ConsoleSinkOptions = {}): Sink<E> => {
  const stream = options.stream ?? process.stdout;
  const format = options.format === 'summary' ? summary : toJson;
  return {
    name: options.name ?? 'console',
    limits: { maxRecords: 500, maxBytes: Infinity },
    preservesOrderWithinRequest: true,
    async send(events, signal) {
      signal.throwIfAborted();
      const text = events.map((e) => `${format(e)}\n`).join('');
      await new Promise<void>((resolve, reject) => stream.write(text, (err) => (err ? reject(err) : resolve())));
      return { failed: [] };
    },
  };
};
