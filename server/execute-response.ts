/**
 * The `/execute` answers (DESIGN §3) as schemas, for the OpenAPI document.
 * The types the code builds live in execution-service.ts and errors.ts; the
 * assignments at the bottom fail to compile when those grow a field these
 * schemas do not describe, and the tests parse real answers with them.
 */
import { z } from 'zod';
import type { ErrorBody } from './errors.ts';
import type { ExecuteResponseData } from './execution-service.ts';

export const NetworkLogEntrySchema = z
  .strictObject({
    method: z.string().describe('method as the program sent it (CONNECT for a refused tunnel)'),
    url: z.string().describe('canonical host and the raw path, e.g. https://api.stripe.com/v1/products'),
    hostname: z.string().describe('canonical host name'),
    statusCode: z.number().int().describe('status the program received; 0 when no HTTP answer was possible'),
    blocked: z.boolean(),
    reason: z.string().optional().describe('why it was blocked (or, with wouldBlock, why it would have been)'),
    wouldBlock: z.literal(true).optional().describe('learn mode: let through, but the enforcing policy would block it'),
    durationMs: z.number(),
    secrets: z.array(z.string()).optional().describe('names of the secrets the proxy substituted into this request (never values)'),
  })
  .describe('one request the program made, allowed or blocked');

export const OutputFileSchema = z
  .strictObject({
    path: z.string().describe('relative to the working directory'),
    size: z.number().int().min(0).describe('bytes'),
    content: z.string().describe('the file\'s bytes, base64'),
  })
  .describe('a file the program left in its working directory that matched outputFiles');

export const PolicyInfoSchema = z
  .strictObject({
    source: z.enum(['jwt', 'default']).describe('the caller’s own policy (jwt) or the deny-all default'),
    name: z.enum(['User Policy', 'Default Policy']),
    allowedDomains: z.number().int().optional(),
    allowedPackages: z.number().int().optional(),
    reason: z.string().optional().describe('why the default policy is in force, when a user policy could not be had'),
    hash: z.string().regex(/^[0-9a-f]{64}$/u).describe('SHA-256 (hex) of the canonical JSON of the effective policy, secret values excluded: equal hashes, equal rules'),
    enforcement: z.enum(['enforce', 'audit']).describe('audit: learn mode ran, requests the rules would block went through and are marked wouldBlock'),
    version: z.string().optional().describe('the policy source’s own revision of the policy (its `version` field or ETag), when it sent one'),
  })
  .describe('which policy governed the sandbox');

export const ExecuteResponseDataSchema = z.strictObject({
  executionId: z.string().describe('identifies this execution in the logs'),
  stdout: z.string(),
  stderr: z.string(),
  code: z.number().int().nullable().describe('exit code; null when the program died of a signal'),
  signal: z.string().nullable().describe('e.g. SIGKILL; null when the program exited'),
  timedOut: z.boolean().describe('killed at its wall-clock limit'),
  oomKilled: z.boolean().describe('killed for exceeding its memory limit'),
  truncated: z
    .strictObject({
      stdout: z.boolean(),
      stderr: z.boolean(),
      files: z.boolean().optional().describe('with outputFiles: matching files were left out at the count or size limit'),
    })
    .describe('output cut at the server’s limit'),
  durationMs: z.number().describe('run time of the program'),
  isolation: z.enum(['gvisor', 'runc']).describe('the isolation tier the program ran under: gvisor (gVisor\'s own kernel, runsc) or runc (the host\'s kernel, namespaces and seccomp)'),
  queuedMs: z.number().int().min(0).optional().describe('time spent waiting for an execution slot before the run (counted against timeoutMs)'),
  networkLog: z.array(NetworkLogEntrySchema),
  files: z.array(OutputFileSchema).optional().describe('with outputFiles: the matching regular files of the working directory, in path order, within the limits'),
  networkLogCapped: z.boolean().optional().describe('true when requests were left out of networkLog at its cap'),
  policyInfo: PolicyInfoSchema,
});

export const ExecuteSuccessSchema = z
  .strictObject({ success: z.literal(true), data: ExecuteResponseDataSchema })
  .describe('the program ran (whatever its exit code)');

export const ErrorBodySchema = z
  .strictObject({
    success: z.literal(false),
    error: z.string().describe('what went wrong, for people'),
    code: z.string().describe('stable error code, for programs (INVALID_REQUEST, TOKEN_EXPIRED, RATE_LIMITED, …)'),
    details: z.unknown().optional().describe('for 400: [{ field, message }] naming each bad field'),
  })
  .describe('any failure');

export const EncryptedResponseSchema = z
  .strictObject({
    encrypted: z.literal(true),
    data: z.string().describe('compact JWE (alg dir, enc A256GCM) of the plain JSON answer'),
  })
  .describe('the answer when encrypt_messages was true');

/** `true` when T has no key the schema leaves out; otherwise the missing keys, so the error names them. */
type Described<T, S extends z.ZodType> = [Exclude<keyof T, keyof z.input<S>>] extends [never] ? true : Exclude<keyof T, keyof z.input<S>>;
// Compile-time: every field the code sends is described above, with a compatible type.
export const responseDescribed: Described<ExecuteResponseData, typeof ExecuteResponseDataSchema> = true;
export const errorDescribed: Described<ErrorBody, typeof ErrorBodySchema> = true;
export const responseTypesMatch = (data: ExecuteResponseData, body: ErrorBody): [z.input<typeof ExecuteResponseDataSchema>, z.input<typeof ErrorBodySchema>] => [data, body];
