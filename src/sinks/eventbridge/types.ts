import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { ChangeEvent } from '../../events.js';
import type { ClaimCheckStore, Sink } from '../../ports.js';

/** Options of {@link eventBridge}. Only `busName` is required. */
export interface EventBridgeSinkOptions<E = ChangeEvent> {
  /** Name or ARN of the event bus to put events on (`EventBusName` of every entry). Required. */
  readonly busName: string;
  /**
   * `Source` of each entry, what rules match with `"source": [...]`. A string, or a function of the
   * event.
   * @default `dynamo-cdc.<table>` from the event's `meta.table`, or `dynamo-cdc` for an event without one
   * (a route's transform output)
   */
  readonly source?: string | ((event: E) => string);
  /**
   * `DetailType` of each entry (at most 128 characters), what rules match with `"detail-type": [...]`.
   * A string, or a function of the event.
   * @default `<entity>.<kind>` (such as `Task.modify`), `<table>.<kind>` for an event of no entity,
   * and `dynamo-cdc.event` for a payload with neither (a route's transform output)
   */
  readonly detailType?: string | ((event: E) => string);
  /**
   * What goes into `Detail`, serialised as JSON (sets as arrays, exact numbers as strings, binaries
   * as base64). It must be a JSON object. Keep `eventID` in it: it is how consumers drop duplicates.
   * @default the event itself, which carries `eventID`
   */
  readonly detail?: (event: E) => unknown;
  /** `Resources` of each entry: ARNs the event concerns. @default none */
  readonly resources?: (event: E) => readonly string[];
  /**
   * `Time` of each entry (epoch milliseconds or a `Date`); `undefined` leaves it out, and
   * EventBridge then uses the time of the PutEvents call.
   * @default the event's `meta.approximateCreationTime` (when the item changed), when present
   */
  readonly time?: (event: E) => Date | number | undefined;
  /** Unique among the sinks of an app; names the sink in logs and dead letters. @default 'eventbridge' */
  readonly name?: string;
  /**
   * The client to use. Give it `maxAttempts: 1`: the engine already retries failed entries with
   * backoff (one retry owner per hop), and SDK retries on top would multiply the attempts and
   * hide throttling from the engine.
   * @default a new `EventBridgeClient({ maxAttempts: 1, region, endpoint })` with the credentials of the environment
   */
  readonly client?: EventBridgeClient;
  /** Region of the client the sink builds; not allowed with `client`. @default the environment's (`AWS_REGION`) */
  readonly region?: string;
  /** Endpoint URL of the client the sink builds; not allowed with `client`. @default EventBridge's regional endpoint */
  readonly endpoint?: string;
  /**
   * Where to store events too large for one entry. With it, such an event is stored there (keyed by
   * its `eventID`) and its entry's `Detail` is a small envelope pointing at it; without it, such an
   * event fails PERMANENT (`OversizedEventError`) and goes to the dead-letter queue.
   * @default none
   */
  readonly claimCheck?: ClaimCheckStore;
  /**
   * The PutEvents request size quota in bytes: the entries of one request must total LESS than
   * this, counted as AWS documents (see `putEventsEntrySize`). Set 262_144 on a quota of 256 KB.
   * @default 1_048_576 (1 MiB)
   */
  readonly maxRequestBytes?: number;
}

/** The sink {@link eventBridge} returns: a {@link Sink} with its client and bus in sight. */
export interface EventBridgeSink<E = ChangeEvent> extends Sink<E> {
  /** The client that sends the requests: the one given, or the one the sink built. */
  readonly client: EventBridgeClient;
  readonly busName: string;
  /** Size of one entry as PutEvents counts it (the pointer entry's, when it would be claim-checked). */
  sizeOf(event: E): number;
}
