import { OversizedEventError } from '../../errors.js';

/**
 * A bulk request that failed as a whole: an HTTP error status (429, 5xx, 413, 403 ...), a broken
 * connection, a timeout or an answer that cannot be read. `statusCode` is the HTTP status when
 * there was one, so `classify` makes a 429 THROTTLING, a 5xx TRANSIENT and another 4xx PERMANENT;
 * without one it follows `cause`, the client's own error.
 */
export class OpenSearchRequestError extends Error {
  /** HTTP status of the answer, or `undefined` when none came. */
  readonly statusCode: number | undefined;

  constructor(message: string, statusCode: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OpenSearchRequestError';
    this.statusCode = statusCode;
  }
}

/**
 * An event whose bulk lines alone are larger than the sink's `maxBytes`: it cannot be sent in any
 * request, so it fails PERMANENT and goes to the dead-letter queue.
 */
export class OversizedDocumentError extends OversizedEventError {
  constructor(sink: string, eventID: string, size: number, maxBytes: number) {
    super(sink, size, maxBytes);
    this.message = `The bulk lines of event ${eventID || '(no eventID)'} are ${size} bytes, more than the ${maxBytes}-byte request limit of sink ${sink}. Raise \`maxBytes\` (up to the cluster's http.max_content_length) or index less of the item with \`document\``;
  }
}
