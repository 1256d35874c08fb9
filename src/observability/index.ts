export { combineObservers, createWorkerMetrics, livenessDetails } from './metrics.js';
export type { MetricsWorker, WorkerMetrics, WorkerMetricsOptions } from './metrics.js';
export { startMetricsServer } from './http-server.js';
export type { MetricsServer, MetricsServerOptions } from './http-server.js';
export { emfObserver } from './emf.js';
export type { EmfObserverOptions } from './emf.js';
