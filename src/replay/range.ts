import { ConfigError } from '../errors.js';
import { compareSequenceNumbers } from '../events.js';

/** A point of a replay range: a time (epoch ms, a `Date`, ISO 8601 or relative like `2h`) given by the user. */
export type TimeInput = number | Date | string;

/** The range a replay sends, resolved once: times in epoch ms, sequence numbers as decimal strings. */
export interface ReplayRange {
  /** Records created at or after this time (epoch ms); `undefined`: from the oldest record. */
  readonly from: number | undefined;
  /** Records created before this time (epoch ms); `undefined`: up to the newest record. */
  readonly to: number | undefined;
  /** Records at or after this sequence number. */
  readonly fromSequence: string | undefined;
  /** Records at or before this sequence number. */
  readonly toSequence: string | undefined;
}

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const RELATIVE = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/i;
const DECIMAL = /^[0-9]+$/;

/**
 * A time of a range as epoch ms: a number (epoch ms), a `Date`, an ISO 8601 string, or a duration
 * before `now` (`90s`, `30m`, `2h`, `1d`, `1.5h`). Throws {@link ConfigError} naming `field`.
 */
export const parseTime = (field: string, value: TimeInput, now: number): number => {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new ConfigError(field, 'is an invalid Date. Pass an ISO 8601 time such as 2026-01-01T10:00:00Z, or a duration before now such as 2h.');
    return value.getTime();
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ConfigError(field, `must be a finite epoch-millisecond time, got \`${String(value)}\`.`);
    return value;
  }
  if (typeof value === 'string') {
    const text = value.trim();
    const relative = RELATIVE.exec(text);
    if (relative) return now - Math.round(Number(relative[1]) * (UNITS[(relative[2] as string).toLowerCase()] as number));
    // Date.parse reads plain numbers as years: only strings that look like dates are parsed.
    if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
      const time = Date.parse(text);
      if (!Number.isNaN(time)) return time;
    }
  }
  throw new ConfigError(field, `must be an ISO 8601 time such as 2026-01-01T10:00:00Z, or a duration before now such as 90s, 30m, 2h or 1d, got \`${String(value)}\`.`);
};

const sequence = (field: string, value: string | undefined): string | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !DECIMAL.test(value)) throw new ConfigError(field, `must be a stream sequence number (decimal digits), got \`${String(value)}\`.`);
  return value;
};

/** Validates and resolves a range; `from` must be before `to`, `fromSequence` at or before `toSequence`. */
export const resolveRange = (
  input: { from?: TimeInput | undefined; to?: TimeInput | undefined; fromSequence?: string | undefined; toSequence?: string | undefined },
  now: number,
): ReplayRange => {
  const from = input.from === undefined ? undefined : parseTime('from', input.from, now);
  const to = input.to === undefined ? undefined : parseTime('to', input.to, now);
  if (from !== undefined && to !== undefined && from >= to) {
    throw new ConfigError('to', `(${new Date(to).toISOString()}) must be after from (${new Date(from).toISOString()}).`);
  }
  const fromSequence = sequence('fromSequence', input.fromSequence);
  const toSequence = sequence('toSequence', input.toSequence);
  if (fromSequence !== undefined && toSequence !== undefined && compareSequenceNumbers(fromSequence, toSequence) > 0) {
    throw new ConfigError('toSequence', `(${toSequence}) must not be before fromSequence (${fromSequence}).`);
  }
  return { from, to, fromSequence, toSequence };
};

/** Where a record sits against the range: before it, in it, or after it. */
export const placeOf = (range: ReplayRange, time: number, sequenceNumber: string): 'before' | 'in' | 'after' => {
  if (range.from !== undefined && time < range.from) return 'before';
  if (range.fromSequence !== undefined && compareSequenceNumbers(sequenceNumber, range.fromSequence) < 0) return 'before';
  if (range.to !== undefined && time >= range.to) return 'after';
  if (range.toSequence !== undefined && compareSequenceNumbers(sequenceNumber, range.toSequence) > 0) return 'after';
  return 'in';
};

/** `2026-01-01T10:00:00.000Z`, or `(start)` / `(end)` for an open end. */
export const describeTime = (time: number | undefined, open: string): string => (time === undefined ? open : new Date(time).toISOString());
