/**
 * One error type with a status, and the one place where anything thrown
 * becomes an HTTP answer. Unknown errors become a plain 500: their details
 * go to the log, never to the client. The same holds for known failures of
 * what lies behind us (engine, proxy control channel, images): the client
 * gets a stable code and words, the cause is logged.
 */
import type { ErrorRequestHandler } from 'express';
import { ControlChannelError } from '../egress-proxy/index.ts';
import { DockerUnavailableError, ExecutionAbortedError, ImageMissingError } from '../executor/index.ts';
import { CapacityError } from './admission.ts';
import { bearerChallenge, KeySourceUnavailableError, TokenError } from './identity/index.ts';

export interface ErrorBody {
  success: false;
  error: string;
  code: string;
  details?: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): ErrorBody {
    return { success: false, error: this.message, code: this.code, ...(this.details === undefined ? {} : { details: this.details }) };
  }
}

export const badRequest = (message: string, details?: unknown): ApiError =>
  new ApiError(400, 'INVALID_REQUEST', message, details);

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

/** Maps anything thrown to an ApiError; `null` means "unexpected: answer 500". */
export function toApiError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof TokenError) {
    return new ApiError(401, error.code, error.message, undefined, { 'WWW-Authenticate': bearerChallenge(error) });
  }
  if (error instanceof KeySourceUnavailableError) {
    return new ApiError(503, 'KEYS_UNAVAILABLE', 'Tokens cannot be verified right now; try again shortly', undefined, { 'Retry-After': '5' });
  }
  if (error instanceof DockerUnavailableError) {
    return new ApiError(503, 'DOCKER_UNAVAILABLE', 'The sandbox engine is unavailable; try again shortly', undefined, { 'Retry-After': '5' });
  }
  if (error instanceof CapacityError) {
    if (error.code === 'CALLER_BUSY') return new ApiError(429, error.code, error.message, undefined, { 'Retry-After': String(error.retryAfterSeconds) });
    return new ApiError(503, error.code, error.message, undefined, { 'Retry-After': String(error.retryAfterSeconds) });
  }
  // The standalone proxy down or failing is a capacity problem; its 4xx answers are our bugs (500).
  if (error instanceof ControlChannelError && (error.status === 0 || error.status >= 500)) {
    return new ApiError(503, 'EGRESS_UNAVAILABLE', 'The egress proxy is unavailable; try again shortly', undefined, { 'Retry-After': '5' });
  }
  // Nobody is left to read it; the status is for the log line and the audit trail (nginx's "client closed request").
  if (error instanceof ExecutionAbortedError) {
    return new ApiError(499, 'CLIENT_CLOSED', 'The client closed the connection; the execution was stopped and its sandbox removed');
  }
  if (error instanceof ImageMissingError) {
    return new ApiError(503, 'IMAGE_MISSING', 'The sandbox image is not ready; try again shortly', undefined, { 'Retry-After': '30' });
  }
  const parserError = error as BodyParserError | null;
  switch (parserError?.type) {
    case 'entity.parse.failed':
      return badRequest('Request body is not valid JSON', [{ field: '(body)', message: 'malformed JSON' }]);
    case 'entity.too.large':
      return new ApiError(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${parserError.limit ?? 'the'} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Request body must be UTF-8 JSON');
    default:
      return null;
  }
}

export const errorHandler: ErrorRequestHandler = (error: unknown, req, res, _next) => {
  const apiError = toApiError(error);
  if (apiError) {
    if (apiError.status >= 500) req.log?.warn({ err: error, code: apiError.code }, apiError.message);
    res.status(apiError.status).set(apiError.headers).json(apiError.body());
    return;
  }
  req.log?.error({ err: error }, 'unhandled error');
  res.status(500).json({ success: false, error: 'Internal error', code: 'INTERNAL' } satisfies ErrorBody);
};
