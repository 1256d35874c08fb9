import { describe, expect, it } from 'vitest';
import { importWithPeers, MissingPeerDependencyError, missingPeerOf } from '../../src/optional-peer.js';

/** The error Node's ESM resolver throws for a package that is not installed. */
const notFound = (specifier: string, from = '/app/node_modules/dynamo-cdc/dist/sinks/s3/export.js'): Error =>
  Object.assign(new Error(`Cannot find package '${specifier}' imported from ${from}`), { code: 'ERR_MODULE_NOT_FOUND' });

describe('importWithPeers', () => {
  it('turns a missing peer into one line naming the package and the install command', async () => {
    const error = await importWithPeers('dynamo-cdc/s3', ['@aws-sdk/client-s3', '@aws-sdk/lib-storage'], () => Promise.reject(notFound('@aws-sdk/lib-storage'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingPeerDependencyError);
    const missing = error as MissingPeerDependencyError;
    expect(missing.packageName).toBe('@aws-sdk/lib-storage');
    expect(missing.message).toBe('dynamo-cdc/s3 needs @aws-sdk/lib-storage, which is not installed: run npm i @aws-sdk/client-s3 @aws-sdk/lib-storage');
    expect(missing.stack).not.toContain('\n');
    expect(Object.keys(missing)).toEqual([]); // nothing more for Node to print after the line
  });

  it('recognises a subpath of the peer (@opensearch-project/opensearch/aws)', () => {
    const error = Object.assign(new Error("Cannot find module '/app/node_modules/@opensearch-project/opensearch/aws' imported from /app/x.js"), { code: 'ERR_MODULE_NOT_FOUND' });
    expect(missingPeerOf(error, ['@opensearch-project/opensearch'])).toBe('@opensearch-project/opensearch');
  });

  it('rethrows any other failure as it is: another missing package, or an error of the module itself', async () => {
    const other = notFound('@aws-sdk/client-sqs');
    await expect(importWithPeers('dynamo-cdc/eventbridge', ['@aws-sdk/client-eventbridge'], () => Promise.reject(other))).rejects.toBe(other);
    const broken = new TypeError('x is not a function');
    await expect(importWithPeers('dynamo-cdc/eventbridge', ['@aws-sdk/client-eventbridge'], () => Promise.reject(broken))).rejects.toBe(broken);
  });

  it('returns the module when its peers are there', async () => {
    await expect(importWithPeers('dynamo-cdc/x', ['y'], () => Promise.resolve({ ok: 1 }))).resolves.toEqual({ ok: 1 });
  });

  it('recognises the error Node itself throws for a package that is not installed', async () => {
    const real = await import('dynamo-cdc-no-such-package' as string).catch((e: unknown) => e);
    expect(missingPeerOf(real, ['dynamo-cdc-no-such-package'])).toBe('dynamo-cdc-no-such-package');
  });
});
