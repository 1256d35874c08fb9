/** How a failure is handled: retried with a longer backoff, retried, or sent to the dead-letter queue at once. */
export type FailureClass = 'THROTTLING' | 'TRANSIENT' | 'PERMANENT';

/** Base of the errors dynamo-cdc throws on purpose; `failureClass` fixes how it is handled. */
export class DynamoCdcError extends Error {
  readonly failureClass: FailureClass;

  constructor(message: string, failureClass: FailureClass, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.failureClass = failureClass;
  }
}

/** The configuration is invalid. The message names the field and the fix. Thrown at start-up. */
export class ConfigError extends DynamoCdcError {
  /** Dotted path of the offending field, such as `retry.maxAttempts`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`Invalid dynamo-cdc configuration: \`${field}\` ${message}`, 'PERMANENT', options);
    this.field = field;
  }
}

/** A stream record that cannot be decoded: missing keys, an unknown event name, a bad attribute value. */
export class MalformedRecordError extends DynamoCdcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PERMANENT', options);
  }
}

/** An item that fails its entity's schema. `issues` hold paths and messages, never the values. */
export class SchemaValidationError extends DynamoCdcError {
  readonly entity: string;
  readonly issues: readonly { readonly path: string; readonly message: string }[];

  constructor(entity: string, issues: readonly { readonly path: string; readonly message: string }[]) {
    const shown = issues.slice(0, 5).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    const more = issues.length > 5 ? ` (+${issues.length - 5} more)` : '';
    super(`Item does not match the schema of entity ${entity}: ${shown.join('; ')}${more}`, 'PERMANENT');
    this.entity = entity;
    this.issues = issues;
  }
}

/** A record that a route's predicate or transform threw on: it cannot be routed, so it is dead-lettered. */
export class PoisonRecordError extends DynamoCdcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PERMANENT', options);
  }
}

/** An event larger than its sink accepts in one request. */
export class OversizedEventError extends DynamoCdcError {
  constructor(sink: string, size: number, maxBytes: number) {
    super(
      `Event of ${size} bytes exceeds the ${maxBytes}-byte limit of sink ${sink}; it cannot be sent as it is. Set \`claimCheck: s3ClaimCheck({ bucket })\` on the sink to send a pointer to a copy in S3 instead`,
      'PERMANENT',
    );
  }
}

/**
 * One entry of a request that the destination rejected, with the destination's own code as `name`
 * (`ThrottlingException`, `InternalFailure`, ...) and the class the sink gave it.
 */
export class EntryFailedError extends DynamoCdcError {
  /** The destination's error code, as it reported it. */
  readonly code: string;

  constructor(code: string, message: string, failureClass: FailureClass) {
    super(message, failureClass);
    this.name = code;
    this.code = code;
  }
}

/**
 * Thrown by your code (an `each()` handler, a sink of your own) to say that retrying cannot help: the
 * record goes to the dead-letter queue at once instead of after `retry.maxAttempts`.
 *
 * @example
 * route(Task).to(each(async (event) => {
 *   if (!event.newImage?.Email) throw new PermanentError('Task has no Email; nothing to notify');
 *   await notify(event.newImage.Email);
 * }))
 */
export class PermanentError extends DynamoCdcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PERMANENT', options);
  }
}

/** A lease was lost to another worker; whatever the holder was doing must stop. */
export class LeaseLostError extends DynamoCdcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PERMANENT', options);
  }
}

const THROTTLING_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'BandwidthLimitExceeded',
  'LimitExceededException',
  'EC2ThrottledException',
  'TransactionInProgressException',
  'ThrottlingError',
]);

const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalServerError',
  'InternalServerException',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'AbortError',
]);

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

const CLASSES: ReadonlySet<unknown> = new Set(['THROTTLING', 'TRANSIENT', 'PERMANENT']);

const statusOf = (e: Record<string, unknown>): number | undefined => {
  const meta = e['$metadata'] as { httpStatusCode?: unknown } | undefined;
  const candidates = [meta?.httpStatusCode, e['statusCode'], e['status']];
  for (const c of candidates) if (typeof c === 'number') return c;
  return undefined;
};

const classifyOwn = (e: Record<string, unknown>): FailureClass | undefined => {
  if (CLASSES.has(e['failureClass'])) return e['failureClass'] as FailureClass;
  const retryable = e['$retryable'] as { throttling?: boolean } | undefined;
  if (retryable && typeof retryable === 'object') return retryable.throttling ? 'THROTTLING' : 'TRANSIENT';
  const name = typeof e['name'] === 'string' ? e['name'] : undefined;
  const code = typeof e['code'] === 'string' ? e['code'] : undefined;
  if ((name && THROTTLING_NAMES.has(name)) || (code && THROTTLING_NAMES.has(code))) return 'THROTTLING';
  const status = statusOf(e);
  if (status === 429) return 'THROTTLING';
  if (status !== undefined && (status >= 500 || status === 408)) return 'TRANSIENT';
  if ((name && TRANSIENT_NAMES.has(name)) || (code && (TRANSIENT_NAMES.has(code) || TRANSIENT_CODES.has(code)))) return 'TRANSIENT';
  if (status !== undefined && status >= 400) return 'PERMANENT';
  if (e['$fault'] === 'client') return 'PERMANENT';
  if (e['$fault'] === 'server') return 'TRANSIENT';
  return undefined;
};

/**
 * Decides how a failure is handled, from the error's data alone: an explicit `failureClass`, the
 * SDK's `$retryable` and `$fault`, well-known throttling and transient names and codes, the HTTP
 * status, then the same questions of its `cause`. Anything undecided is TRANSIENT: it is retried a
 * bounded number of times and then dead-lettered, so nothing is lost by guessing so.
 */
export const classify = (error: unknown): FailureClass => {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth++) {
    const decided = classifyOwn(current as Record<string, unknown>);
    if (decided) return decided;
    current = (current as { cause?: unknown }).cause;
  }
  return 'TRANSIENT';
};

/** Renders any thrown value as `{ name, message }` without its stack or attached data. */
export const describeError = (error: unknown): { name: string; message: string } => {
  if (error instanceof Error) return { name: error.name, message: error.message };
  if (error !== null && typeof error === 'object') {
    const e = error as { name?: unknown; message?: unknown };
    return { name: typeof e.name === 'string' ? e.name : 'Error', message: typeof e.message === 'string' ? e.message : String(error) };
  }
  return { name: 'Error', message: String(error) };
};
