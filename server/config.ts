/**
 * Service configuration from the environment (DESIGN.md §10). Every variable
 * is validated at start-up and every bad one is named at once, so an
 * operator fixes them in one go instead of one restart per mistake.
 */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { loadEnv, logLevel, optionalText, port, positiveInt } from '../service-kit/index.ts';
import { EGRESS_SETTINGS_SHAPE } from '../egress-proxy/index.ts';
// The leaf module, not the folder's index: the index reaches back into the server and would make a cycle.
import { AUDIT_CONFIG_SHAPE } from './audit/config.ts';
import { decodeResponseKey, RESPONSE_KEY_FORMAT } from './encryption.ts';

/** The shipped example users (demo-user holds the seed policy), so a fresh checkout runs end to end. */
const EXAMPLE_POLICY_DIR = fileURLToPath(new URL('../examples/policies/users/', import.meta.url));
const MIN_ADMIN_TOKEN_LENGTH = 16;
const MIN_CONTROL_SECRET_LENGTH = 32;

export const ConfigSchema = z
  .object({
    NODE_ENV: z.string().default('development').describe('`production` refuses to start without real JWT keys'),
    PORT: port(3000).describe('listen port'),
    HOST: z.string().min(1).default('127.0.0.1').describe('listen address'),
    DATA_DIR: z.string().min(1).default('./.data').describe('CA, development keys and other state'),
    JWT_JWKS_URL: optionalText.pipe(z.url().optional()).describe('JWKS URL for verifying tokens'),
    JWT_PUBLIC_KEY: optionalText.describe('PEM or JWK public key, inline or a file path'),
    JWT_SECRET: optionalText.describe('HS256 secret'),
    JWT_ALGORITHMS: optionalText.describe('comma-separated algorithm allowlist'),
    JWT_ISSUER: optionalText.describe('expected `iss`'),
    JWT_AUDIENCE: optionalText.describe('expected `aud`'),
    POLICY_API_URL: optionalText.pipe(z.url().optional()).describe('policy API (default: the embedded policy service)'),
    POLICY_DIR: optionalText
      .transform((v) => resolve(v ?? EXAMPLE_POLICY_DIR))
      .describe('embedded policy service folder: <encodeURIComponent(sub)>.json per user (default: examples/policies/users of this repository, where demo-user.json is the seed policy; use your own folder in production)'),
    POLICY_CACHE_TTL_MS: positiveInt(60_000).describe('policy cache lifetime'),
    POLICY_FETCH_TIMEOUT_MS: positiveInt(3_000).describe('policy fetch timeout'),
    ...EGRESS_SETTINGS_SHAPE,
    EGRESS_MODE: z.enum(['inprocess', 'remote']).default('inprocess')
      .describe('inprocess: the proxy runs in this process (default); remote: a standalone egress proxy service (egress-proxy/main.ts) reached over its control channel'),
    EGRESS_CONTROL_URL: optionalText.pipe(z.url().optional()).describe('remote mode: the proxy service\'s control API, e.g. http://egress-proxy:8080'),
    EGRESS_CONTROL_SECRET: optionalText
      .refine((v) => v === undefined || v.length >= MIN_CONTROL_SECRET_LENGTH, { message: `must be at least ${MIN_CONTROL_SECRET_LENGTH} characters` })
      .describe('remote mode: the secret shared with the proxy service'),
    EXEC_TIMEOUT_MS: positiveInt(30_000).describe('default wall-clock limit per execution'),
    EXEC_MAX_TIMEOUT_MS: positiveInt(120_000).describe('largest timeoutMs a request may ask for'),
    EXEC_MEMORY_MB: z.coerce.number().int().min(16).max(65_536).default(256).describe('memory limit per sandbox (swap equal)'),
    EXEC_OUTPUT_LIMIT_BYTES: positiveInt(1024 * 1024).describe('cap on each of stdout and stderr'),
    EXEC_PIDS_LIMIT: positiveInt(128).describe('process/thread limit per sandbox'),
    EXEC_CPUS: z.coerce.number().positive().max(64).default(1).describe('CPU quota per sandbox, in CPUs'),
    EXEC_TMP_MB: positiveInt(64).describe('size of the sandbox /tmp tmpfs'),
    EXEC_MAX_CODE_BYTES: positiveInt(1024 * 1024).describe('largest `code` accepted (413 beyond)'),
    EXEC_POOL_SIZE: z.coerce.number().int().min(0).max(64).default(2)
      .describe('sandboxes per runtime created and started ahead of time (warm pool), each used once; 0 disables the pool (every run starts cold)'),
    EXEC_MAX_CONCURRENT: positiveInt(Math.max(2, availableParallelism() * 4))
      .describe('executions running at once (default: 4 per CPU); further requests queue'),
    EXEC_QUEUE_LIMIT: z.coerce.number().int().min(0).default(64)
      .describe('requests allowed to wait for a free execution slot; beyond it 503 with Retry-After'),
    EXEC_QUEUE_TIMEOUT_MS: positiveInt(10_000)
      .describe('longest wait in the queue (never more than half the request\'s timeoutMs, whose budget the wait is counted against); then 503 with Retry-After'),
    ADMIN_TOKEN: optionalText
      .refine((v) => v === undefined || v.length >= MIN_ADMIN_TOKEN_LENGTH, { message: `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters` })
      .describe('bearer token for the /admin endpoints; unset, they are not served (404)'),
    RESPONSE_ENCRYPTION_KEY: optionalText
      .refine((v) => v === undefined || decodeResponseKey(v) !== null, { message: `must be ${RESPONSE_KEY_FORMAT}` })
      .describe(`key for encrypt_messages: ${RESPONSE_KEY_FORMAT}; unset, requests asking for encryption get 400`),
    RATE_LIMIT_WINDOW_MS: positiveInt(60_000).describe('rate-limit window for /execute'),
    RATE_LIMIT_SUBJECT_MAX: z.coerce.number().int().min(0).default(60).describe('/execute requests per window per JWT subject; 0 turns the limit off'),
    RATE_LIMIT_IP_MAX: z.coerce.number().int().min(0).default(30)
      .describe('/execute requests per window per client address, for callers without a token; 0 turns the limit off'),
    SHUTDOWN_GRACE_MS: positiveInt(25_000)
      .describe('on SIGTERM/SIGINT, how long running executions get to finish before their sandboxes are removed'),
    ...AUDIT_CONFIG_SHAPE,
    LOG_LEVEL: logLevel,
  })
  .superRefine((c, ctx) => {
    if (c.EGRESS_MODE !== 'remote') return;
    for (const name of ['EGRESS_CONTROL_URL', 'EGRESS_CONTROL_SECRET'] as const) {
      if (c[name] === undefined) ctx.addIssue({ code: 'custom', message: 'is required with EGRESS_MODE=remote', path: [name] });
    }
  })
  .refine((c) => c.EXEC_TIMEOUT_MS <= c.EXEC_MAX_TIMEOUT_MS, {
    message: 'must not exceed EXEC_MAX_TIMEOUT_MS',
    path: ['EXEC_TIMEOUT_MS'],
  })
  .transform((c) => ({ ...c, DATA_DIR: resolve(c.DATA_DIR) }));

export type Config = z.infer<typeof ConfigSchema>;

/** The one ConfigError of every service (key-source problems are reported with it too). */
export { ConfigError } from '../service-kit/index.ts';

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return loadEnv(ConfigSchema, env);
}
