/**
 * `dynamo-cdc/observability`: Prometheus metrics for the worker (`createWorkerMetrics`, the
 * `/metrics` and `/healthz` server) and the CloudWatch EMF observer. The Prometheus part needs
 * `prom-client`, an optional peer dependency: when it is missing, importing this subpath fails with
 * one line naming it. `emfObserver` needs nothing; the main entry point exports it too.
 */
import { importWithPeers } from '../optional-peer.js';

const metrics = await importWithPeers('dynamo-cdc/observability', ['prom-client'], () => import('./metrics.js'));

export const { combineObservers, createWorkerMetrics, livenessDetails } = metrics;
export type { MetricsWorker, WorkerMetrics, WorkerMetricsOptions } from './metrics.js';
export { startMetricsServer } from './http-server.js';
export type { MetricsServer, MetricsServerOptions } from './http-server.js';
export { emfObserver } from './emf.js';
export type { EmfObserverOptions } from './emf.js';
