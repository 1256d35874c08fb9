/**
 * The example app: the TaskApp table from DynamoDB's getting-started lab (users and their tasks in
 * one table). `handlers/stream-handler.ts` runs it in Lambda, `handlers/worker.ts` and
 * `dynamo-cdc run` as a worker.
 */
import { consoleSink, defineApp, entity, fileDeadLetterQueue, fileSink, route } from './src/index.js';

export type User = { PK: string; SK: 'PROFILE'; UserId: string; Name: string };
export type Task = { PK: string; SK: string; TaskId: string; Title: string; Status: 'OPEN' | 'IN_PROGRESS' | 'DONE'; Version: number; ExpiresAt?: number };

export const User = entity<User>('User', { key: { PK: 'USER#', SK: 'PROFILE' } });
export const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

const out = process.env['DYNAMO_CDC_OUT'] ?? 'out';

export default defineApp({
  table: process.env['TABLE_NAME'] ?? 'TaskApp',
  routes: [
    // Status changes, as a stream of domain events.
    route(Task)
      .on('modify')
      .when((e) => e.changed.includes('Status'))
      .transform((e) => ({ type: `Task.${e.newImage.Status}`, taskId: e.newImage.TaskId, version: e.newImage.Version, eventID: e.eventID }))
      .to(fileSink({ name: 'task-status', path: `${out}/task-status.ndjson` })),
    // Every change, as it is.
    route('*').to(fileSink({ name: 'all-changes', path: `${out}/changes.ndjson` })),
    // A short line per change, to watch.
    route('*').to(consoleSink({ name: 'console', format: 'summary', stream: process.stderr })),
  ],
  retry: { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 20_000 },
  deadLetter: fileDeadLetterQueue({ path: `${out}/dead-letters.ndjson` }),
});
