/**
 * The control channel between the API and a standalone egress proxy: what
 * travels over it, for both ends. The API opens a session per sandbox,
 * naming the Unix socket to listen on and carrying the caller's policy in
 * the internal Policy JSON; the proxy compiles it with policies/ itself, so
 * nothing executable crosses the wire.
 *
 *   POST   /sessions       { executionId, socketPath, policy, secrets? } → 201 { executionId, socketPath }
 *   DELETE /sessions/:id   → 200 { entries, capped } (the network log)
 *   GET    /ca.pem         → the CA certificate sandboxes trust
 *   GET    /healthz        → 200 { ok: true } (no secret needed: it says nothing)
 *   GET    /metrics        → Prometheus text (no secret needed: counts only, like the API's /metrics)
 *
 * Everything but /healthz and /metrics needs `Authorization: Bearer <EGRESS_CONTROL_SECRET>`.
 */
import { z } from 'zod';
import { PolicySchema, SecretBindingWireSchema } from '../policies/index.ts';

/** Shorter secrets are refused at start-up on both ends. */
export const MIN_CONTROL_SECRET_LENGTH = 32;

export const CONTROL_PATHS = {
  sessions: '/sessions',
  healthz: '/healthz',
  caPem: '/ca.pem',
  metrics: '/metrics',
} as const;

/** Execution ids appear in a URL path and in logs: a conservative alphabet keeps both unambiguous. */
export const ExecutionIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, 'must be 1-128 letters, digits, "-" or "_"')
  .describe('the execution this session serves; also its id on the control channel');

export const OpenSessionBodySchema = z
  .strictObject({
    executionId: ExecutionIdSchema,
    socketPath: z.string().min(1).describe('absolute path of the Unix socket, inside the shared sandboxes directory'),
    policy: PolicySchema.describe('the caller\'s policy in the internal format; the proxy compiles it'),
    secrets: SecretBindingWireSchema.optional().describe('the execution\'s secrets with their values: this channel is the only way they reach the proxy'),
  })
  .describe('POST /sessions body');
export type OpenSessionBody = z.infer<typeof OpenSessionBodySchema>;

export const NetworkLogEntrySchema = z.object({
  method: z.string(),
  url: z.string(),
  hostname: z.string(),
  statusCode: z.number().int(),
  blocked: z.boolean(),
  reason: z.string().optional(),
  wouldBlock: z.literal(true).optional(),
  durationMs: z.number(),
  secrets: z.array(z.string()).optional(),
});

export const NetworkLogResultSchema = z
  .object({ entries: z.array(NetworkLogEntrySchema), capped: z.boolean() })
  .describe('DELETE /sessions/:id response: the session\'s network log');

/** Every non-2xx answer: a stable code to branch on, a message for people. */
export const ControlErrorBodySchema = z.object({
  error: z.string(),
  code: z.string(),
  details: z.array(z.string()).optional(),
});
export type ControlErrorBody = z.infer<typeof ControlErrorBodySchema>;
