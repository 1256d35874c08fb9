import { createHash } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { ConfigError, DynamoCdcError, EntryFailedError, OversizedEventError } from '../../errors.js';
import type { ChangeEvent } from '../../events.js';
import type { ClaimCheckPointer, SinkFailure } from '../../ports.js';
import { toJson } from '../../serialize.js';
import { claimCheckEnvelope } from '../claim-check.js';
import { putEventsEntrySize } from './entry-size.js';
import { classifyPutEventsError } from './error-classes.js';
import type { EventBridgeSink, EventBridgeSinkOptions } from './types.js';
import { perEvent, prepareEach } from '../per-event.js';

/** PutEvents takes at most 10 entries a request. */
const MAX_ENTRIES = 10;
const DEFAULT_MAX_REQUEST_BYTES = 1_048_576;

/**
 * The pointer a claim-check store returns is not known before the payload is stored, but the
 * engine sizes entries before that. So the pointer entry is sized with the longest pointer an S3
 * store makes: a bucket of up to 256 characters (an access point ARN is longer than a bucket name's
 * 63) and a key of up to 1,024 bytes, S3's limit. Send checks that the real entry is not larger.
 */
const longestPointer = (size: number): ClaimCheckPointer => {
  const bucket = 'b'.repeat(256);
  const key = 'k'.repeat(1024);
  return { bucket, key, uri: `s3://${bucket}/${key}`, size };
};

/** An entry built once per event object; `claim` is set when it is too large and claim-check is on. */
interface Prepared {
  readonly entry: PutEventsRequestEntry;
  readonly size: number;
  readonly claim: Claim | undefined;
}

interface Claim {
  /** Key of the stored payload: the eventID, or a hash of the payload for an event without one. */
  readonly id: string;
  /** Upper bound of the pointer entry's size; what `sizeOf` reports. */
  readonly size: number;
  /** Once stored: retries reuse the pointer rather than storing the payload again. */
  pointerEntry?: PutEventsRequestEntry;
}

const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  if (value instanceof Date) return `\`${String(value)}\` (Date)`;
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const nonEmpty = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

const asRecord = (value: unknown): Record<string, unknown> => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {});

/** What the defaults read from an event, which may be a ChangeEvent or whatever a transform made. */
const factsOf = (event: unknown) => {
  const e = asRecord(event);
  const meta = asRecord(e['meta']);
  const time = meta['approximateCreationTime'];
  return {
    eventID: nonEmpty(e['eventID']) ?? nonEmpty(meta['eventID']),
    entity: nonEmpty(e['entity']),
    kind: nonEmpty(e['kind']),
    table: nonEmpty(meta['table']),
    time: typeof time === 'number' && Number.isFinite(time) ? time : undefined,
  };
};

const defaultSource = (event: unknown): string => {
  const { table } = factsOf(event);
  return table === undefined ? 'dynamo-cdc' : `dynamo-cdc.${table}`;
};

const defaultDetailType = (event: unknown): string => {
  const { entity, table, kind } = factsOf(event);
  const subject = entity ?? table;
  return subject !== undefined && kind !== undefined ? `${subject}.${kind}` : 'dynamo-cdc.event';
};

const defaultTime = (event: unknown): number | undefined => factsOf(event).time;

const checkString = (field: string, value: unknown, fix: string): string => {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(field, `must be a non-empty string, got ${show(value)}. ${fix}`);
  return value;
};

const checkFunction = (field: string, value: unknown, expected: string): void => {
  if (value !== undefined && typeof value !== 'function') throw new ConfigError(field, `must be ${expected}, got ${show(value)}.`);
};

/** A string option, or a function of the event whose result is checked each time. */
const stringOf = <E>(field: string, option: string | ((event: E) => string) | undefined, fallback: (event: E) => string): ((event: E) => string) => {
  if (option === undefined) return fallback;
  if (typeof option === 'string') {
    checkString(field, option, 'Leave it out for the default.');
    return () => option;
  }
  checkFunction(field, option, 'a string or a function (event) => string');
  return (event) => {
    const value = option(event);
    if (typeof value !== 'string' || value === '') throw new ConfigError(field, `returned ${show(value)} for event ${String(factsOf(event).eventID)}; it must return a non-empty string.`);
    return value;
  };
};

const toDate = (value: unknown, event: unknown): Date | undefined => {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : typeof value === 'number' ? new Date(value) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new ConfigError('eventBridge.time', `returned ${show(value)} for event ${String(factsOf(event).eventID)}; it must return epoch milliseconds, a valid Date or undefined.`);
  }
  return date;
};

const toResources = (value: unknown, event: unknown): string[] => {
  if (!Array.isArray(value) || value.some((r) => typeof r !== 'string')) {
    throw new ConfigError('eventBridge.resources', `returned ${show(value)} for event ${String(factsOf(event).eventID)}; it must return an array of ARNs (strings).`);
  }
  return [...(value as string[])];
};

const validate = <E>(options: EventBridgeSinkOptions<E>): void => {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('eventBridge', `must be an options object, got ${show(options)}. Call eventBridge({ busName: 'my-bus' }).`);
  }
  checkString('eventBridge.busName', options.busName, "Set busName to the name or ARN of the event bus, such as eventBridge({ busName: 'app' }) (use 'default' for the account's default bus).");
  if (options.name !== undefined) checkString('eventBridge.name', options.name, 'Give the sink a name unique among the sinks of the app, or leave it out.');
  checkFunction('eventBridge.detail', options.detail, 'a function (event) => object');
  checkFunction('eventBridge.resources', options.resources, 'a function (event) => string[]');
  checkFunction('eventBridge.time', options.time, 'a function (event) => Date | number | undefined');
  const max = options.maxRequestBytes;
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 2)) {
    throw new ConfigError('eventBridge.maxRequestBytes', `must be an integer >= 2, got ${show(max)}. Set your account's PutEvents request quota in bytes (1_048_576, or 262_144 on the older 256 KB quota), or leave it out.`);
  }
  if (options.claimCheck !== undefined && typeof (options.claimCheck as { put?: unknown } | null)?.put !== 'function') {
    throw new ConfigError('eventBridge.claimCheck', `must be a claim-check store with a put() method, got ${show(options.claimCheck)}. Use s3ClaimCheck({ bucket }) from dynamo-cdc/s3.`);
  }
  if (options.client !== undefined) {
    for (const field of ['region', 'endpoint'] as const) {
      if (options[field] !== undefined) {
        throw new ConfigError(`eventBridge.${field}`, `is set together with \`client\`, which it would not reach. Set ${field} on the client you pass, or drop \`client\` to let the sink build one.`);
      }
    }
  }
};

/**
 * Delivers events to an EventBridge event bus with `PutEvents`: up to 10 entries a request, their
 * sizes (counted as AWS does) totalling less than `maxRequestBytes`. A failed entry is retried by
 * the engine on its own (throttling and internal failures) or dead-lettered at once (malformed
 * detail, access denied, a missing bus); see `putEventsErrorClasses`. Each entry's `Detail`
 * carries `eventID`, the idempotency key for consumers. EventBridge does not keep the order of a
 * request's entries, so `preservesOrderWithinRequest` is false; the engine still keeps each item's
 * order by sending its next change only after the previous one is acknowledged.
 *
 * An event too large for one entry is stored in `claimCheck` and sent as a pointer envelope; with
 * no claim-check store it fails PERMANENT (`OversizedEventError`) and goes to the dead-letter queue.
 *
 * @example
 * import { eventBridge } from 'dynamo-cdc/eventbridge';
 *
 * route(Task).on('modify').when((e) => e.changed.includes('Status'))
 *   .to(eventBridge({ busName: 'app', detailType: (e) => `Task.${e.newImage.Status}` }))
 */
export const eventBridge = <E = ChangeEvent>(options: EventBridgeSinkOptions<E>): EventBridgeSink<E> => {
  validate(options);
  const { busName, claimCheck } = options;
  const name = options.name ?? 'eventbridge';
  const maxBytes = (options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES) - 1; // "less than" the quota
  const source = stringOf<E>('eventBridge.source', options.source, defaultSource);
  const detailType = stringOf<E>('eventBridge.detailType', options.detailType, defaultDetailType);
  const detail = options.detail ?? ((event: E): unknown => event);
  const resources = options.resources;
  const time = options.time ?? defaultTime;
  // The engine owns retries: SDK retries on top would multiply attempts and hide throttling from it.
  const client =
    options.client ??
    new EventBridgeClient({
      maxAttempts: 1,
      ...(options.region === undefined ? {} : { region: options.region }),
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    });

  // sizeOf and send see the same event objects; build each entry (and its JSON) once.

  const build = (event: E): Prepared => {
    const entry: PutEventsRequestEntry = {
      EventBusName: busName,
      Source: source(event),
      DetailType: detailType(event),
      Detail: toJson(detail(event)),
    };
    if (resources) {
      const list = toResources(resources(event), event);
      if (list.length > 0) entry.Resources = list;
    }
    const at = toDate(time(event), event);
    if (at !== undefined) entry.Time = at;
    const size = putEventsEntrySize(entry);
    if (size <= maxBytes || !claimCheck) return { entry, size, claim: undefined };
    const body = entry.Detail as string;
    const id = factsOf(event).eventID ?? createHash('sha256').update(body).digest('hex');
    const envelope = toJson(claimCheckEnvelope(event, longestPointer(Buffer.byteLength(body, 'utf8'))));
    return { entry, size, claim: { id, size: size - Buffer.byteLength(body, 'utf8') + Buffer.byteLength(envelope, 'utf8') } };
  };

  const prepare = perEvent<E, Prepared>(build);

  /** Stores the full Detail and returns the entry that points at it. */
  const claimed = async (event: E, prepared: Prepared, claim: Claim, signal: AbortSignal): Promise<PutEventsRequestEntry> => {
    if (claim.pointerEntry) return claim.pointerEntry;
    const pointer = await (claimCheck as NonNullable<typeof claimCheck>).put(claim.id, prepared.entry.Detail as string, signal);
    const entry: PutEventsRequestEntry = { ...prepared.entry, Detail: toJson(claimCheckEnvelope(event, pointer)) };
    const size = putEventsEntrySize(entry);
    if (size > claim.size) {
      throw new DynamoCdcError(
        `The claim-check pointer for event ${claim.id} makes an entry of ${size} bytes, more than the ${claim.size} bytes sink ${name} reserved for it: the claim-check store returned a bucket longer than 256 characters or a key longer than S3 allows`,
        'PERMANENT',
      );
    }
    claim.pointerEntry = entry;
    return entry;
  };

  return {
    name,
    busName,
    client,
    limits: { maxRecords: MAX_ENTRIES, maxBytes },
    preservesOrderWithinRequest: false,

    sizeOf(event) {
      const prepared = prepare(event);
      return prepared.claim ? prepared.claim.size : prepared.size;
    },

    async send(events, signal) {
      signal.throwIfAborted();
      if (events.length > MAX_ENTRIES) throw new RangeError(`Sink ${name} got ${events.length} events in one request; PutEvents takes at most ${MAX_ENTRIES}`);
      const failed: SinkFailure[] = [];
      const entries: (PutEventsRequestEntry | undefined)[] = new Array<PutEventsRequestEntry | undefined>(events.length);
      const claims: Promise<void>[] = [];
      prepareEach(events, prepare, failed, (prepared, index, event) => {
        if (prepared.size <= maxBytes) entries[index] = prepared.entry;
        else if (!prepared.claim) failed.push({ index, error: new OversizedEventError(name, prepared.size, maxBytes) });
        else {
          claims.push(
            claimed(event, prepared, prepared.claim, signal).then(
              (entry) => {
                entries[index] = entry;
              },
              (error: unknown) => {
                failed.push({ index, error });
              },
            ),
          );
        }
      });
      await Promise.all(claims);

      const sent: { index: number; entry: PutEventsRequestEntry }[] = [];
      let bytes = 0;
      entries.forEach((entry, index) => {
        if (entry === undefined) return;
        sent.push({ index, entry });
        bytes += putEventsEntrySize(entry);
      });
      if (bytes > maxBytes) throw new RangeError(`Sink ${name} got entries of ${bytes} bytes in one request; PutEvents takes less than ${maxBytes + 1}`);
      if (sent.length > 0) {
        const out = await client.send(new PutEventsCommand({ Entries: sent.map((s) => s.entry) }), { abortSignal: signal });
        const results = out.Entries;
        if (!Array.isArray(results) || results.length !== sent.length) {
          // Acknowledging entries that may have failed could lose them: fail the request as a whole.
          if (out.FailedEntryCount !== 0) {
            throw new Error(`PutEvents answered a request of ${sent.length} entries with ${Array.isArray(results) ? results.length : 'no'} results and FailedEntryCount ${String(out.FailedEntryCount)}; which entries failed is unknown`);
          }
        } else {
          results.forEach((result, i) => {
            if (result.ErrorCode === undefined && result.EventId !== undefined) return;
            const code = result.ErrorCode ?? 'UnknownError';
            const message = result.ErrorMessage ?? (result.ErrorCode === undefined ? 'PutEvents returned neither an EventId nor an ErrorCode for this entry' : code);
            failed.push({
              index: (sent[i] as (typeof sent)[number]).index,
              error: new EntryFailedError(code, `EventBridge rejected the entry on bus ${busName}: ${message}`, classifyPutEventsError(code)),
            });
          });
        }
      }
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
