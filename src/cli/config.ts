import { access } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../app.js';
import { ConfigError, describeError } from '../errors.js';
import type * as tsxApi from 'tsx/esm/api';
import { CliError } from './errors.js';

type TsxApi = typeof tsxApi;

/** Looked for in the working directory, in this order, when `--config` is not given. */
export const DEFAULT_CONFIG_FILES = ['dynamo-cdc.config.ts', 'dynamo-cdc.config.mts', 'dynamo-cdc.config.js', 'dynamo-cdc.config.mjs'] as const;

/** A loaded configuration and the file it came from. */
export interface LoadedConfig {
  readonly app: App;
  /** As the user would write it: relative to the working directory when inside it. */
  readonly file: string;
}

const exists = async (path: string): Promise<boolean> => {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
};

const shown = (cwd: string, path: string): string => {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
};

const isApp = (value: unknown): value is App => {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Partial<Record<keyof App, unknown>>;
  // What defineApp adds to a configuration: the filled-in defaults and the entity resolver (absent without entities).
  return (
    typeof v.table === 'string' &&
    Array.isArray(v.routes) &&
    'entityOf' in v &&
    (v.entityOf === undefined || typeof v.entityOf === 'function') &&
    typeof v.concurrency === 'number' &&
    typeof v.retry === 'object' &&
    v.retry !== null
  );
};

const codeOf = (error: unknown): unknown => (error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined);

const TYPESCRIPT_FILE = /\.[cm]?ts$/;

/** The one line shown when a TypeScript config file cannot be loaded by this Node and tsx is not installed. */
export const typeScriptLoaderMissing = (file: string): string =>
  `cannot load ${file}: this Node (${process.version}) does not strip TypeScript types. Install tsx (npm i -D tsx), use Node 22.6+ (with --experimental-strip-types before 23.6), or write the config as .js`;

/** tsx's API, or `undefined` when the optional peer dependency is not installed. */
const loadTsx = async (): Promise<TsxApi | undefined> => {
  try {
    return await import('tsx/esm/api');
  } catch (error) {
    if (codeOf(error) === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
};

/**
 * Imports the file. A `.ts` file is imported as it is where Node strips types itself (Node 23.6+,
 * or 22.6+ with --experimental-strip-types) or a loader is registered (the clone's bin registers
 * tsx); otherwise through tsx, an optional peer dependency, registered for the whole process so
 * that the config's `dynamo-cdc` is the same module instance as the CLI's (its `ConfigError` must
 * be recognised). A `.ts` file outside an ESM package (no `"type": "module"`) is CommonJS to tsx,
 * and Node refuses to `import()` it through the loader (ERR_REQUIRE_CYCLE_MODULE); tsx's own
 * `tsImport` loads it either way.
 */
const importFile = async (path: string, file: string, registered = false): Promise<{ default?: unknown }> => {
  // Node remembers a failed import by its URL: the retry after registering tsx needs another one.
  const url = `${pathToFileURL(path).href}${registered ? '?tsx' : ''}`;
  try {
    return (await import(url)) as { default?: unknown };
  } catch (error) {
    const code = codeOf(error);
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && TYPESCRIPT_FILE.test(path) && !registered) {
      const tsx = await loadTsx();
      if (tsx === undefined) throw new CliError(typeScriptLoaderMissing(file), { cause: error });
      tsx.register();
      return importFile(path, file, true);
    }
    if (code !== 'ERR_REQUIRE_CYCLE_MODULE') throw error;
    const tsx = await loadTsx();
    if (tsx === undefined) throw new CliError(typeScriptLoaderMissing(file), { cause: error });
    return (await tsx.tsImport(url, import.meta.url)) as { default?: unknown };
  }
};

/** The default export, seen through CommonJS interop (`module.exports.default`) when needed. */
const defaultOf = (module: { default?: unknown }): unknown => {
  const value = module.default;
  if (value !== null && typeof value === 'object' && !isApp(value) && 'default' in value) return (value as { default?: unknown }).default;
  return value;
};

/** The file `--config` names, or the first default file that exists; `undefined` when there is none. */
export const findConfigFile = async (cwd: string, explicit: string | undefined): Promise<string | undefined> => {
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!(await exists(path))) {
      throw new CliError(`config file not found: ${shown(cwd, path)}. Create one whose default export is defineApp(...), or pass --config`);
    }
    return path;
  }
  for (const name of DEFAULT_CONFIG_FILES) {
    const path = resolve(cwd, name);
    if (await exists(path)) return path;
  }
  return undefined;
};

/**
 * Imports a configuration file (TypeScript or JavaScript; see `importFile` for how TypeScript is loaded) and
 * checks that its default export is an {@link App} made by `defineApp(...)`. Every failure is a
 * {@link CliError} that names the file and the fix; a `ConfigError` thrown by `defineApp` keeps
 * its message, which already names the field.
 */
export const loadConfig = async (cwd: string, explicit: string | undefined): Promise<LoadedConfig> => {
  const path = await findConfigFile(cwd, explicit);
  if (path === undefined) {
    throw new CliError(`config file not found: ${DEFAULT_CONFIG_FILES[0]}. Create one whose default export is defineApp(...), or pass --config`);
  }
  const file = shown(cwd, path);
  let module: { default?: unknown };
  try {
    module = await importFile(path, file);
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (error instanceof ConfigError) throw new CliError(`${file}: ${error.message}`, { cause: error });
    throw new CliError(`could not load config file ${file}: ${describeError(error).message}. Fix the file, or run with --verbose for the stack`, { cause: error });
  }
  const app = defaultOf(module);
  if (app === undefined) {
    throw new CliError(`config file ${file} has no default export. End it with \`export default defineApp({ table, routes })\``);
  }
  if (!isApp(app)) {
    const plain = app !== null && typeof app === 'object' && 'routes' in app && 'table' in app;
    throw new CliError(
      plain
        ? `config file ${file} exports a plain object, not an app. Wrap it: \`export default defineApp({ ... })\` (defineApp from 'dynamo-cdc' checks it and fills in the defaults)`
        : `config file ${file}'s default export is not an app made by defineApp(...). Make it \`export default defineApp({ table, routes })\``,
    );
  }
  return { app, file };
};
