import type { FailureClass } from '../../errors.js';

/**
 * How a failed bulk item is handled, by its `error.type`, where the type says more than the
 * status. Anything not listed is decided by the status (see {@link classifyBulkItem}).
 */
export const bulkItemErrorClasses: ReadonlyMap<string, FailureClass> = new Map<string, FailureClass>([
  // The node's write queue or memory is full: back off longer.
  ['es_rejected_execution_exception', 'THROTTLING'],
  ['opensearch_rejected_execution_exception', 'THROTTLING'],
  ['rejected_execution_exception', 'THROTTLING'],
  ['circuit_breaking_exception', 'THROTTLING'],
  // Blocks come and go: the disk flood-stage block is lifted once space is freed (403 or 429).
  ['cluster_block_exception', 'TRANSIENT'],
  ['unavailable_shards_exception', 'TRANSIENT'],
  ['no_shard_available_action_exception', 'TRANSIENT'],
  ['process_cluster_event_timeout_exception', 'TRANSIENT'],
  ['primary_missing_action_exception', 'TRANSIENT'],
  ['node_not_connected_exception', 'TRANSIENT'],
  ['node_closed_exception', 'TRANSIENT'],
  ['connect_transport_exception', 'TRANSIENT'],
  ['receive_timeout_transport_exception', 'TRANSIENT'],
  // The document or the request is wrong: sending it again gives the same answer.
  ['mapper_parsing_exception', 'PERMANENT'],
  ['document_parsing_exception', 'PERMANENT'],
  ['strict_dynamic_mapping_exception', 'PERMANENT'],
  ['illegal_argument_exception', 'PERMANENT'],
  ['parse_exception', 'PERMANENT'],
  ['x_content_parse_exception', 'PERMANENT'],
  ['json_parse_exception', 'PERMANENT'],
  ['action_request_validation_exception', 'PERMANENT'],
  ['invalid_index_name_exception', 'PERMANENT'],
  ['index_not_found_exception', 'PERMANENT'],
  ['index_closed_exception', 'PERMANENT'],
  ['security_exception', 'PERMANENT'],
]);

/** What became of one bulk item: acknowledged, or failed with this class. */
export type BulkItemOutcome = 'ok' | FailureClass;

/**
 * Decides one bulk item from its `status` and `error.type`:
 * - 2xx: ok.
 * - 409 `version_conflict_engine_exception`: ok. The document already holds this change or a later
 *   one, so this (older) write is correctly dropped.
 * - 404 on a delete (`result: not_found`, or no such index): ok. There is nothing to delete.
 * - a type in {@link bulkItemErrorClasses}: that class.
 * - otherwise 429: THROTTLING; 5xx and 408: TRANSIENT; any other status: PERMANENT (dead-lettered
 *   after one attempt).
 */
export const classifyBulkItem = (status: number, errorType: string | undefined, action: 'index' | 'delete'): BulkItemOutcome => {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 409 && (errorType === undefined || errorType === 'version_conflict_engine_exception')) return 'ok';
  if (status === 404 && action === 'delete' && (errorType === undefined || errorType === 'index_not_found_exception')) return 'ok';
  const byType = errorType === undefined ? undefined : bulkItemErrorClasses.get(errorType);
  if (byType) return byType;
  if (status === 429) return 'THROTTLING';
  if (status >= 500 || status === 408) return 'TRANSIENT';
  return 'PERMANENT';
};

/**
 * OpenSearch quotes the offending value in some parse errors ("Preview of field's value: ..."). The
 * reason ends up in logs and dead letters, and item images hold user data, so the quote is cut.
 */
export const redactReason = (reason: string): string => reason.replace(/\s*Preview of field's value:[\s\S]*$/, " (field value not shown)");
