import type { Writable } from 'node:stream';

/** What a command reads and writes besides AWS: injectable, so a test can run `main` in-process. */
export interface CliIo {
  /** Results: tables, JSON, dry-run listings. */
  readonly stdout: Writable;
  /** Diagnostics: errors, progress, hints. */
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** Relative paths (`--config`, `--file`) are resolved against it. */
  readonly cwd: string;
}

/** The real process's streams, environment and working directory. */
export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
};

/** True when `stream` is a terminal, so a progress line may be redrawn in place. */
export const isTty = (stream: Writable): boolean => (stream as { isTTY?: unknown }).isTTY === true;

/** Writes one line. */
export const say = (stream: Writable, line: string): void => {
  stream.write(`${line}\n`);
};
