import { Client } from '@opensearch-project/opensearch';
import type { ApiResponse } from '@opensearch-project/opensearch';
import { AwsSigv4Signer } from '@opensearch-project/opensearch/aws';
import { ConfigError, describeError, DynamoCdcError, EntryFailedError } from '../../errors.js';
import type { BackfillEvent, ChangeEvent, InsertEvent, Item, ModifyEvent } from '../../events.js';
import type { SinkFailure } from '../../ports.js';
import { toJson } from '../../serialize.js';
import { keyDocumentId, MAX_DOCUMENT_ID_BYTES } from './document-id.js';
import { OpenSearchRequestError, OversizedDocumentError } from './errors.js';
import { classifyBulkItem, redactReason } from './item-result.js';
import type { OpenSearchAwsCredentials, OpenSearchAwsOptions, OpenSearchSink, OpenSearchSinkOptions } from './types.js';
import { changeVersion, versionDigits } from './version.js';
import { perEvent, prepareEach } from '../per-event.js';

const DEFAULT_MAX_RECORDS = 1000;
const DEFAULT_MAX_BYTES = 5 * 1024 * 1024;

type Action = 'index' | 'delete';

/** An event's bulk lines, built once per event object and reused by `sizeOf`, `send` and retries. */
interface Prepared {
  readonly action: Action;
  readonly index: string;
  readonly id: string;
  /** The action line, and the document line for an index, each ending in a newline. */
  readonly lines: string;
  readonly size: number;
}

const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

// OpenSearch's rules for index names (MetadataCreateIndexService.validateIndexOrAliasName).
const INDEX_FORBIDDEN = /[\\/*?"<>| ,#:]/;

/** Why `name` is not a valid index name, or `undefined` when it is one. */
const indexNameProblem = (name: string): string | undefined => {
  if (name !== name.toLowerCase()) return 'must be lower case';
  if (INDEX_FORBIDDEN.test(name)) return 'must not contain \\ / * ? " < > | , # : or a space';
  if (/^[-_+]/.test(name)) return 'must not start with -, _ or +';
  if (name === '.' || name === '..') return 'must not be . or ..';
  if (Buffer.byteLength(name, 'utf8') > 255) return 'must be at most 255 bytes';
  return undefined;
};

const checkFunction = (field: string, value: unknown, expected: string): void => {
  if (value !== undefined && typeof value !== 'function') throw new ConfigError(field, `must be ${expected}, got ${show(value)}.`);
};

const checkInteger = (field: string, value: unknown, min: number, fix: string): void => {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) {
    throw new ConfigError(field, `must be an integer >= ${min}, got ${show(value)}. ${fix}`);
  }
};

const validate = <T>(options: OpenSearchSinkOptions<T>): void => {
  if (!isObject(options)) {
    throw new ConfigError('openSearch', `must be an options object, got ${show(options)}. Call openSearch({ index: 'tasks', node: 'https://...' }).`);
  }
  const { index } = options;
  if (typeof index === 'string') {
    const problem = index.trim() === '' ? 'must not be empty' : indexNameProblem(index);
    if (problem) throw new ConfigError('openSearch.index', `${problem}, got ${show(index)}. Use a lower-case index or alias name such as 'tasks'.`);
  } else if (typeof index !== 'function') {
    throw new ConfigError('openSearch.index', `must be an index name or a function (event) => string, got ${show(index)}. Set index to the index or alias to write to, such as openSearch({ index: 'tasks', node }).`);
  }
  checkFunction('openSearch.id', options.id, 'a function (event) => string');
  checkFunction('openSearch.routing', options.routing, 'a function (event) => string | undefined');
  checkFunction('openSearch.document', options.document, 'a function (event) => object');
  if (options.version !== undefined && options.version !== false && typeof options.version !== 'function') {
    throw new ConfigError('openSearch.version', `must be a function (event) => number | bigint, or false, got ${show(options.version)}. Leave it out to version by the change's creation time.`);
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.trim() === '')) {
    throw new ConfigError('openSearch.name', `must be a non-empty string, got ${show(options.name)}. Give the sink a name unique among the sinks of the app, or leave it out.`);
  }
  checkInteger('openSearch.maxRecords', options.maxRecords, 1, 'Set the most documents one bulk request may carry (1000 is a good start), or leave it out.');
  checkInteger('openSearch.maxBytes', options.maxBytes, 1, "Set the most bytes one bulk request may carry, below the cluster's http.max_content_length, or leave it out.");
  if (options.client !== undefined) {
    if (!isObject(options.client) || !isObject(options.client.transport)) {
      throw new ConfigError('openSearch.client', `must be a Client of @opensearch-project/opensearch, got ${show(options.client)}.`);
    }
    for (const field of ['node', 'aws'] as const) {
      if (options[field] !== undefined) {
        throw new ConfigError(`openSearch.${field}`, `is set together with \`client\`, which it would not reach. Build the client with it, or drop \`client\` to let the sink build one.`);
      }
    }
    return;
  }
  if (typeof options.node !== 'string' || !URL.canParse(options.node) || !/^https?:$/.test(new URL(options.node).protocol)) {
    throw new ConfigError('openSearch.node', `must be the http(s) URL of the cluster, got ${show(options.node)}. Set node: 'https://search-my-domain-abc123.eu-west-1.es.amazonaws.com', or pass a \`client\`.`);
  }
  const aws = options.aws;
  if (aws !== undefined) {
    if (!isObject(aws) || typeof aws.region !== 'string' || aws.region === '') {
      throw new ConfigError('openSearch.aws.region', `must be the region of the domain, got ${show(isObject(aws) ? aws.region : aws)}. Set aws: { region: 'eu-west-1' }.`);
    }
    if (aws.service !== undefined && aws.service !== 'es' && aws.service !== 'aoss') {
      throw new ConfigError('openSearch.aws.service', `must be 'es' (OpenSearch Service) or 'aoss' (OpenSearch Serverless), got ${show(aws.service)}.`);
    }
    checkFunction('openSearch.aws.credentials', aws.credentials, 'a function () => Promise<credentials>');
  }
};

// Loaded on the first signed request, so apps that do not sign never load the AWS SDK.
let defaultCredentials: Promise<() => Promise<OpenSearchAwsCredentials>> | undefined;
const loadDefaultCredentials = async (): Promise<OpenSearchAwsCredentials> => {
  defaultCredentials ??= import('@aws-sdk/credential-provider-node').then((m) => m.defaultProvider());
  return (await defaultCredentials)();
};

const buildClient = (node: string, aws: OpenSearchAwsOptions | undefined): Client => {
  // The engine owns retries: client retries on top would multiply attempts and hide throttling.
  if (!aws) return new Client({ node, maxRetries: 0 });
  const signer = AwsSigv4Signer({ region: aws.region, service: aws.service ?? 'es', getCredentials: aws.credentials ?? loadDefaultCredentials });
  return new Client({ node, maxRetries: 0, Connection: signer.Connection, Transport: signer.Transport });
};

const eventIdOf = (event: unknown): string => (isObject(event) && typeof event['eventID'] === 'string' ? event['eventID'] : '(no eventID)');

/**
 * Writes change events to an OpenSearch index with the bulk API: an insert or a modify indexes the
 * item's document, a remove deletes it, under a document id made from the item's key. Each write
 * carries an external version (the change's creation time by default, `version_type: external_gte`),
 * so a change that arrives late, after a newer one, never replaces it: OpenSearch answers 409, and
 * the sink counts that as delivered. Per-item results decide what is retried: 429 and 5xx items are
 * retried on their own; mapping and parse errors are PERMANENT and go to the dead-letter queue.
 *
 * A bulk request applies its actions in order for each shard, and all changes of one item go to the
 * same shard, so `preservesOrderWithinRequest` is true: the engine may send consecutive changes of
 * an item in one request. With external versions an out-of-order write could not win anyway.
 *
 * @example
 * import { openSearch } from 'dynamo-cdc/opensearch';
 *
 * route(Task).to(openSearch({
 *   index: 'tasks',
 *   node: 'https://search-app-abc123.eu-west-1.es.amazonaws.com',
 *   aws: { region: 'eu-west-1' },
 * }))
 */
export const openSearch = <T = Item>(options: OpenSearchSinkOptions<T>): OpenSearchSink<T> => {
  validate(options);
  const name = options.name ?? 'opensearch';
  const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const client = options.client ?? buildClient(options.node as string, options.aws);
  const indexOption = options.index;
  const idOption = options.id;
  const routingOption = options.routing;
  const documentOption = options.document;
  const versionOption = options.version === undefined ? (changeVersion as (event: ChangeEvent<T>) => number) : options.version;

  const indexOf = (event: ChangeEvent<T>): string => {
    if (typeof indexOption === 'string') return indexOption;
    const value = indexOption(event);
    const problem = typeof value !== 'string' || value === '' ? 'must return a non-empty string' : indexNameProblem(value);
    if (problem) throw new ConfigError('openSearch.index', `returned ${show(value)} for event ${event.eventID}; the index name ${problem}.`);
    return value;
  };

  const idOf = (event: ChangeEvent<T>): string => {
    const value = idOption ? idOption(event) : keyDocumentId(event.key as Item);
    if (typeof value !== 'string' || value === '') throw new ConfigError('openSearch.id', `returned ${show(value)} for event ${event.eventID}; it must return a non-empty string.`);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_DOCUMENT_ID_BYTES) {
      const fix = idOption ? 'Return a shorter id' : 'Set `id` to make shorter ids (a hash of the key, say)';
      throw new DynamoCdcError(`The document id of event ${event.eventID} is ${bytes} bytes; OpenSearch takes at most ${MAX_DOCUMENT_ID_BYTES}. ${fix}`, 'PERMANENT');
    }
    return value;
  };

  const routingOf = (event: ChangeEvent<T>): string | undefined => {
    if (!routingOption) return undefined;
    const value = routingOption(event);
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      throw new ConfigError('openSearch.routing', `returned ${show(value)} for event ${event.eventID}; it must return a non-empty string or undefined.`);
    }
    return value;
  };

  const documentOf = (event: InsertEvent<T> | ModifyEvent<T> | BackfillEvent<T>): string => {
    const value = documentOption ? documentOption(event) : event.newImage;
    if (!isObject(value)) throw new ConfigError('openSearch.document', `returned ${show(value)} for event ${event.eventID}; a document must be a JSON object.`);
    return toJson(value);
  };

  const build = (event: ChangeEvent<T>): Prepared => {
    if (!isObject(event) || !isObject(event.key) || !isObject(event.meta) || (event.kind !== 'insert' && event.kind !== 'modify' && event.kind !== 'remove' && event.kind !== 'backfill')) {
      throw new DynamoCdcError(
        `Sink ${name} got something that is not a change event (event ${eventIdOf(event)}): it needs kind, key and meta to choose the action, the id and the version. Shape the document with the \`document\` option rather than a route's transform`,
        'PERMANENT',
      );
    }
    const action: Action = event.kind === 'remove' ? 'delete' : 'index';
    const index = indexOf(event);
    const id = idOf(event);
    const routing = routingOf(event);
    let meta = `"_index":${JSON.stringify(index)},"_id":${JSON.stringify(id)}`;
    if (routing !== undefined) meta += `,"routing":${JSON.stringify(routing)}`;
    // Written as digits, not through JSON.stringify: a bigint version has no JSON form.
    if (versionOption !== false) meta += `,"version":${versionDigits(versionOption(event), event.eventID)},"version_type":"external_gte"`;
    let lines = `{"${action}":{${meta}}}\n`;
    if (event.kind !== 'remove') lines += `${documentOf(event)}\n`;
    return { action, index, id, lines, size: Buffer.byteLength(lines, 'utf8') };
  };

  const prepare = perEvent<ChangeEvent<T>, Prepared>(build);

  const requestError = (error: unknown, actions: number, bytes: number): OpenSearchRequestError => {
    const status = isObject(error) && typeof error['statusCode'] === 'number' ? error['statusCode'] : undefined;
    const { name: errorName, message } = describeError(error);
    const what = `OpenSearch bulk request of ${actions} actions (${bytes} bytes) from sink ${name}`;
    const hint = status === 413 ? ` Lower \`maxBytes\` of sink ${name} below the cluster's http.max_content_length.` : '';
    const outcome = status === undefined ? `failed with ${errorName}` : `was answered HTTP ${status}`;
    return new OpenSearchRequestError(`${what} ${outcome}: ${redactReason(message)}.${hint}`, status, { cause: error });
  };

  /** Sends one bulk request; resolves with its per-item results, in request order. */
  const bulk = async (body: string, actions: number, bytes: number, signal: AbortSignal): Promise<readonly unknown[]> => {
    // maxRetries: 0 on the request as well, so that a client passed in cannot retry either.
    const request = client.transport.request({ method: 'POST', path: '/_bulk', bulkBody: body }, { maxRetries: 0 });
    const abort = (): void => void request.abort();
    signal.addEventListener('abort', abort, { once: true });
    let response: ApiResponse;
    try {
      response = await request;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw requestError(error, actions, bytes);
    } finally {
      signal.removeEventListener('abort', abort);
    }
    const items = isObject(response.body) ? response.body['items'] : undefined;
    if (!Array.isArray(items) || items.length !== actions) {
      // Acknowledging actions that may have failed could lose them: fail the request as a whole.
      throw new OpenSearchRequestError(
        `OpenSearch answered a bulk request of ${actions} actions from sink ${name} with ${Array.isArray(items) ? `${items.length} results` : 'no item results'}; which actions failed is unknown`,
        undefined,
      );
    }
    return items;
  };

  return {
    name,
    client,
    limits: { maxRecords, maxBytes },
    preservesOrderWithinRequest: true,

    sizeOf(event) {
      const { size } = prepare(event);
      if (size > maxBytes) throw new OversizedDocumentError(name, eventIdOf(event), size, maxBytes);
      return size;
    },

    async send(events, signal) {
      signal.throwIfAborted();
      if (events.length > maxRecords) throw new RangeError(`Sink ${name} got ${events.length} events in one request; its limit is ${maxRecords}`);
      const failed: SinkFailure[] = [];
      const sent: { readonly index: number; readonly prepared: Prepared }[] = [];
      const parts: string[] = [];
      let bytes = 0;
      prepareEach(events, prepare, failed, (prepared, index) => {
        sent.push({ index, prepared });
        parts.push(prepared.lines);
        bytes += prepared.size;
      });
      if (bytes > maxBytes) throw new RangeError(`Sink ${name} got ${bytes} bytes of bulk lines in one request; its limit is ${maxBytes}`);
      if (sent.length === 0) return { failed };

      const items = await bulk(parts.join(''), sent.length, bytes, signal);
      // Results come back in request order, one per action.
      items.forEach((item, i) => {
        const { index, prepared } = sent[i] as (typeof sent)[number];
        const result = isObject(item) ? (item[prepared.action] ?? Object.values(item)[0]) : undefined;
        const status = isObject(result) && typeof result['status'] === 'number' ? result['status'] : undefined;
        const error = isObject(result) && isObject(result['error']) ? result['error'] : undefined;
        const type = typeof error?.['type'] === 'string' ? error['type'] : undefined;
        if (status === undefined) {
          failed.push({ index, error: new EntryFailedError('unknown_result', `OpenSearch answered the ${prepared.action} in index ${prepared.index} without a status`, 'TRANSIENT') });
          return;
        }
        const outcome = classifyBulkItem(status, type, prepared.action);
        if (outcome === 'ok') return;
        const reason = typeof error?.['reason'] === 'string' ? redactReason(error['reason']) : 'no reason given';
        const code = type ?? `http_${status}`;
        failed.push({ index, error: new EntryFailedError(code, `OpenSearch rejected the ${prepared.action} in index ${prepared.index} (HTTP ${status}, ${code}): ${reason}`, outcome) });
      });
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
