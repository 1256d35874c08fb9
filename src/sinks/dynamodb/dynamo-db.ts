import { setMaxListeners } from 'node:events';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, PutItemCommandInput } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { ConfigError, DynamoCdcError } from '../../errors.js';
import type { ChangeEvent, Item } from '../../events.js';
import { canonicalSequenceNumber, padSequenceNumber } from '../../lambda/progress.js';
import type { SinkFailure } from '../../ports.js';
import { perEvent } from '../per-event.js';
import { ItemTooLargeError, NotAttemptedError } from './errors.js';
import { DYNAMODB_MAX_ITEM_BYTES, itemSize } from './item-size.js';
import type { DynamoDbSink, DynamoDbSinkOptions } from './types.js';

const DEFAULT_MAX_RECORDS = 100;
const DEFAULT_MAX_CONCURRENT_WRITES = 25;

const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const checkString = (field: string, value: unknown, fix: string): void => {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(field, `must be a non-empty string, got ${show(value)}. ${fix}`);
};

const checkInteger = (field: string, value: unknown, min: number, fix: string): void => {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) throw new ConfigError(field, `must be an integer >= ${min}, got ${show(value)}. ${fix}`);
};

const validate = <T>(options: DynamoDbSinkOptions<T>): void => {
  if (options === null || typeof options !== 'object') throw new ConfigError('dynamoDb', `must be an options object, got ${show(options)}. Call dynamoDb({ tableName: 'task-view' }).`);
  checkString('dynamoDb.tableName', options.tableName, "Set tableName to the table to write into, such as dynamoDb({ tableName: 'task-view' }).");
  for (const field of ['key', 'item'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'function') throw new ConfigError(`dynamoDb.${field}`, `must be a function of the event, got ${show(options[field])}.`);
  }
  for (const field of ['sequenceAttribute', 'deletedAttribute', 'name'] as const) {
    if (options[field] !== undefined) checkString(`dynamoDb.${field}`, options[field], 'Leave it out for the default.');
  }
  if ((options.sequenceAttribute ?? '_cdcSeq') === (options.deletedAttribute ?? '_cdcDeleted')) {
    throw new ConfigError('dynamoDb.deletedAttribute', 'must differ from sequenceAttribute: the two attributes hold different things. Rename one.');
  }
  const ttl = options.tombstoneTtl;
  if (ttl !== undefined) {
    if (ttl === null || typeof ttl !== 'object') throw new ConfigError('dynamoDb.tombstoneTtl', `must be { attribute, seconds }, got ${show(ttl)}.`);
    checkString('dynamoDb.tombstoneTtl.attribute', ttl.attribute, "Name the target table's TTL attribute, such as 'expiresAt'.");
    checkInteger('dynamoDb.tombstoneTtl.seconds', ttl.seconds, 1, 'Keep tombstones longer than the furthest back you would replay, such as 7 * 86_400.');
    if (ttl.seconds === undefined) throw new ConfigError('dynamoDb.tombstoneTtl.seconds', 'is required: how long a tombstone is kept, in seconds.');
  }
  checkInteger('dynamoDb.maxConcurrentWrites', options.maxConcurrentWrites, 1, 'Leave it out for 25.');
  checkInteger('dynamoDb.maxRecords', options.maxRecords, 1, 'Leave it out for 100.');
  if (options.client !== undefined) {
    for (const field of ['region', 'endpoint'] as const) {
      if (options[field] !== undefined) {
        throw new ConfigError(`dynamoDb.${field}`, `is set together with \`client\`, which it would not reach. Set ${field} on the client you pass, or drop \`client\` to let the sink build one.`);
      }
    }
  }
};

/** A write prepared once per event object: the PutItem input and the identity of its target item. */
interface Prepared {
  /** `undefined`: nothing to write (a backfilled item its `item` option leaves out of the view). */
  readonly input: PutItemCommandInput | undefined;
  /** The target key, canonical: changes of one item share it and are written in order. */
  readonly target: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

const isChangeEvent = (value: unknown): value is ChangeEvent<unknown> => {
  if (!isObject(value)) return false;
  const meta = value['meta'];
  const kind = value['kind'];
  return (kind === 'insert' || kind === 'modify' || kind === 'remove' || kind === 'backfill') && isObject(value['key']) && isObject(meta) && typeof meta['sequenceNumber'] === 'string';
};

const toAttributes = (sink: string, what: string, eventID: string, value: Item): Record<string, AttributeValue> => {
  try {
    return marshall(value, { removeUndefinedValues: true, convertClassInstanceToMap: true }) as Record<string, AttributeValue>;
  } catch (error) {
    // The SDK's message can quote a value; images hold user data, so only its name goes into ours.
    throw new DynamoCdcError(`Sink ${sink} cannot convert the ${what} of event ${eventID} to DynamoDB attribute values (${(error as Error).name}: a value DynamoDB cannot hold, such as an empty set)`, 'PERMANENT', { cause: error });
  }
};

const isConditionFailure = (error: unknown): boolean => (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

/**
 * Materialises change events into another DynamoDB table (a projection, a read model, a copy in
 * another account): an insert or a modify puts the item (by default the new image under the
 * source key), a remove leaves a tombstone (the key, `_cdcSeq` and `_cdcDeleted: true`). Every
 * write is a PutItem conditional on the stream position it carries (`_cdcSeq`) being newer than the
 * stored one, so a replay, a late re-delivery or a retry never overwrites a newer state; a refused
 * condition means "already newer" and acknowledges the event. Writes of different items go in
 * parallel, one item's changes in stream order. See docs/dynamodb-sink.md for why not BatchWriteItem.
 *
 * An item over DynamoDB's 400 KB limit fails PERMANENT (`ItemTooLargeError`, dead-lettered);
 * throttling and server errors are retried by the engine; a validation error (a key of the wrong
 * type, a missing table) is PERMANENT.
 *
 * @example
 * import { dynamoDb } from 'dynamo-cdc/dynamodb';
 *
 * route(Task).to(dynamoDb<Task>({
 *   tableName: 'open-tasks',
 *   key: (e) => ({ id: `${e.key.PK}|${e.key.SK}` }),
 *   item: (e) => (e.newImage?.Status === 'DONE' ? undefined : { title: e.newImage?.Title, status: e.newImage?.Status }),
 * }))
 */
export const dynamoDb = <T = Item>(options: DynamoDbSinkOptions<T>): DynamoDbSink<T> => {
  validate(options);
  const { tableName, tombstoneTtl } = options;
  const name = options.name ?? 'dynamodb';
  const sequenceAttribute = options.sequenceAttribute ?? '_cdcSeq';
  const deletedAttribute = options.deletedAttribute ?? '_cdcDeleted';
  const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
  const maxConcurrentWrites = options.maxConcurrentWrites ?? DEFAULT_MAX_CONCURRENT_WRITES;
  const keyOf = options.key ?? ((event: ChangeEvent<T>): Item => event.key);
  const itemOf = options.item ?? ((event: ChangeEvent<T>): Item | undefined => event.newImage as Item | undefined);
  // The engine owns retries: SDK retries on top would multiply attempts and hide throttling from it.
  const client =
    options.client ??
    new DynamoDBClient({
      maxAttempts: 1,
      ...(options.region === undefined ? {} : { region: options.region }),
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    });

  const keyAttributesOf = (e: ChangeEvent<T>): Record<string, AttributeValue> => {
    const key = keyOf(e);
    if (!isObject(key) || Object.keys(key).length === 0) {
      throw new ConfigError('dynamoDb.key', `returned ${show(key)} for event ${e.eventID}; it must return the target item's primary key as an object, such as { id: 'USER#1|TASK#1' }.`);
    }
    return toAttributes(name, 'key', e.eventID, key);
  };

  const mappedItemOf = (e: ChangeEvent<T>): Item | undefined => {
    const mapped = itemOf(e);
    if (mapped !== undefined && !isObject(mapped)) {
      throw new ConfigError('dynamoDb.item', `returned ${show(mapped)} for event ${e.eventID}; it must return the item's attributes as an object, or undefined to take the item out of the table.`);
    }
    return mapped;
  };

  const checkSize = (e: ChangeEvent<T>, item: Record<string, AttributeValue>): void => {
    const size = itemSize(item);
    if (size > DYNAMODB_MAX_ITEM_BYTES) throw new ItemTooLargeError(name, tableName, e.eventID, size);
  };

  const targetOf = (keyAttributes: Record<string, AttributeValue>): string => JSON.stringify(Object.keys(keyAttributes).sort().map((n) => [n, keyAttributes[n]]));

  /**
   * A backfilled item has no stream position: it is written only where no stream change has written
   * the item (no `_cdcSeq`: neither a newer state nor a tombstone), and without a position, so any
   * stream change, older or newer than the Scan, may still replace it (docs/backfill.md). An item the
   * `item` option leaves out is not written at all.
   */
  const buildBackfill = (e: ChangeEvent<T>): Prepared => {
    const keyAttributes = keyAttributesOf(e);
    const mapped = mappedItemOf(e);
    if (mapped === undefined) return { target: targetOf(keyAttributes), input: undefined };
    const item = { ...toAttributes(name, 'item', e.eventID, mapped), ...keyAttributes };
    delete item[sequenceAttribute];
    delete item[deletedAttribute];
    checkSize(e, item);
    return {
      target: targetOf(keyAttributes),
      input: { TableName: tableName, Item: item, ConditionExpression: 'attribute_not_exists(#seq)', ExpressionAttributeNames: { '#seq': sequenceAttribute } },
    };
  };

  const build = (payload: ChangeEvent<T>): Prepared => {
    const event = payload as unknown;
    if (!isChangeEvent(event)) {
      throw new DynamoCdcError(
        `Sink ${name} got a payload that is not a change event (a route's transform output?): it needs the event's kind, key and stream position. Shape the item with the sink's \`item\` and \`key\` options instead of a route transform`,
        'PERMANENT',
      );
    }
    const e = payload;
    if (e.kind === 'backfill') return buildBackfill(e);
    const seq = canonicalSequenceNumber(e.meta.sequenceNumber);
    if (seq === '') throw new DynamoCdcError(`Sink ${name} cannot guard event ${e.eventID}: its sequence number is not a decimal of at most 40 digits`, 'PERMANENT');
    const position = padSequenceNumber(seq);
    const keyAttributes = keyAttributesOf(e);
    const mapped = e.kind === 'remove' ? undefined : mappedItemOf(e);
    let item: Record<string, AttributeValue>;
    if (mapped === undefined) {
      // A tombstone, not a delete: a delete would forget the position, and an older write arriving
      // late (a replay) would then bring the item back.
      item = { ...keyAttributes, [sequenceAttribute]: { S: position }, [deletedAttribute]: { BOOL: true } };
      if (tombstoneTtl) item[tombstoneTtl.attribute] = { N: String(Math.floor(e.meta.approximateCreationTime / 1000) + tombstoneTtl.seconds) };
    } else {
      item = { ...toAttributes(name, 'item', e.eventID, mapped), ...keyAttributes, [sequenceAttribute]: { S: position } };
      delete item[deletedAttribute];
    }
    checkSize(e, item);
    return {
      target: targetOf(keyAttributes),
      input: {
        TableName: tableName,
        Item: item,
        ConditionExpression: 'attribute_not_exists(#seq) OR #seq < :seq',
        ExpressionAttributeNames: { '#seq': sequenceAttribute },
        ExpressionAttributeValues: { ':seq': { S: position } },
      },
    };
  };

  const prepare = perEvent<ChangeEvent<T>, Prepared>(build);

  /** Writes one item's changes in order; the first failure stops the chain and fails the rest. */
  const writeChain = async (chain: readonly { index: number; prepared: Prepared }[], failed: SinkFailure[], signal: AbortSignal): Promise<void> => {
    for (let i = 0; i < chain.length; i++) {
      const { index, prepared } = chain[i] as (typeof chain)[number];
      try {
        signal.throwIfAborted();
        if (prepared.input === undefined) continue;
        await client.send(new PutItemCommand(prepared.input), { abortSignal: signal });
      } catch (error) {
        // The stored item is at this change's position or past it: nothing to write, and done.
        if (isConditionFailure(error)) continue;
        failed.push({ index, error });
        for (const rest of chain.slice(i + 1)) failed.push({ index: rest.index, error: new NotAttemptedError(name) });
        return;
      }
    }
  };

  return {
    name,
    tableName,
    client,
    limits: { maxRecords, maxBytes: Infinity },
    // A failed write can never let a later change of its item win over it for good: the later
    // change's position is higher, so the retried older one is refused. So a lane may send several
    // of its records in one request, as with OpenSearch's external versions.
    preservesOrderWithinRequest: true,

    async send(events, signal) {
      signal.throwIfAborted();
      if (events.length > maxRecords) throw new RangeError(`Sink ${name} got ${events.length} events in one request; it takes at most ${maxRecords} (maxRecords)`);
      const failed: SinkFailure[] = [];
      const chains = new Map<string, { index: number; prepared: Prepared }[]>();
      events.forEach((event, index) => {
        let prepared: Prepared;
        try {
          prepared = prepare(event);
        } catch (error) {
          failed.push({ index, error });
          return;
        }
        const chain = chains.get(prepared.target);
        if (chain) chain.push({ index, prepared });
        else chains.set(prepared.target, [{ index, prepared }]);
      });
      const pending = [...chains.values()];
      // Each request in flight listens to the signal; a signal of our own keeps that many listeners
      // off the caller's (Node warns past 10) and is the one thing listening there.
      const own = new AbortController();
      setMaxListeners(0, own.signal);
      const forward = (): void => own.abort(signal.reason);
      signal.addEventListener('abort', forward, { once: true });
      const worker = async (): Promise<void> => {
        for (let chain = pending.shift(); chain !== undefined; chain = pending.shift()) await writeChain(chain, failed, own.signal);
      };
      try {
        await Promise.all(Array.from({ length: Math.min(maxConcurrentWrites, pending.length) }, worker));
      } finally {
        signal.removeEventListener('abort', forward);
      }
      return { failed: failed.sort((a, b) => a.index - b.index) };
    },
  };
};
