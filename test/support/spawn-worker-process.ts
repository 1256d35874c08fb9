import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('./worker-process.ts', import.meta.url));
const LOG_TAIL = 8000;

/** Options of {@link spawnWorkerProcess}; they become the environment of `worker-process.ts`. */
export interface WorkerProcessOptions {
  readonly endpoint: string;
  readonly leaseTable: string;
  readonly streamArns: readonly string[];
  /** NDJSON file the process's file sink appends to. */
  readonly output: string;
  /** Unique per process: a restarted process gets a new one. */
  readonly workerId: string;
  /** @default 2000 */
  readonly leaseDurationMs?: number;
  /** @default 50 */
  readonly pollIntervalMs?: number;
  /** @default 200 */
  readonly coordinationIntervalMs?: number;
  /** @default 500 */
  readonly checkpointIntervalMs?: number;
  /** @default 0 */
  readonly staggerMs?: number;
  /** Appends the process's log (stderr) here too. */
  readonly logFile?: string;
  /** @default 'info' */
  readonly logLevel?: string;
  /** Count the process's lease-table calls and write them here as JSON when it stops. @default not counted */
  readonly leaseCallsFile?: string;
}

/** What the process prints once every worker started. */
export interface ReadyLine {
  readonly ready: true;
  readonly workerId: string;
  readonly pid: number;
  readonly streams: number;
  readonly owned: readonly string[];
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running `worker-process.ts`; `pid` is the worker's own node process, so a signal reaches the worker itself. */
export interface WorkerProcess {
  readonly workerId: string;
  readonly pid: number;
  /** Resolves with the ready line; rejects when the process exits first or says nothing within 60 s. */
  readonly ready: Promise<ReadyLine>;
  readonly exited: Promise<ExitStatus>;
  readonly running: boolean;
  /** Sends a signal (`SIGKILL` is `kill -9`); a process already gone is fine. */
  signal(signal: NodeJS.Signals): void;
  /** The end of the process's log, for failure messages. */
  logTail(): string;
  /** `kill -9` unless it already exited; resolves once it is gone. */
  kill(): Promise<ExitStatus>;
  /** Sends `signal`, waits up to `timeoutMs` for the exit, then `kill -9`; `forced` says whether it came to that. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus & { forced: boolean }>;
}

const live = new Set<ChildProcessWithoutNullStreams>();
let exitHookInstalled = false;
const installExitHook = () => {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: no worker outlives the process that started it, whatever happened to the test.
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
};

/**
 * Starts `test/support/worker-process.ts` as `node --import tsx` (not through npx, whose pid is a
 * launcher: `kill -9` of it would leave the worker running). The child stops by itself when this
 * process dies (its stdin closes), and is killed when this process exits.
 */
export const spawnWorkerProcess = (options: WorkerProcessOptions): WorkerProcess => {
  installExitHook();
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DYNAMODB_ENDPOINT: options.endpoint,
      LEASE_TABLE: options.leaseTable,
      STREAM_ARNS: options.streamArns.join(','),
      OUTPUT: options.output,
      WORKER_ID: options.workerId,
      LEASE_DURATION_MS: String(options.leaseDurationMs ?? 2000),
      POLL_INTERVAL_MS: String(options.pollIntervalMs ?? 50),
      COORDINATION_INTERVAL_MS: String(options.coordinationIntervalMs ?? 200),
      CHECKPOINT_INTERVAL_MS: String(options.checkpointIntervalMs ?? 500),
      STAGGER_MS: String(options.staggerMs ?? 0),
      EXIT_WITH_PARENT: '1',
      LOG_LEVEL: options.logLevel ?? 'info',
      ...(options.leaseCallsFile ? { LEASE_CALLS_FILE: options.leaseCallsFile } : {}),
    },
  });
  live.add(child);
  let tail = '';
  const log: WriteStream | undefined = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  child.stderr.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL);
    log?.write(chunk);
  });

  log?.on('error', () => {}); // a log that cannot be written must not take the test down
  // 'close' comes after the last stderr chunk; 'exit' may come before it.
  child.once('close', () => log?.end());
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });

  const ready = new Promise<ReadyLine>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker ${options.workerId} not ready within 60 s. Log:\n${tail}`)), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        try {
          const parsed = JSON.parse(line) as Partial<ReadyLine>;
          if (parsed.ready === true) {
            clearTimeout(timer);
            resolve(parsed as ReadyLine);
          }
        } catch {
          // not the ready line
        }
      }
    });
    void exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`worker ${options.workerId} exited (${status.signal ?? `code ${status.code}`}) before it was ready. Log:\n${tail}`));
    });
  });
  // A caller that never awaits `ready` must not get an unhandled rejection when it kills the process.
  ready.catch(() => {});

  const signal = (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  return {
    workerId: options.workerId,
    pid: child.pid ?? -1,
    ready,
    exited,
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    signal,
    logTail: () => tail,
    kill: () => {
      signal('SIGKILL');
      return exited;
    },
    stop: async (name, timeoutMs) => {
      signal(name);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      });
      const status = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (status) return { ...status, forced: false };
      signal('SIGKILL');
      return { ...(await exited), forced: true };
    },
  };
};
