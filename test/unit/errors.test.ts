import { describe, expect, it } from 'vitest';
import { classify, ConfigError, MalformedRecordError, SchemaValidationError } from '../../src/index.js';
import type { FailureClass } from '../../src/index.js';

const err = (name: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(name), { name, ...extra });

describe('classify', () => {
  it.each<[string, unknown, FailureClass]>([
    ['SDK throttling ($retryable.throttling)', err('SomethingNew', { $retryable: { throttling: true } }), 'THROTTLING'],
    ['SDK retryable', err('SomethingNew', { $retryable: {} }), 'TRANSIENT'],
    ['ThrottlingException', err('ThrottlingException', { $fault: 'client' }), 'THROTTLING'],
    ['ProvisionedThroughputExceededException', err('ProvisionedThroughputExceededException'), 'THROTTLING'],
    ['S3 SlowDown', err('SlowDown', { $metadata: { httpStatusCode: 503 } }), 'THROTTLING'],
    ['HTTP 429', { statusCode: 429, message: 'Too Many Requests' }, 'THROTTLING'],
    ['HTTP 500', err('InternalFailure', { $metadata: { httpStatusCode: 500 } }), 'TRANSIENT'],
    ['HTTP 503 without a name', { $metadata: { httpStatusCode: 503 } }, 'TRANSIENT'],
    ['HTTP 408', { status: 408 }, 'TRANSIENT'],
    ['socket reset', err('Error', { code: 'ECONNRESET' }), 'TRANSIENT'],
    ['timeout', err('TimeoutError'), 'TRANSIENT'],
    ['validation (HTTP 400)', err('ValidationException', { $fault: 'client', $metadata: { httpStatusCode: 400 } }), 'PERMANENT'],
    ['access denied (HTTP 403)', err('AccessDeniedException', { $metadata: { httpStatusCode: 403 } }), 'PERMANENT'],
    ['client fault without status', err('InvalidParameterValue', { $fault: 'client' }), 'PERMANENT'],
    ['malformed record', new MalformedRecordError('bad'), 'PERMANENT'],
    ['schema failure', new SchemaValidationError('Task', [{ path: 'Status', message: 'bad' }]), 'PERMANENT'],
    ['config error', new ConfigError('table', 'bad'), 'PERMANENT'],
    ['explicit failureClass', err('Custom', { failureClass: 'THROTTLING' }), 'THROTTLING'],
    ['a wrapper around a throttle (cause)', new Error('send failed', { cause: err('ThrottlingException') }), 'THROTTLING'],
    ['a wrapper around a validation error (cause)', new Error('send failed', { cause: err('X', { $metadata: { httpStatusCode: 400 } }) }), 'PERMANENT'],
    ['a plain Error', new Error('something'), 'TRANSIENT'],
    ['a string', 'oops', 'TRANSIENT'],
    ['undefined', undefined, 'TRANSIENT'],
  ])('%s -> %s', (_what, error, expected) => {
    expect(classify(error)).toBe(expected);
  });
});
