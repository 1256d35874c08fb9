/**
 * The demo's app: typed entities and routes over the TaskApp table, as a user of dynamo-cdc writes
 * them, with one destination that throttles now and then so retries show.
 */
import { Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { consoleSink, defineApp, entity, fileDeadLetterQueue, fileSink, route } from '../../index.js';
import type { App, Sink } from '../../index.js';
import { s3Export } from '../../sinks/s3/index.js';
import { throttlingError } from '../../testing/sinks.js';

export const TABLE = 'TaskApp';
export const LEASE_TABLE = 'dynamo-cdc-demo-leases';
export const BUCKET = 'taskapp-lake';
export const PREFIX = 'cdc/';

const TaskSchema = z.object({
  PK: z.string(),
  SK: z.string(),
  TaskId: z.string(),
  Title: z.string(),
  Status: z.enum(['OPEN', 'IN_PROGRESS', 'DONE']),
  Version: z.number().int(),
  /** Epoch seconds: DynamoDB's time to live deletes the task after this. */
  ExpiresAt: z.number().optional(),
});
const UserSchema = z.object({ PK: z.string(), SK: z.literal('PROFILE'), UserId: z.string(), Name: z.string() });

const Task = entity('Task', { key: { PK: 'USER#', SK: 'TASK#' }, schema: TaskSchema });
const User = entity('User', { key: { PK: 'USER#', SK: 'PROFILE' }, schema: UserSchema });

/** Fails every fifth request with a throttle, as a busy destination does, so retries show; the retry is a new request. */
const flaky = <E>(inner: Sink<E>, onThrottle: () => void): Sink<E> => {
  let requests = 0;
  return {
    ...inner,
    send: async (events, signal) => {
      requests++;
      if (requests % 5 === 0) {
        onThrottle();
        throw throttlingError();
      }
      return inner.send(events, signal);
    },
  };
};

/** A Writable for `consoleSink` that prefixes each line and forwards it to `target`. */
const prefixedLines = (target: NodeJS.WritableStream, prefix: string): Writable =>
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8').replace(/^(?=.)/gm, prefix);
      target.write(text, (error) => done(error ?? null));
    },
  });


/** Where the demo's files go. */
export interface Paths {
  readonly changes: string;
  readonly taskStatus: string;
  readonly deadLetters: string;
  readonly s3: string;
}


export const buildApp = (paths: Paths, s3: S3Client, stderr: NodeJS.WritableStream, onThrottle: () => void): App =>
  defineApp({
    table: TABLE,
    routes: [
      // Status changes, as domain events.
      route(Task)
        .on('modify')
        .when((e) => e.changed.includes('Status'))
        .transform((e) => ({
          type: `Task.${e.newImage.Status}`,
          taskId: e.newImage.TaskId,
          from: e.oldImage?.Status,
          version: e.newImage.Version,
          eventID: e.eventID,
          at: new Date(e.meta.approximateCreationTime).toISOString(),
        }))
        .to(fileSink({ name: 'task-status', path: paths.taskStatus })),
      // Every change to the data lake: gzip NDJSON under Hive partitions; short objects for a short demo.
      route('*').to(s3Export({ bucket: BUCKET, prefix: PREFIX, client: s3, rollover: { maxAgeMs: 500 } })),
      // Every change, as it is, to a file; this destination throttles now and then.
      route('*').to(flaky(fileSink({ name: 'all-changes', path: paths.changes }), onThrottle)),
      // A short line per user change, to watch.
      route(User).to(consoleSink({ name: 'console', format: 'summary', stream: prefixedLines(stderr, '  [console] ') })),
    ],
    retry: { maxAttempts: 6, baseDelayMs: 50, maxDelayMs: 1000, throttlingBaseDelayMs: 200 },
    deadLetter: fileDeadLetterQueue({ path: paths.deadLetters }),
  });
