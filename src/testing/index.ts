export { FakeClock } from './clock.js';
export { memoryLogger, silentLogger } from './logger.js';
export type { LogEntry } from './logger.js';
export { streamRecords, streamEvent, toGetRecordsShape } from './records.js';
export type { LambdaStreamRecord, RecordOverrides, StreamRecordsOptions } from './records.js';
export { MemoryDeadLetterQueue, MemoryProgressStore, MemorySink, permanentError, throttlingError, transientError } from './sinks.js';
export type { MemorySinkOptions } from './sinks.js';
export { simulateEventSourceMapping, simulateRandomEventSourceMapping } from './event-source-mapping.js';
export type {
  EventSourceMappingOptions,
  Invocation,
  PlannedInvocation,
  RandomEventSourceMappingOptions,
  RandomEventSourceMappingResult,
  RandomInvocation,
  StreamHandlerLike,
} from './event-source-mapping.js';
export { MemoryLeaseStore } from './memory-lease-store.js';
export { ScriptedStreams, type ScriptedStreamsCalls, type ScriptedStreamsOptions } from './scripted-streams.js';
export { seededRandom } from './random.js';
export { matchesFilterPattern, passesFilterCriteria } from './filter-pattern.js';
