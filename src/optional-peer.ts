/**
 * Sink clients and prom-client are optional peer dependencies: an app pays for the ones it uses.
 * Each subpath entry (`dynamo-cdc/eventbridge`, ...) loads its implementation through
 * {@link importWithPeers}, so a missing client fails the import with one line naming what to
 * install, instead of Node's resolution error pointing into `dist/`.
 */

/** Thrown when a subpath's optional peer dependency is not installed. */
export class MissingPeerDependencyError extends Error {
  /** The package to install. */
  declare readonly packageName: string;

  constructor(subpath: string, packageName: string, all: readonly string[]) {
    super(`${subpath} needs ${packageName}, which is not installed: run npm i ${all.join(' ')}`);
    // Node prints an uncaught error with its stack, its own enumerable properties and its cause: a
    // non-enumerable name, no cause (its message is in ours) and no frames (they would only point
    // into dist/) keep that to the one line.
    Object.defineProperty(this, 'name', { value: 'MissingPeerDependencyError', enumerable: false });
    Object.defineProperty(this, 'packageName', { value: packageName, enumerable: false });
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
    throw new MissingPeerDependencyError(subpath, missing, packages);
  }
};
