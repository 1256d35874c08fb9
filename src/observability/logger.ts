import pino from 'pino';
import type { DestinationStream, LoggerOptions } from 'pino';
import type { Logger } from '../ports.js';

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** @default process.env.LOG_LEVEL ?? 'info' */
  readonly level?: string;
  /**
   * Let item images (`newImage`, `oldImage`, `NewImage`, `OldImage`) reach the log. They hold user
   * data, so they are redacted unless this is on.
   * @default false
   */
  readonly logImages?: boolean;
  /**
   * Where lines go. @default a synchronous stdout destination, so no line is lost when the Lambda
   * runtime freezes the process after the handler returns.
   */
  readonly destination?: DestinationStream;
  /** Bound to every line, such as `{ service: 'orders-cdc' }`. */
  readonly base?: Record<string, unknown>;
}

const IMAGE_PATHS = ['newImage', 'oldImage', 'NewImage', 'OldImage'];

/** Paths redacted by default: images at the top level and up to three levels down. */
export const IMAGE_REDACT_PATHS = IMAGE_PATHS.flatMap((p) => [p, `*.${p}`, `*.*.${p}`, `*.*.*.${p}`]);

/**
 * A pino logger as the library wants it: JSON lines, errors under `err`, images redacted.
 *
 * @example
 * const logger = createLogger({ base: { service: 'tasks-cdc' } });
 * logger.info({ shardId }, 'lease taken');
 */
export const createLogger = (options: CreateLoggerOptions = {}): Logger & pino.Logger => {
  const config: LoggerOptions = {
    level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
    base: options.base ?? null,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
    ...(options.logImages ? {} : { redact: { paths: IMAGE_REDACT_PATHS, censor: '[redacted: item image]' } }),
  };
  return pino(config, options.destination ?? pino.destination({ dest: 1, sync: true }));
};
