/**
 * Sink clients and prom-client are optional peer dependencies: an app pays for the ones it uses.
 * Each subpath entry (`dynamo-cdc/eventbridge`, ...) loads its implementation through
 * {@link importWithPeers}, so a missing client fails the import with one line naming what to
 * install, instead of Node's resolution error pointing into `dist/`.
 */

/** Thrown when a subpath's optional peer dependency is not installed. */
export class MissingPeerDependencyError extends Error {
  /** The package to install. */
  readonly packageName: string;

  constructor(subpath: string, packageName: string, all: readonly string[], cause: unknown) {
    super(`${subpath} needs ${packageName}, which is not installed: run npm i ${all.join(' ')}`, { cause });
    this.name = 'MissingPeerDependencyError';
    this.packageName = packageName;
    // One line where Node prints an uncaught error: the frames would only point into dist/.
    this.stack = `${this.name}: ${this.message}`;
  }
}

const codeOf = (error: unknown): unknown => (error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined);

/**
 * The peer among `packages` that `error` says cannot be found. Node names it as
 * `Cannot find package '<name>'` (or `Cannot find module '<name>/...'` for a subpath of it).
 */
export const missingPeerOf = (error: unknown, packages: readonly string[]): string | undefined => {
  const code = codeOf(error);
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const message = error instanceof Error ? error.message : String(error);
  return packages.find((name) => message.includes(`'${name}'`) || message.includes(`'${name}/`) || message.includes(`/node_modules/${name}/`));
};

/**
 * Imports a subpath's implementation; when one of its optional peers is missing, throws a
 * {@link MissingPeerDependencyError} naming it (and every peer the subpath needs, so one install
 * is enough). Any other failure is rethrown as it is.
 */
export const importWithPeers = async <T>(subpath: string, packages: readonly string[], load: () => Promise<T>): Promise<T> => {
  try {
    return await load();
  } catch (error) {
    const missing = missingPeerOf(error, packages);
    if (missing === undefined) throw error;
    throw new MissingPeerDependencyError(subpath, missing, packages, error);
  }
};
