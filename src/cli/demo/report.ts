/** Reading the demo's outputs back and accounting for every stream record by its eventID. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { BUCKET, PREFIX } from './app.js';

export type Line = Record<string, unknown>;

/** The JSON lines of a file; none when it does not exist. */
export const readLines = async (path: string): Promise<Line[]> => {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);
};

export const eventIdOf = (line: unknown): string | undefined => {
  const id = (line as { eventID?: unknown } | null | undefined)?.eventID;
  return typeof id === 'string' ? id : undefined;
};

export const idsOf = (lines: readonly unknown[]): Set<string> => new Set(lines.map(eventIdOf).filter((id): id is string => id !== undefined));

/** Lists the export's objects, downloads each into `directory`, and returns their lines. */
export const downloadExport = async (client: S3Client, directory: string): Promise<{ objects: number; lines: Line[] }> => {
  const lines: Line[] = [];
  let objects = 0;
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX, ContinuationToken: token }));
    for (const { Key: key } of page.Contents ?? []) {
      if (!key) continue;
      const { Body } = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      if (!Body) throw new Error(`s3://${BUCKET}/${key} has no body`);
      const stored = Buffer.from(await Body.transformToByteArray());
      const file = join(directory, BUCKET, ...key.split('/'));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, stored);
      const text = (key.endsWith('.gz') ? gunzipSync(stored) : stored).toString('utf8');
      for (const line of text.split('\n')) if (line) lines.push(JSON.parse(line) as Line);
      objects++;
    }
    token = page.NextContinuationToken;
  } while (token);
  return { objects, lines };
};

/** What the demo's outputs hold, read back after the worker stopped. */
export interface Outputs {
  /** eventIDs of the records in the stream. */
  readonly stream: Set<string>;
  readonly allChanges: Line[];
  readonly statusEvents: Line[];
  readonly letters: Line[];
  readonly exported: { readonly objects: number; readonly lines: Line[] };
}

/** Every stream record, accounted for: delivered to both outputs, or dead-lettered, exactly once. */
export interface Accounting {
  readonly inFile: Set<string>;
  readonly inLake: Set<string>;
  readonly delivered: number;
  readonly deadLettered: number;
  /** Records not delivered or dead-lettered exactly once. */
  readonly unaccounted: string[];
  /** Records in the outputs that the stream does not hold (backfill events aside). */
  readonly strangers: string[];
  /** Backfill events delivered to both outputs. */
  readonly backfilled: number;
  /** Backfill events in one output and not the other. */
  readonly backfillMissing: string[];
}

/** Backfill events carry `bf-<backfill id>-<key digest>` as their eventID, never a stream record's. */
const isBackfillId = (id: string): boolean => id.startsWith('bf-');

export const accountFor = (outputs: Outputs): Accounting => {
  const inFile = idsOf(outputs.allChanges);
  const inLake = idsOf(outputs.exported.lines);
  const lettered = idsOf(outputs.letters.map((l) => l['record']));
  let delivered = 0;
  let deadLettered = 0;
  const unaccounted: string[] = [];
  for (const id of outputs.stream) {
    const sent = inFile.has(id) && inLake.has(id);
    const dead = lettered.has(id);
    if (sent && !dead) delivered++;
    else if (dead && !inFile.has(id) && !inLake.has(id)) deadLettered++;
    else unaccounted.push(id);
  }
  const strangers = [...new Set([...inFile, ...inLake, ...lettered])].filter((id) => !outputs.stream.has(id) && !isBackfillId(id));
  const backfill = [...new Set([...inFile, ...inLake])].filter(isBackfillId);
  const backfillMissing = backfill.filter((id) => !inFile.has(id) || !inLake.has(id));
  return { inFile, inLake, delivered, deadLettered, unaccounted, strangers, backfilled: backfill.length - backfillMissing.length, backfillMissing };
};

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The numbers of the run that the outputs do not hold. */
export interface RunFacts {
  readonly changes: number;
  readonly conflicts: number;
  readonly consoleLines: number;
  readonly throttles: number;
  readonly retries: number;
  readonly maxLagMs: number;
  readonly tookMs: number;
  readonly paths: { readonly changes: string; readonly taskStatus: string; readonly deadLetters: string; readonly s3: string };
}

/** The summary table a person reads on stderr. */
export const summaryLines = (outputs: Outputs, accounting: Accounting, facts: RunFacts): string[] => {
  const out: string[] = [];
  const row = (label: string, value: number | string, where = '') => out.push(`  ${label.padEnd(24)} ${String(value).padStart(6)}  ${where}`.trimEnd());
  const { paths } = facts;
  out.push('', 'summary');
  row('changes written', facts.changes, `${outputs.stream.size} records in the stream`);
  row('backfilled', accounting.backfilled, 'items that were in the table before, to the all-changes file and the S3 export');
  row('delivered', accounting.delivered, 'changes, to the all-changes file and the S3 export');
  row('  all-changes file', accounting.inFile.size, `${outputs.allChanges.length} lines -> ${paths.changes}`);
  row('  S3 export', accounting.inLake.size, `${outputs.exported.lines.length} lines in ${outputs.exported.objects} objects -> s3://${BUCKET}/${PREFIX} (copied to ${paths.s3})`);
  row('  task-status events', outputs.statusEvents.length, `-> ${paths.taskStatus}`);
  row('  console (users)', facts.consoleLines, 'lines on stderr');
  row('dead-lettered', accounting.deadLettered, `-> ${paths.deadLetters}`);
  for (const l of outputs.letters) {
    const error = l['error'] as { name?: string; message?: string } | undefined;
    out.push(`    ${eventIdOf(l['record']) ?? '?'}: ${error?.name ?? 'Error'}: ${error?.message ?? ''}`);
  }
  row('throttled requests', facts.throttles, `of the all-changes file, ${facts.retries} entries retried`);
  row('stale updates rejected', facts.conflicts, 'by optimistic locking on Version');
  row('max lag seen', seconds(facts.maxLagMs));
  row('time taken', seconds(facts.tookMs));
  const some = (ids: readonly string[]) => `${ids.slice(0, 5).join(', ')}${ids.length > 5 ? `, and ${ids.length - 5} more` : ''}`;
  if (accounting.unaccounted.length > 0) out.push(`  not accounted for exactly once: ${accounting.unaccounted.length} records, ${some(accounting.unaccounted)}`);
  if (accounting.strangers.length > 0) out.push(`  in the outputs but not in the stream: ${accounting.strangers.length} records, ${some(accounting.strangers)}`);
  if (outputs.stream.size !== facts.changes) out.push(`  the stream holds ${outputs.stream.size} records for ${facts.changes} changes written`);
  out.push('');
  return out;
};
