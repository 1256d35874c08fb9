import { createReadStream } from 'node:fs';
import { access, appendFile, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { ClaimCheckPointer } from '../ports.js';
import type { AwsTarget } from './aws.js';
import { explainAwsError, isNotFound } from './aws.js';
import { CliError } from './errors.js';

/**
 * A dead letter as stored: the `DeadLetter` the engine wrote, read back from JSON. A letter too
 * large for one SQS message carries `claimCheck` (a pointer to the whole letter in S3) instead of
 * `record`.
 */
export interface StoredLetter {
  readonly record?: unknown;
  readonly sink?: string;
  readonly error: { readonly name: string; readonly message: string; readonly class: string };
  readonly attempts: number;
  readonly firstAttemptAt?: number;
  readonly lastAttemptAt?: number;
  readonly position: { readonly streamArn: string; readonly shardId?: string; readonly sequenceNumber: string; readonly eventID: string };
  readonly claimCheck?: ClaimCheckPointer;
}

/** One entry of a dead-letter source: a letter, or the reason it is not one. */
export interface LetterEntry {
  /** `line 7` of a file, or the SQS message id. */
  readonly id: string;
  readonly letter?: StoredLetter;
  /** Why the entry is not a dead letter (bad JSON, missing fields). */
  readonly invalid?: string;
  readonly receiptHandle?: string;
}

/** Where dead letters are read from, in batches; SQS entries can be removed once redriven. */
export interface LetterSource {
  /** `out/dead-letters.ndjson` or the queue URL, for messages. */
  readonly description: string;
  /** What becomes of letters left in the source: said after a redrive that failed some. */
  readonly leftBehind: string;
  /** Letters not read because an earlier redrive delivered them (a file's progress record); 0 for SQS. */
  skipped(): number;
  /** How many entries there are (approximate for SQS), when known. */
  count(): Promise<number | undefined>;
  batches(): AsyncGenerator<LetterEntry[]>;
  /**
   * Removes entries that were redriven, resolving with how many could not be removed. SQS:
   * DeleteMessage. A file is never changed: the letters are recorded in its progress file instead.
   */
  remove(entries: readonly LetterEntry[]): Promise<number>;
  /** Makes received entries visible again at once (SQS); called once, after the last batch. */
  release(entries: readonly LetterEntry[]): Promise<void>;
  close(): void;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Checks that `value` is a dead letter; returns it, or the reason it is not one. */
export const toLetter = (value: unknown): StoredLetter | string => {
  if (!isObject(value)) return 'not a JSON object';
  const position = value['position'];
  if (!isObject(position) || typeof position['eventID'] !== 'string' || typeof position['streamArn'] !== 'string') {
    return 'no `position` with `streamArn` and `eventID`';
  }
  if (!isObject(value['record']) && !isObject(value['claimCheck'])) return 'no `record` (and no `claimCheck` pointer)';
  const error = isObject(value['error']) ? value['error'] : {};
  return {
    ...(isObject(value['record']) ? { record: value['record'] } : {}),
    ...(typeof value['sink'] === 'string' ? { sink: value['sink'] } : {}),
    error: {
      name: typeof error['name'] === 'string' ? error['name'] : 'Error',
      message: typeof error['message'] === 'string' ? error['message'] : '',
      class: typeof error['class'] === 'string' ? error['class'] : '?',
    },
    attempts: typeof value['attempts'] === 'number' ? value['attempts'] : 0,
    ...(typeof value['firstAttemptAt'] === 'number' ? { firstAttemptAt: value['firstAttemptAt'] } : {}),
    ...(typeof value['lastAttemptAt'] === 'number' ? { lastAttemptAt: value['lastAttemptAt'] } : {}),
    position: {
      streamArn: position['streamArn'],
      ...(typeof position['shardId'] === 'string' ? { shardId: position['shardId'] } : {}),
      sequenceNumber: typeof position['sequenceNumber'] === 'string' ? position['sequenceNumber'] : '',
      eventID: position['eventID'],
    },
    ...(isObject(value['claimCheck']) ? { claimCheck: value['claimCheck'] as unknown as ClaimCheckPointer } : {}),
  };
};

const parseEntry = (id: string, text: string, receiptHandle?: string): LetterEntry => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { id, invalid: `not JSON (${(error as Error).message})`, ...(receiptHandle ? { receiptHandle } : {}) };
  }
  const letter = toLetter(parsed);
  return typeof letter === 'string' ? { id, invalid: letter, ...(receiptHandle ? { receiptHandle } : {}) } : { id, letter, ...(receiptHandle ? { receiptHandle } : {}) };
};

const BATCH = 100;

/** Suffix of the file beside a dead-letter file that records the letters redriven from it. */
export const PROGRESS_SUFFIX = '.redriven';

/** A letter's identity across runs: its record and the sink it is for. */
export const letterKey = (letter: StoredLetter): string => `${letter.position.eventID}\u0000${letter.sink ?? '*'}`;

/** The keys recorded in a progress file (one JSON line per letter redriven); none when it is missing. */
const readProgress = async (path: string): Promise<Set<string>> => {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw error;
  }
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const { eventID, sink } = JSON.parse(line) as { eventID?: unknown; sink?: unknown };
      // A line cut short by a crash is skipped: its letter is sent again, which is at least once.
      if (typeof eventID === 'string') keys.add(`${eventID}\u0000${typeof sink === 'string' ? sink : '*'}`);
    } catch {
      continue;
    }
  }
  return keys;
};

/**
 * `fileDeadLetterQueue`'s file: one JSON letter per line. The file is never changed (the queue may
 * still append to it); the letters redriven from it are recorded beside it in `<file>.redriven`, and
 * the letters recorded there are skipped, so a redrive of the file again sends nothing twice.
 */
export const fileSource = async (path: string, shownPath: string): Promise<LetterSource> => {
  try {
    await access(path);
  } catch {
    throw new CliError(`dead-letter file not found: ${shownPath}. Pass the path fileDeadLetterQueue({ path }) writes to`);
  }
  const progressPath = `${path}${PROGRESS_SUFFIX}`;
  const done = await readProgress(progressPath);
  let skipped = 0;
  const isDone = (entry: LetterEntry): boolean => entry.letter !== undefined && done.has(letterKey(entry.letter));
  const lines = async function* () {
    const reader = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of reader) {
      n++;
      if (line.trim() !== '') yield { n, line };
    }
  };
  return {
    description: shownPath,
    leftBehind: `they stay in ${shownPath}; the ones redriven are recorded in ${shownPath}${PROGRESS_SUFFIX}, so a redrive of the file again sends only the others`,
    skipped: () => skipped,
    async count() {
      let count = 0;
      for await (const { n, line } of lines()) if (!isDone(parseEntry(`line ${n}`, line))) count++;
      return count;
    },
    async *batches() {
      skipped = 0;
      let batch: LetterEntry[] = [];
      for await (const { n, line } of lines()) {
        const entry = parseEntry(`line ${n}`, line);
        if (isDone(entry)) {
          skipped++;
          continue;
        }
        batch.push(entry);
        if (batch.length >= BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    },
    async remove(entries) {
      const letters = entries.flatMap((e) => (e.letter ? [e.letter] : []));
      if (letters.length === 0) return 0;
      // Appended after each batch is delivered, so a crash between the two re-sends at most that batch.
      const at = new Date().toISOString();
      await appendFile(progressPath, letters.map((l) => `${JSON.stringify({ eventID: l.position.eventID, sink: l.sink ?? null, at })}\n`).join(''));
      for (const l of letters) done.add(letterKey(l));
      return 0;
    },
    release: async () => {},
    close: () => {},
  };
};

/** Options of {@link sqsSource}. */
export interface SqsSourceOptions {
  readonly queueUrl: string;
  readonly target: AwsTarget;
  /** Seconds a received message stays hidden from other consumers while it is handled. */
  readonly visibilityTimeout: number;
  /** Stop after this many messages. */
  readonly limit: number | undefined;
}

/**
 * An SQS dead-letter queue: ReceiveMessage, 10 at a time, hiding each for the visibility timeout;
 * redriven messages are deleted, the others made visible again at the end.
 */
export const sqsSource = (options: SqsSourceOptions): LetterSource => {
  const { queueUrl, target } = options;
  const client = new SQSClient({
    ...(target.region ? { region: target.region } : {}),
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 3000, requestTimeout: 30_000 },
  });
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      const name = (error as { name?: unknown } | null)?.name;
      if (isNotFound(error) || name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue') {
        throw new CliError(`queue ${queueUrl} does not exist. Check --queue-url and --region`, { cause: error });
      }
      throw explainAwsError(error, target, 'SQS');
    }
  };
  const inTens = async (entries: readonly LetterEntry[], send: (chunk: LetterEntry[]) => Promise<void>) => {
    const handled = entries.filter((e) => e.receiptHandle !== undefined);
    for (let i = 0; i < handled.length; i += 10) await send(handled.slice(i, i + 10));
  };
  return {
    description: queueUrl,
    leftBehind: `they stay in ${queueUrl}`,
    skipped: () => 0,
    async count() {
      const { Attributes: a } = await call(() => client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] })));
      const n = Number(a?.ApproximateNumberOfMessages);
      return Number.isFinite(n) ? n : undefined;
    },
    async *batches() {
      const seen = new Set<string>();
      let received = 0;
      for (;;) {
        const room = options.limit === undefined ? 10 : Math.min(10, options.limit - received);
        if (room <= 0) return;
        const { Messages: messages = [] } = await call(() =>
          client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: room, VisibilityTimeout: options.visibilityTimeout, WaitTimeSeconds: 1 })),
        );
        // A message seen before came back after its visibility timeout: the queue has been read through.
        const fresh = messages.filter((m) => m.MessageId !== undefined && !seen.has(m.MessageId));
        if (fresh.length === 0) return;
        for (const m of fresh) seen.add(m.MessageId as string);
        received += fresh.length;
        yield fresh.map((m) => parseEntry(m.MessageId as string, m.Body ?? '', m.ReceiptHandle));
      }
    },
    async remove(entries) {
      let failed = 0;
      await inTens(entries, async (chunk) => {
        const response = await call(() => client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((e, i) => ({ Id: String(i), ReceiptHandle: e.receiptHandle })) })));
        failed += response.Failed?.length ?? 0;
      });
      return failed;
    },
    async release(entries) {
      await inTens(entries, async (chunk) => {
        await call(() =>
          client.send(
            new ChangeMessageVisibilityBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((e, i) => ({ Id: String(i), ReceiptHandle: e.receiptHandle, VisibilityTimeout: 0 })) }),
          ),
        );
      });
    },
    close: () => client.destroy(),
  };
};

/**
 * Reads back the whole letter of a claim-checked one (a letter too large for one SQS message, stored
 * in S3 by `sqsDeadLetterQueue`'s `claimCheck`); other letters come back as they are. The S3 client
 * is loaded and built on first use only.
 */
export const claimCheckReader = (target: AwsTarget): ((letter: StoredLetter) => Promise<StoredLetter>) => {
  let read: ((pointer: ClaimCheckPointer) => Promise<unknown>) | undefined;
  return async (letter) => {
    if (letter.record !== undefined || !letter.claimCheck) return letter;
    if (!read) {
      const [{ S3Client }, { readClaimCheck }] = await Promise.all([import('@aws-sdk/client-s3'), import('../sinks/s3/claim-check.js')]);
      const client = new S3Client({ ...(target.region ? { region: target.region } : {}), maxAttempts: 3 });
      read = (pointer) => readClaimCheck(client, pointer);
    }
    let full: unknown;
    try {
      full = await read(letter.claimCheck);
    } catch (error) {
      throw explainAwsError(error, target, 'S3');
    }
    const parsed = toLetter(full);
    if (typeof parsed === 'string') throw new Error(`claim-check object ${letter.claimCheck.uri} is not a dead letter: ${parsed}`);
    return parsed;
  };
};
