import type { Logger } from '../ports.js';

/** Options of {@link createJsonLogger}. */
export interface JsonLoggerOptions {
  /** One of `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `silent`. @default process.env.LOG_LEVEL ?? 'info' */
  readonly level?: string;
  /**
   * Let item images (`newImage`, `oldImage`, `NewImage`, `OldImage`) reach the log. They hold user
   * data, so they are redacted, at any depth, unless this is on.
   * @default false
   */
  readonly logImages?: boolean;
  /** Bound to every line, such as `{ service: 'orders-cdc' }`. */
  readonly base?: Record<string, unknown>;
  /**
   * Writes one line (with its newline). @default `process.stdout.write`, which is synchronous for
   * files and pipes on Linux, so no line is lost when the Lambda runtime freezes the process.
   */
  readonly write?: (line: string) => void;
}

const LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const IMAGE_KEYS = new Set(['newImage', 'oldImage', 'NewImage', 'OldImage']);
const CENSOR = '[redacted: item image]';

/** pino's `err` serializer's shape: the class as `type`, then message, stack and own fields. */
const serializeError = (error: Error): Record<string, unknown> => {
  const out: Record<string, unknown> = { type: error.constructor.name, message: error.message, stack: error.stack };
  for (const [key, value] of Object.entries(error)) if (!(key in out)) out[key] = value;
  if (error.cause !== undefined) out['cause'] = error.cause instanceof Error ? serializeError(error.cause) : error.cause;
  return out;
};

const replacer = (logImages: boolean) => {
  // JSON.stringify walks depth first, so the objects above the one at hand are a stack: popped back
  // to the holder on each call. Only a value that is its own ancestor is circular; one met twice
  // on different branches prints twice.
  const ancestors: object[] = [];
  // What each ancestor stood for: an Error's serialized copy is new each time, the Error is not.
  const origins: unknown[] = [];
  return function (this: object, key: string, value: unknown): unknown {
    if (!logImages && IMAGE_KEYS.has(key)) return CENSOR;
    if (typeof value === 'bigint') return value.toString();
    const out = value instanceof Error ? serializeError(value) : value;
    if (typeof out !== 'object' || out === null) return out;
    while (ancestors.length > 0 && ancestors.at(-1) !== this) {
      ancestors.pop();
      origins.pop();
    }
    if (origins.includes(value)) return '[Circular]';
    ancestors.push(out);
    origins.push(value);
    return out;
  };
};

/**
 * A logger with no dependencies, the default of the Lambda handler: one JSON line per call, in
 * the shape of {@link createLogger}'s (`level` as a label, ISO `time`, bindings, the object's
 * fields, `msg`), errors under `err` as `{ type, message, stack }`, item images redacted. It keeps
 * pino (about 60 KB minified with its streams) out of Lambda bundles; pass `logger: createLogger()`
 * or any pino-compatible logger to use another.
 *
 * @example
 * export const handler = createStreamHandler(app, { logger: createJsonLogger({ base: { service: 'tasks-cdc' } }) });
 */
export const createJsonLogger = (options: JsonLoggerOptions = {}): Logger => {
  const label = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  const threshold = LEVELS[label];
  if (threshold === undefined) {
    throw new Error(`Unknown log level \`${label}\` (from ${options.level === undefined ? 'LOG_LEVEL' : 'the `level` option'}): use one of ${Object.keys(LEVELS).join(', ')}.`);
  }
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const logImages = options.logImages === true;

  const make = (bindings: Record<string, unknown>): Logger => {
    const at = (level: string) => {
      if (LEVELS[level]! < threshold) return () => {};
      return (objOrMsg: object | string, msg?: string) => {
        const fields = typeof objOrMsg === 'string' ? { msg: objOrMsg } : { ...objOrMsg, ...(msg === undefined ? {} : { msg }) };
        const line = { level, time: new Date().toISOString(), ...bindings, ...fields };
        let text: string;
        try {
          text = JSON.stringify(line, replacer(logImages));
        } catch (error) {
          // A getter that throws, say: the message still gets out.
          text = JSON.stringify({ level, time: line.time, msg: typeof objOrMsg === 'string' ? objOrMsg : msg, logError: String(error) });
        }
        write(`${text}\n`);
      };
    };
    return {
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return make({ ...options.base });
};
