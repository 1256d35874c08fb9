/**
 * Running the `dynamo-cdc` command in tests: in this process through `main` (fast, no child per
 * case), or as a user does, `node bin/dynamo-cdc.js` from the repository root.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inject } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** What a config file written by a test imports the library from. */
export const SRC_INDEX = pathToFileURL(join(ROOT, 'src/index.ts')).href;

/** What a run of the command left: its exit code and what it wrote. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the run. */
  readonly ms: number;
}

/** The non-blank lines of a command's output. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

/** Only what the command needs to reach the global setup's DynamoDB Local, with dummy credentials. */
export const localEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'], AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });

/** A user's environment pointed at DynamoDB Local: this process's, without the variables that would choose for the command. */
export const userEnv = (): NodeJS.ProcessEnv => {
  const { STREAM_ARN: _s, LEASE_TABLE: _l, DLQ_URL: _d, METRICS_PORT: _m, LOG_LEVEL: _g, ...rest } = process.env;
  return { ...rest, DYNAMODB_ENDPOINT: inject('dynamoEndpoint'), AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1' };
};

/** Runs `dynamo-cdc ...argv` in this process and collects what it wrote. */
export const runMain = async (argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> => {
  const started = Date.now();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const io: CliIo = { stdout, stderr, env: options.env ?? localEnv(), cwd: options.cwd ?? ROOT };
  const code = await main([...argv], io);
  return { code, stdout: out, stderr: err, ms: Date.now() - started };
};

/** Runs `node bin/dynamo-cdc.js ...args` from the repository root, as a user would. Never rejects. */
export const runBin = (args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> =>
  new Promise((resolve) => {
    const started = Date.now();
    execFile(process.execPath, ['bin/dynamo-cdc.js', ...args], { cwd: ROOT, env: options.env ?? userEnv(), timeout: options.timeoutMs ?? 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
