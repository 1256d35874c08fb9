import { ConfigError } from '../../errors.js';
import type { ChangeEvent } from '../../events.js';
import type { Sink } from '../../ports.js';

/** What an {@link each} handler gets besides the event. */
export interface EachContext {
  /**
   * Aborts when the run stops: the Lambda deadline is near, or the worker shuts down. Pass it to
   * the requests the handler makes; an aborted call is not acknowledged and runs again later.
   */
  readonly signal: AbortSignal;
}

/** Options of {@link each}. */
export interface EachOptions {
  /**
   * Unique among the sinks of an app; names the destination in logs, metrics and dead letters.
   * @default the handler's function name, or `'each'` for an anonymous function
   */
  readonly name?: string;
}

/** The sink {@link each} returns. */
export type EachSink<E> = Sink<E>;

const show = (value: unknown): string => (typeof value === 'string' ? `\`${JSON.stringify(value)}\` (string)` : `\`${String(value)}\` (${value === null ? 'null' : typeof value})`);

/**
 * A function as a destination: the engine calls `handler` once per routed event, with the same
 * guarantees as any sink. One item's events are handled one after another in stream order (the
 * next is not started before the previous call resolved); events of different items run
 * concurrently, up to the app's `concurrency`. A call that resolves acknowledges its event; one that
 * throws (or rejects) fails it, and the error is classified as any sink error is: retried with
 * backoff up to `retry.maxAttempts` (a plain `Error` is TRANSIENT), or sent to the dead-letter queue
 * at once when it is PERMANENT (throw a {@link PermanentError}, or an error `classify` calls so,
 * such as an AWS SDK `ValidationException`). After the last attempt the event goes to the
 * dead-letter queue with the error; without one, its item's lane blocks. Delivery is at least once:
 * a retried or re-delivered event calls the handler again, so make it idempotent (`event.eventID`).
 *
 * @example
 * import { each, PermanentError, route } from 'dynamo-cdc';
 *
 * route(Task).on('modify').when((e) => e.changed.includes('Status'))
 *   .to(each(async (event, { signal }) => {
 *     await fetch(hookUrl, { method: 'POST', body: JSON.stringify(event.newImage), signal });
 *   }, { name: 'status-hook' }))
 */
export const each = <E = ChangeEvent>(handler: (event: E, context: EachContext) => unknown, options: EachOptions = {}): EachSink<E> => {
  if (typeof handler !== 'function') throw new ConfigError('each', `must be given a function (event, { signal }) => Promise<void>, got ${show(handler)}. Write each(async (event) => { ... }).`);
  if (options === null || typeof options !== 'object') throw new ConfigError('each.options', `must be an object, got ${show(options)}.`);
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.trim() === '')) {
    throw new ConfigError('each.name', `must be a non-empty string, got ${show(options.name)}. Give the destination a name unique among the sinks of the app, or leave it out.`);
  }
  const name = options.name ?? (handler.name !== '' ? handler.name : 'each');
  return {
    name,
    // One event per call: a slow call then holds only its own item's lane, never another's.
    limits: { maxRecords: 1, maxBytes: Infinity },
    preservesOrderWithinRequest: false,
    async send(events, signal) {
      signal.throwIfAborted();
      const failed: { index: number; error: unknown }[] = [];
      for (let index = 0; index < events.length; index++) {
        try {
          signal.throwIfAborted();
          await handler(events[index] as E, { signal });
        } catch (error) {
          failed.push({ index, error });
        }
      }
      return { failed };
    },
  };
};
