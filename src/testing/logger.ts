import type { Logger } from '../ports.js';

/** One captured log call. */
export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}

/** A {@link Logger} that keeps its entries in `entries` (shared with its children, bindings merged in). */
export const memoryLogger = (entries: LogEntry[] = [], bindings: Record<string, unknown> = {}): Logger & { entries: LogEntry[] } => {
  const at =
    (level: LogEntry['level']) =>
    (a: object | string, b?: string): void => {
      entries.push(typeof a === 'string' ? { level, msg: a, obj: { ...bindings } } : { level, msg: b ?? '', obj: { ...bindings, ...(a as Record<string, unknown>) } });
    };
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => memoryLogger(entries, { ...bindings, ...more }),
  };
};

/** A {@link Logger} that drops everything. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
