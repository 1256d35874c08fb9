/**
 * Errors the command reports as one line. `main` prints `dynamo-cdc: <message>` and exits with
 * `exitCode`; the stack only with `--verbose`.
 */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** The command line itself is wrong: an unknown flag, a missing or malformed value. Exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = 'UsageError';
  }
}
