import type { FlagSpec, ParsedValues } from './args.js';
import { stringFlag, urlFlag } from './args.js';
import { CliError } from './errors.js';
import type { CliIo } from './io.js';

export const REGION_FLAG: FlagSpec = { name: 'region', type: 'string', value: '<region>', env: 'AWS_REGION', help: 'AWS region of the table, the stream and the lease table.' };
export const ENDPOINT_FLAG: FlagSpec = {
  name: 'endpoint',
  type: 'string',
  value: '<url>',
  env: 'DYNAMODB_ENDPOINT',
  help: 'DynamoDB and DynamoDB Streams endpoint, such as DynamoDB Local (http://127.0.0.1:8000).',
};

/** Where the AWS calls go. */
export interface AwsTarget {
  readonly region: string | undefined;
  readonly endpoint: string | undefined;
}

export const awsTarget = (values: ParsedValues, io: CliIo): AwsTarget => ({
  region: stringFlag(values, io, REGION_FLAG) ?? io.env['AWS_DEFAULT_REGION'],
  endpoint: urlFlag(values, io, ENDPOINT_FLAG, 'http://127.0.0.1:8000'),
});

/** `http://127.0.0.1:8000`, or the regional endpoint of a service. */
export const describeTarget = (target: AwsTarget, service = 'dynamodb'): string =>
  target.endpoint ?? (target.region ? `${service}.${target.region}.amazonaws.com` : `${service} (region from the AWS config)`);

/** The region, or the endpoint when one is set: where a table was looked for. */
export const whereOf = (target: AwsTarget): string => (target.endpoint ? target.endpoint : `region ${target.region ?? '(from the AWS config)'}`);

/**
 * Client options for commands that ask a few questions and answer: one attempt, and a short
 * connect timeout, so an endpoint that is down or wrong fails in seconds, not after SDK retries.
 */
export const quickClientConfig = (target: AwsTarget, endpoint = target.endpoint) => ({
  ...(target.region ? { region: target.region } : {}),
  ...(endpoint ? { endpoint } : {}),
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 3000, requestTimeout: 30_000 },
});

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT']);

/** The network error code somewhere in an error, its causes or an AggregateError's errors. */
export const networkCode = (error: unknown, depth = 0): string | undefined => {
  if (error === null || typeof error !== 'object' || depth > 6) return undefined;
  const e = error as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return typeof e.code === 'string' ? e.code : 'timeout';
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const code = networkCode(inner, depth + 1);
      if (code) return code;
    }
  }
  return networkCode(e.cause, depth + 1);
};

const nameOf = (error: unknown): string | undefined => {
  const name = error !== null && typeof error === 'object' ? (error as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : undefined;
};

const messageOf = (error: unknown): string => {
  const message = error !== null && typeof error === 'object' ? (error as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : String(error);
};

export const isNotFound = (error: unknown): boolean => nameOf(error) === 'ResourceNotFoundException';

/**
 * Turns the AWS failures a user can fix (unreachable endpoint, no region, no credentials, refused
 * credentials) into one-line {@link CliError}s that say what to do; anything else comes back as it was.
 */
export const explainAwsError = (error: unknown, target: AwsTarget, service: 'DynamoDB' | 'SQS' | 'S3' = 'DynamoDB'): unknown => {
  if (error instanceof CliError) return error;
  const code = networkCode(error);
  if (code) {
    const flags = service === 'DynamoDB' ? '--endpoint / --region, or that DynamoDB Local is running' : service === 'SQS' ? '--queue-url / --sqs-endpoint / --region' : '--region';
    const endpoint = service === 'DynamoDB' ? describeTarget(target) : service === 'SQS' ? (target.endpoint ?? describeTarget(target, 'sqs')) : describeTarget(target, 's3');
    return new CliError(`cannot reach ${service} at ${endpoint}: ${code}. Check ${flags}`, { cause: error });
  }
  const name = nameOf(error);
  const message = messageOf(error);
  if (/region is missing/i.test(message)) return new CliError('no AWS region is set. Pass --region or set AWS_REGION', { cause: error });
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new CliError(
      'no AWS credentials found. Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (DynamoDB Local accepts any values)',
      { cause: error },
    );
  }
  if (name === 'UnrecognizedClientException' || name === 'InvalidSignatureException' || name === 'ExpiredTokenException' || name === 'InvalidClientTokenId' || name === 'SignatureDoesNotMatch') {
    return new CliError(`${service} refused the credentials (${name}: ${message}). Check AWS_PROFILE or the AWS_* variables`, { cause: error });
  }
  if (name === 'AccessDeniedException' || name === 'AccessDenied') {
    return new CliError(`${service} denied access (${message}). Grant the permission it names to these credentials`, { cause: error });
  }
  return error;
};
