/**
 * Secret substitution and scrubbing for the egress proxy (DESIGN §11): pure
 * functions and streams over a SecretBinding, no I/O of their own.
 *
 * Per request, after the policy allowed it:
 *   checkHostForPlaceholders (CONNECT target, request host) → substituteRequestHead
 *   → createBodySubstitution / substituteBodyBuffer → forward.
 * Per response: planResponseScrub → scrubHeaders and the plan's transforms.
 * At the end of an execution: scrubText on stdout and stderr.
 */
export { bodyKind, bodyNeedsSubstitution, BodySubstitution, chunkedBodyHeaders, createBodySubstitution, DEFAULT_BODY_HOLD_BYTES, substituteBodyBuffer } from './request-body.ts';
export type { BodyBufferResult, BodyContext, BodyKind } from './request-body.ts';
export { checkHostForPlaceholders, placeholdersIn, substituteRequestHead } from './request.ts';
export type { HeadSubstitution, RequestHead } from './request.ts';
export { misplacedSecret, SecretRefusalError } from './refusal.ts';
export type { RequestPlace, SecretRefusal, SecretRefusalCode } from './refusal.ts';
export { planResponseScrub, scrubHeaders } from './response.ts';
export type { ResponseContext, ResponsePlan } from './response.ts';
export { RewriteStream, rewriteAll } from './rewrite-stream.ts';
export type { Rewriter, RewriteStreamOptions } from './rewrite-stream.ts';
export { MIN_TRUNCATED_PREFIX, RUN_CAP, Scrubber, scrubberFor, scrubText } from './scrub.ts';
