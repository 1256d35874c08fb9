import type { Client } from '@opensearch-project/opensearch';
import type { BackfillEvent, ChangeEvent, InsertEvent, Item, ModifyEvent } from '../../events.js';
import type { Sink } from '../../ports.js';

/** AWS credentials, as `@aws-sdk/credential-provider-node` and every AWS SDK v3 provider return them. */
export interface OpenSearchAwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** When they stop working; the signer fetches new ones shortly before. */
  readonly expiration?: Date;
}

/** Request signing for Amazon OpenSearch Service and OpenSearch Serverless. */
export interface OpenSearchAwsOptions {
  /** Region of the domain or collection, such as `eu-west-1`. Required. */
  readonly region: string;
  /**
   * `'es'` for an Amazon OpenSearch Service domain, `'aoss'` for an OpenSearch Serverless collection.
   * @default 'es'
   */
  readonly service?: 'es' | 'aoss';
  /**
   * Where credentials come from.
   * @default `defaultProvider()` of `@aws-sdk/credential-provider-node`: environment, SSO, the shared
   * files, web identity, ECS or EC2 roles, loaded on the first request
   */
  readonly credentials?: () => Promise<OpenSearchAwsCredentials>;
}

/**
 * Options of {@link openSearch}. `index` is required, and so is one of `node` and `client`.
 *
 * @example
 * openSearch({ index: 'tasks', node: 'https://search-app-abc123.eu-west-1.es.amazonaws.com', aws: { region: 'eu-west-1' } })
 */
export interface OpenSearchSinkOptions<T = Item> {
  /**
   * Index (or alias) every document goes to: a name, or a function of the event (an index per
   * entity or per month, say). Index names are lower case. Required.
   */
  readonly index: string | ((event: ChangeEvent<T>) => string);
  /**
   * Document id of the item a change belongs to. It must be the same for every change of an item,
   * or updates and deletes miss the document; at most 512 bytes.
   * @default the item's key attribute values, ordered by attribute name and joined with `|`
   * (`USER#1|TASK#1`); a `|` or `\` inside a value is escaped with `\`
   * @example
   * id: (e) => String(e.key.TaskId)
   */
  readonly id?: (event: ChangeEvent<T>) => string;
  /**
   * Custom routing value, so that documents with the same value share a shard. Return `undefined`
   * for the default routing (by `_id`). It must be the same for every change of an item: a delete
   * with another routing misses the document.
   * @default none: OpenSearch routes by `_id`
   * @example
   * routing: (e) => String(e.key.PK)
   */
  readonly routing?: (event: ChangeEvent<T>) => string | undefined;
  /**
   * The document indexed for an insert, a modify or a backfilled item, serialised as JSON (sets as arrays, exact
   * numbers as strings, binaries as base64). It must be a JSON object. Removes delete the document.
   * @default the item after the change (`newImage`)
   * @example
   * document: (e) => ({ ...e.newImage, eventID: e.eventID, changedAt: e.meta.approximateCreationTime })
   */
  readonly document?: (event: InsertEvent<T> | ModifyEvent<T> | BackfillEvent<T>) => unknown;
  /**
   * External version written with every index and delete (`version_type: external_gte`), so that an
   * older change that arrives late never replaces a newer one. A function must return an integer
   * from 0 to 2^63 - 1 that never decreases for later changes of the same item, even across a
   * delete and a re-create (an update counter that restarts at 1 does not qualify). `false` writes
   * without versions: the last write wins.
   * @default the change's `meta.approximateCreationTime` in epoch milliseconds; see docs/opensearch.md
   */
  readonly version?: ((event: ChangeEvent<T>) => number | bigint) | false;
  /**
   * URL of the cluster, domain or collection endpoint, such as `https://search-app-abc123.eu-west-1.es.amazonaws.com`.
   * Required unless `client` is given.
   */
  readonly node?: string;
  /**
   * The client to send with, instead of one the sink builds. The sink sends every request with
   * `maxRetries: 0` whatever the client's own setting, so the engine stays the only retry owner.
   * @default a new `Client({ node, maxRetries: 0 })`, signing with SigV4 when `aws` is set
   */
  readonly client?: Client;
  /**
   * Sign requests with AWS Signature V4 (Amazon OpenSearch Service, OpenSearch Serverless). Only
   * with `node`; a `client` you pass signs (or not) as you built it.
   * @default none: requests are not signed
   */
  readonly aws?: OpenSearchAwsOptions;
  /**
   * Most actions (documents) in one bulk request.
   * @default 1000
   */
  readonly maxRecords?: number;
  /**
   * Most bytes of NDJSON in one bulk request: the action lines and documents, newlines included.
   * Keep it under the cluster's `http.max_content_length` (Amazon OpenSearch Service: 10 MiB on the
   * smallest instance types, 100 MiB on large ones).
   * @default 5_242_880 (5 MiB)
   */
  readonly maxBytes?: number;
  /** Unique among the sinks of an app; names the sink in logs and dead letters. @default 'opensearch' */
  readonly name?: string;
}

/** The sink {@link openSearch} returns: a {@link Sink} with its client in sight. */
export interface OpenSearchSink<T = Item> extends Sink<ChangeEvent<T>> {
  /** The client that sends the bulk requests: the one given, or the one the sink built. */
  readonly client: Client;
  /** UTF-8 bytes of the event's NDJSON lines (action line, and document for an index), newlines included. */
  sizeOf(event: ChangeEvent<T>): number;
}
