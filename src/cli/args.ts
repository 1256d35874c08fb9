import { parseArgs } from 'node:util';
import type { CliIo } from './io.js';
import { UsageError } from './errors.js';

/** One flag of a command: what `parseArgs` needs, plus what `--help` shows. */
export interface FlagSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder of the value in `--help`, such as `<ms>`. */
  readonly value?: string;
  /** Environment variable read when the flag is absent. */
  readonly env?: string;
  /** Shown in `--help`; the code applies defaults itself. */
  readonly default?: string;
  readonly help: string;
}

/** A command as `--help` shows it. */
export interface CommandSpec {
  /** `status`, `dlq list`. */
  readonly name: string;
  readonly summary: string;
  /** Usage lines after `dynamo-cdc `. */
  readonly usage: readonly string[];
  /** Paragraphs after the summary. */
  readonly description?: readonly string[];
  readonly flags: readonly FlagSpec[];
  readonly examples?: readonly string[];
}

/** Flags every command takes. */
export const COMMON_FLAGS: readonly FlagSpec[] = [
  { name: 'help', type: 'boolean', short: 'h', help: 'Show this help and exit.' },
  { name: 'verbose', type: 'boolean', short: 'v', help: 'On an error, print the stack trace and the causes too.' },
];

export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

interface ParseArgsError {
  code?: unknown;
  message?: unknown;
}

const quoted = (message: string): string | undefined => /'([^']+)'/.exec(message)?.[1];

/**
 * `parseArgs` reads `--poll-interval-ms -5` as a flag without its value; a negative number after a
 * flag that takes a value is its value (joined as `--flag=-5`), so the flag's own check rejects it
 * with its range.
 */
const joinNegativeValues = (argv: readonly string[], flags: readonly FlagSpec[]): string[] => {
  const takesValue = new Set(flags.filter((f) => f.type === 'string').flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (takesValue.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}${arg.startsWith('--') ? '=' : ''}${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
};

/** Parses `argv` strictly against `spec`; a mistake is a {@link UsageError} that says how to get help. */
export const parseFlags = (spec: CommandSpec, argv: readonly string[], positionals = false): { values: ParsedValues; positionals: string[] } => {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  const flags = [...spec.flags, ...COMMON_FLAGS];
  for (const flag of flags) {
    options[flag.name] = { type: flag.type, ...(flag.short ? { short: flag.short } : {}), ...(flag.multiple ? { multiple: true } : {}) };
  }
  const help = `Run \`dynamo-cdc ${spec.name} --help\` for its flags.`;
  try {
    const parsed = parseArgs({ args: joinNegativeValues(argv, flags), options, strict: true, allowPositionals: positionals });
    return { values: parsed.values as ParsedValues, positionals: parsed.positionals };
  } catch (error) {
    const { code, message } = (error ?? {}) as ParseArgsError;
    const text = typeof message === 'string' ? message : String(error);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown flag ${quoted(text) ?? ''} for \`dynamo-cdc ${spec.name}\`. ${help}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /--[a-z0-9-]+/i.exec(text)?.[0] ?? 'a flag';
      if (/argument missing|ambiguous/.test(text)) throw new UsageError(`${flag} needs a value. ${help}`);
      throw new UsageError(`${flag} takes no value. ${help}`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`unexpected argument ${quoted(text) ?? ''} for \`dynamo-cdc ${spec.name}\`. ${help}`);
    throw new UsageError(`${text} ${help}`);
  }
};

/** A string flag, else its environment variable, else `undefined`; an empty value counts as absent. */
export const stringFlag = (values: ParsedValues, io: CliIo, flag: FlagSpec): string | undefined => {
  const value = values[flag.name];
  if (typeof value === 'string' && value !== '') return value;
  const fromEnv = flag.env ? io.env[flag.env] : undefined;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
};

/** Where a flag's value came from, for messages: `--lease-table` or `LEASE_TABLE`. */
const sourceOf = (values: ParsedValues, flag: FlagSpec): string => (typeof values[flag.name] === 'string' || !flag.env ? `--${flag.name}` : flag.env);

/** An integer flag (or its environment variable) within bounds; a bad value is a {@link UsageError}. */
export const integerFlag = (values: ParsedValues, io: CliIo, flag: FlagSpec, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined => {
  const text = stringFlag(values, io, flag);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${sourceOf(values, flag)} must be an integer from ${min} to ${max}, got \`${text}\`.`);
  }
  return value;
};

/**
 * A flag (or its environment variable) that must be an http(s) URL; checked here so a typo is one
 * line naming the flag, not the SDK's `TypeError: Invalid URL` from deep inside a client.
 */
export const urlFlag = (values: ParsedValues, io: CliIo, flag: FlagSpec, example: string): string | undefined => {
  const text = stringFlag(values, io, flag);
  if (text === undefined) return undefined;
  let protocol: string | undefined;
  try {
    protocol = new URL(text).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new UsageError(`${sourceOf(values, flag)} must be a URL such as ${example}, got \`${text}\`.`);
  return text;
};

/** A flag (or its environment variable) that takes one of a few words. */
export const choiceFlag = <T extends string>(values: ParsedValues, io: CliIo, flag: FlagSpec, choices: readonly T[]): T | undefined => {
  const text = stringFlag(values, io, flag);
  if (text === undefined) return undefined;
  const match = choices.find((c) => c.toLowerCase() === text.toLowerCase());
  if (match === undefined) throw new UsageError(`${sourceOf(values, flag)} must be one of ${choices.join(', ')}, got \`${text}\`.`);
  return match;
};

/** A string flag that must be given (or its environment variable set). */
export const requiredFlag = (values: ParsedValues, io: CliIo, flag: FlagSpec, spec: CommandSpec): string => {
  const value = stringFlag(values, io, flag);
  if (value === undefined) {
    throw new UsageError(`\`dynamo-cdc ${spec.name}\` needs --${flag.name}${flag.env ? ` (or ${flag.env})` : ''}. Run \`dynamo-cdc ${spec.name} --help\` for its flags.`);
  }
  return value;
};

const wrap = (text: string, width: number, indent: string): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : `${indent}${l}`));
};

/** The `--help` text of a command. */
export const helpText = (spec: CommandSpec): string => {
  const out: string[] = [];
  out.push(`dynamo-cdc ${spec.name}: ${spec.summary}`, '', 'Usage:');
  for (const u of spec.usage) out.push(`  dynamo-cdc ${u}`);
  for (const paragraph of spec.description ?? []) out.push('', ...wrap(paragraph, 96, '').map((l) => l));
  out.push('', 'Flags:');
  const flags = [...spec.flags, ...COMMON_FLAGS];
  const left = flags.map((f) => `  ${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'string' ? ` ${f.value ?? '<value>'}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  flags.forEach((f, i) => {
    const extras = [f.env ? `env ${f.env}` : '', f.default ? `default ${f.default}` : ''].filter(Boolean).join('; ');
    const text = `${f.help}${extras ? ` (${extras})` : ''}`;
    out.push(`${(left[i] ?? '').padEnd(width)}${wrap(text, 100 - width, ' '.repeat(width)).join('\n')}`);
  });
  if (spec.examples?.length) {
    out.push('', 'Examples:');
    for (const e of spec.examples) out.push(`  ${e}`);
  }
  return `${out.join('\n')}\n`;
};
