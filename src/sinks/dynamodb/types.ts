import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ChangeEvent, Item } from '../../events.js';
import type { Sink } from '../../ports.js';

/** A tombstone's time to live: when DynamoDB's TTL process may delete it. */
export interface TombstoneTtl {
  /** The target table's TTL attribute (epoch seconds); enable TTL on it (UpdateTimeToLive). */
  readonly attribute: string;
  /**
   * Seconds from the delete's `approximateCreationTime` until the tombstone may go. Once it has
   * gone, a replay of changes older than the delete can bring the item back: keep it longer than
   * the furthest back you would replay (the stream keeps 24 h; an S3 export, as long as you keep it).
   */
  readonly seconds: number;
}

/** Options of {@link dynamoDb}. Only `tableName` is required. */
export interface DynamoDbSinkOptions<T = Item> {
  /** The table to write into (the projection, read model or copy). Required. */
  readonly tableName: string;
  /**
   * The target item's primary key for an event. It must identify one source item (see
   * docs/dynamodb-sink.md): the stream position guard compares the positions of one item's changes.
   * @default the source item's key (`event.key`), for a target table with the same key schema
   */
  readonly key?: (event: ChangeEvent<T>) => Item;
  /**
   * The target item's attributes for an insert or a modify (the key and the guard attribute are
   * added). `undefined` takes the item out of the target table as a remove does (a tombstone): a
   * projection of open tasks returns `undefined` once a task is done. Not called for a remove.
   * @default the new image
   */
  readonly item?: (event: ChangeEvent<T>) => Item | undefined;
  /**
   * Attribute holding the stream position (the source sequence number, zero-padded to 40 digits)
   * of the change that wrote the item. Every write is conditional on it being absent or lower, so a
   * replay or a late re-delivery never overwrites a newer state. Reserved for the sink: nothing else
   * may write it.
   * @default '_cdcSeq'
   */
  readonly sequenceAttribute?: string;
  /**
   * Attribute set to `true` on a tombstone: what a remove leaves (the key, the guard attribute and
   * this), so that an older write arriving late cannot bring the item back. Readers skip items that
   * have it (a `FilterExpression` of `attribute_not_exists(_cdcDeleted)`).
   * @default '_cdcDeleted'
   */
  readonly deletedAttribute?: string;
  /** Lets DynamoDB's TTL process delete tombstones after a while. @default tombstones are kept */
  readonly tombstoneTtl?: TombstoneTtl;
  /**
   * Most PutItem requests one `send` has in flight at once (writes of different items go in
   * parallel; one item's changes go one after another, in stream order).
   * @default 25
   */
  readonly maxConcurrentWrites?: number;
  /** Most events one `send` takes. @default 100 */
  readonly maxRecords?: number;
  /** Unique among the sinks of an app; names the sink in logs and dead letters. @default 'dynamodb' */
  readonly name?: string;
  /**
   * The client to use, for instance one with another account's credentials for a cross-account
   * copy. Give it `maxAttempts: 1`: the engine already retries failed writes with backoff.
   * @default a new `DynamoDBClient({ maxAttempts: 1, region, endpoint })` with the credentials of the environment
   */
  readonly client?: DynamoDBClient;
  /** Region of the client the sink builds; not allowed with `client`. @default the environment's (`AWS_REGION`) */
  readonly region?: string;
  /** Endpoint URL of the client the sink builds; not allowed with `client`. @default DynamoDB's regional endpoint */
  readonly endpoint?: string;
}

/** The sink {@link dynamoDb} returns: a {@link Sink} of change events with its client and table in sight. */
export interface DynamoDbSink<T = Item> extends Sink<ChangeEvent<T>> {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}
