import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError } from '../errors.js';

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** TCP port; `0` picks a free one, reported as {@link MetricsServer.port}. */
  readonly port: number;
  /** @default '0.0.0.0' (every interface, as a scraper in another container needs) */
  readonly host?: string;
  /** Served at `GET /metrics`. */
  readonly registry: Registry;
  /** `GET /healthz` answers 200 while this returns true, 503 otherwise (and when it throws). */
  readonly isLive: () => boolean;
  /** Added to the 503 body of `/healthz`, to say what is wrong. @default nothing */
  readonly notLiveDetails?: () => Record<string, unknown>;
}

/** A running metrics server. */
export interface MetricsServer {
  /** The port it listens on (the one picked when asked for `0`). */
  readonly port: number;
  /** Stops accepting connections and resolves once open requests are answered. Safe to call twice. */
  close(): Promise<void>;
}

const NOT_LIVE = 'not live: coordination stalled or stopped, a shard failed, or a shard has not read or checkpointed recently';

const send = (res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
};

/**
 * A small HTTP server for a worker: `GET /metrics` in the Prometheus text format, `GET /healthz`
 * for liveness probes (200 `ok`, or 503 with a JSON reason), 404 for anything else.
 *
 * @example
 * const server = await startMetricsServer({ port: 9464, registry: metrics.registry, isLive: () => worker.isLive() });
 * process.once('SIGTERM', () => void worker.stop().then(() => server.close()));
 */
export const startMetricsServer = async (options: MetricsServerOptions): Promise<MetricsServer> => {
  const { port, host = '0.0.0.0', registry, isLive, notLiveDetails } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ConfigError('metricsPort', `must be an integer from 0 to 65535 (0 picks a free port), got \`${String(port)}\`.`);

  const metrics = async (res: ServerResponse): Promise<void> => {
    let body: string;
    try {
      body = await registry.metrics();
    } catch (error) {
      return send(res, 500, 'text/plain; charset=utf-8', `collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    send(res, 200, registry.contentType, body);
  };

  const healthz = (res: ServerResponse): void => {
    let live = false;
    let details: Record<string, unknown> = {};
    try {
      live = isLive();
      if (!live && notLiveDetails) details = notLiveDetails();
    } catch (error) {
      details = { error: error instanceof Error ? error.message : String(error) };
    }
    if (live) return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    send(res, 503, 'application/json', `${JSON.stringify({ status: 'unavailable', reason: NOT_LIVE, ...details })}\n`);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz') return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics or /healthz\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return healthz(res);
    void metrics(res);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigError('metricsPort', `\`${port}\` is already in use on ${host}. Pick another port (METRICS_PORT), or turn the metrics server off with \`false\`.`, { cause: error })
          : error,
      );
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });

  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive between scrapes; idle ones would hold close() open.
        server.closeIdleConnections();
      })),
  };
};
