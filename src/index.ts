export { defineApp } from './app.js';
export type { App, AppConfig, Ordering, RetryOptions } from './app.js';
export type { GlobalTableOptions } from './global-tables.js';
export { entity } from './entities.js';
export type { Entity, EntityOptions, KeyPattern } from './entities.js';
export { expired, route } from './routes.js';
export type { Route, RouteBuilder } from './routes.js';
export { backfillVersion, BACKFILL_VERSION_MARGIN_MS, decodeRecord, changedAttributes, isBackfillEvent, isExactNumber, parseStreamArn } from './events.js';
export type {
  AttributeValue,
  BackfillEvent,
  BackfillInfo,
  BackfillMeta,
  ChangeEvent,
  ChangeKind,
  DecodeOptions,
  EventMeta,
  InsertEvent,
  Item,
  ModifyEvent,
  NumberMode,
  RawStreamRecord,
  RemoveEvent,
  StreamPosition,
} from './events.js';
export {
  classify,
  ConfigError,
  DynamoCdcError,
  EntryFailedError,
  LeaseLostError,
  MalformedRecordError,
  OversizedEventError,
  PermanentError,
  PoisonRecordError,
  SchemaValidationError,
} from './errors.js';
export type { FailureClass } from './errors.js';
export type { ClaimCheckPointer, ClaimCheckStore, Clock, DeadLetter, DeadLetterError, DeadLetterQueue, Logger, Progress, ProgressKey, ProgressStore, Sink, SinkFailure } from './ports.js';
export { Engine, isDone } from './core/engine.js';
export type { BatchOutcome, EngineObserver, EngineOptions, ProcessOptions, RecordStatus } from './core/engine.js';
export { systemClock } from './core/clock.js';
export { each } from './sinks/each/index.js';
export type { EachContext, EachOptions, EachSink } from './sinks/each/index.js';
export { consoleSink } from './sinks/console/index.js';
export type { ConsoleSinkOptions } from './sinks/console/index.js';
export { fileSink, fileDeadLetterQueue } from './sinks/file/index.js';
export type { FileSinkOptions, FileDeadLetterQueueOptions } from './sinks/file/index.js';
export { createLogger } from './observability/logger.js';
export { createJsonLogger } from './observability/json-logger.js';
export type { JsonLoggerOptions } from './observability/json-logger.js';
export type { CreateLoggerOptions } from './observability/logger.js';
export { toJson } from './serialize.js';
// Only what loads no optional peer: the Prometheus metrics are in `dynamo-cdc/observability` (prom-client).
export { emfObserver } from './observability/emf.js';
export type { EmfObserverOptions } from './observability/emf.js';
export { MissingPeerDependencyError } from './optional-peer.js';
