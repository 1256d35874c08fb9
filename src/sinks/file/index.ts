import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ChangeEvent } from '../../events.js';
import type { DeadLetter, DeadLetterQueue, Sink } from '../../ports.js';
import { toJson } from '../../serialize.js';

/** Options of {@link fileSink}. */
export interface FileSinkOptions {
  /** File to append to; its folder is created when missing. */
  readonly path: string;
  /** @default 'file' */
  readonly name?: string;
  /**
   * Flush each request to the disk (fdatasync) before acknowledging it. Without it, a written line
   * survives a crash of the process but not of the machine.
   * @default false
   */
  readonly fsync?: boolean;
}

const appendLines = async (path: string, lines: string, fsync: boolean): Promise<void> => {
  await mkdir(dirname(path), { recursive: true });
  const file = await open(path, 'a');
  try {
    await file.appendFile(lines, 'utf8');
    if (fsync) await file.datasync();
  } finally {
    await file.close();
  }
};

/**
 * Appends each event as one JSON line (newline-delimited JSON), for development and tests.
 * Acknowledges a request once its lines are written; a request's lines are contiguous and in order.
 *
 * @example
 * route('*').to(fileSink({ path: 'out/events.ndjson' }))
 */
export const fileSink = <E = ChangeEvent>(options: FileSinkOptions): Sink<E> => ({
  name: options.name ?? 'file',
  limits: { maxRecords: 1000, maxBytes: Infinity },
  preservesOrderWithinRequest: true,
  async send(events, signal) {
    signal.throwIfAborted();
    await appendLines(options.path, events.map((e) => `${toJson(e)}\n`).join(''), options.fsync ?? false);
    return { failed: [] };
  },
});

/** Options of {@link fileDeadLetterQueue}. */
export interface FileDeadLetterQueueOptions {
  readonly path: string;
  /** @default 'file-dlq' */
  readonly name?: string;
  /** @default true: a dead letter is the last copy of a record, so it waits for the disk. */
  readonly fsync?: boolean;
}

/** Appends dead letters as JSON lines: a development stand-in for the SQS dead-letter queue. */
export const fileDeadLetterQueue = (options: FileDeadLetterQueueOptions): DeadLetterQueue => ({
  name: options.name ?? 'file-dlq',
  async send(letters: readonly DeadLetter[], signal: AbortSignal) {
    signal.throwIfAborted();
    await appendLines(options.path, letters.map((l) => `${toJson(l)}\n`).join(''), options.fsync ?? true);
  },
});
