export { FakeClock } from './clock.js';
export { memoryLogger, silentLogger } from './logger.js';
export type { LogEntry } from './logger.js';
export { streamRecords, streamEvent, toGetRecordsShape } from './records.js';
export type { LambdaStreamRecord, RecordOverrides, StreamRecordsOptions } from './records.js';
export { MemoryDeadLetterQueue, MemoryProgressStore, MemorySink, permanentError, throttlingError, transientError } from './sinks.js';
export type { MemorySinkOptions } from './sinks.js';
export { simulateEventSourceMapping } from './event-source-mapping.js';
export type { EventSourceMappingOptions, Invocation } from './event-source-mapping.js';
