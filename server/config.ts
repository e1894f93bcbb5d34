/**
 * Service configuration from the environment (DESIGN.md §10). Every variable
 * is validated at start-up and every bad one is named at once, so an
 * operator fixes them in one go instead of one restart per mistake.
 */
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { loadEnv, logLevel, optionalText, port, positiveInt } from '../service-kit/index.ts';
import { EGRESS_SETTINGS_SHAPE } from '../egress-proxy/index.ts';
// The leaf module, not the folder's index: the index reaches back into the server and would make a cycle.
import { AUDIT_CONFIG_SHAPE } from './audit/config.ts';
import { decodeResponseKey, RESPONSE_KEY_FORMAT } from './encryption.ts';
import { MAX_INPUT_FILES } from './execute-request.ts';

/** The shipped example users (demo-user holds the seed policy), so a fresh checkout runs end to end. */
const EXAMPLE_POLICY_DIR = fileURLToPath(new URL('../examples/policies/users/', import.meta.url));
const MIN_ADMIN_TOKEN_LENGTH = 16;
const MIN_CONTROL_SECRET_LENGTH = 32;
const MIB = 1024 * 1024;
/** Uploads travel in the agent's job header, which it caps (MAX_HEADER_BYTES in both agents, 64 MiB) with the code beside them. */
const MAX_FILES_BYTES_CEILING = 24 * MIB;
/** Output files are held in memory on their way to the client, base64 and all. */
const MAX_OUTPUT_FILES_BYTES_CEILING = 32 * MIB;
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration in whole seconds: `3600`, `90s`, `30m`, `24h`, `7d`. */
const durationSeconds = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const match = /^(\d+)\s*([smhd]?)$/.exec(v.trim());
      const seconds = match === null ? 0 : Number(match[1]) * (DURATION_UNITS[match[2] || 's'] ?? 1);
      if (seconds <= 0) {
        ctx.addIssue({ code: 'custom', message: 'must be a positive duration: seconds, or a number with s, m, h or d (e.g. 24h)' });
        return z.NEVER;
      }
      return seconds;
    });

const TRUST_PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];
const isAddressOrSubnet = (item: string): boolean => {
  const [address = '', bits, ...rest] = item.split('/');
  if (rest.length > 0 || isIP(address) === 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(address) === 4 ? 32 : 128));
};

/**
 * Express's `trust proxy`: off (the default: the peer address is the client),
 * a number of proxy hops, or the proxies' addresses. `true` (trust any
 * X-Forwarded-For) is refused: every client could then pick its own address,
 * and with it its own per-address rate limit.
 */
const trustProxy = z
  .string()
  .optional()
  .transform((v, ctx): false | number | string[] => {
    const value = v?.trim().toLowerCase() ?? '';
    if (value === '' || value === 'false' || value === 'off' || value === '0') return false;
    if (/^\d+$/.test(value)) return Number(value);
    const items = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
    const bad = items.filter((item) => !TRUST_PROXY_NAMES.includes(item) && !isAddressOrSubnet(item));
    if (bad.length > 0 || items.length === 0) {
      ctx.addIssue({
        code: 'custom',
        message: `must be off, a hop count, or comma-separated proxy addresses/subnets or ${TRUST_PROXY_NAMES.join('/')} (not understood: ${bad.join(', ') || value})`,
      });
      return z.NEVER;
    }
    return items;
  });

export const ConfigSchema = z
  .object({
    NODE_ENV: z.string().default('development').describe('`production` refuses to start without real JWT keys'),
    PORT: port(3000).describe('listen port'),
    HOST: z.string().min(1).default('127.0.0.1').describe('listen address'),
    ALLOWED_HOSTS: optionalText
      .transform((v) => (v ?? '').split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== ''))
      .describe('when listening on loopback: further `Host` header values accepted besides 127.0.0.1:PORT, localhost:PORT and [::1]:PORT (comma-separated, e.g. a local reverse proxy\'s name); others get 403'),
    TRUST_PROXY: trustProxy.describe('Express `trust proxy`: off (default), a hop count, or the reverse proxies\' addresses/subnets (comma-separated; loopback, linklocal, uniquelocal allowed); decides which address the per-address limits see'),
    DATA_DIR: z.string().min(1).default('./.data').describe('CA, development keys and other state'),
    JWT_JWKS_URL: optionalText.pipe(z.url().optional()).describe('JWKS URL for verifying tokens'),
    JWT_PUBLIC_KEY: optionalText.describe('PEM or JWK public key, inline or a file path'),
    JWT_SECRET: optionalText.describe('HS256 secret'),
    JWT_ALGORITHMS: optionalText.describe('comma-separated algorithm allowlist'),
    JWT_ISSUER: optionalText.describe('expected `iss` (required with NODE_ENV=production and JWT_JWKS_URL)'),
    JWT_AUDIENCE: optionalText.describe('expected `aud` (required with NODE_ENV=production)'),
    JWT_MAX_TOKEN_AGE: durationSeconds('24h')
      .describe('longest lifetime a token may have: `exp - iat`, or `exp - now` without `iat` (seconds, or with s/m/h/d; default 24h); longer-lived tokens get 401'),
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
    EXEC_RUNTIME: z.enum(['auto', 'runsc', 'runc']).default('auto')
      .describe('isolation tier of every sandbox: runsc (gVisor: its own kernel in user space; slower start and system calls), runc (the host kernel behind namespaces and a seccomp profile), auto (runsc when the engine has it registered, else runc; logged at start)'),
    EXEC_TIMEOUT_MS: positiveInt(30_000).describe('default wall-clock limit per execution'),
    EXEC_MAX_TIMEOUT_MS: positiveInt(120_000).describe('largest timeoutMs a request may ask for'),
    EXEC_MEMORY_MB: z.coerce.number().int().min(16).max(65_536).default(256).describe('memory limit per sandbox (swap equal)'),
    EXEC_OUTPUT_LIMIT_BYTES: positiveInt(1024 * 1024).describe('cap on each of stdout and stderr'),
    EXEC_PIDS_LIMIT: positiveInt(128).describe('process/thread limit per sandbox'),
    EXEC_CPUS: z.coerce.number().positive().max(64).default(1).describe('CPU quota per sandbox, in CPUs'),
    EXEC_TMP_MB: positiveInt(64).describe('size of the sandbox /tmp tmpfs'),
    EXEC_MAX_CODE_BYTES: positiveInt(1024 * 1024).describe('largest `code` accepted (413 beyond)'),
    EXEC_FILES_MAX_COUNT: z.coerce.number().int().min(0).max(MAX_INPUT_FILES).default(64)
      .describe(`most \`files\` one request may upload (at most ${MAX_INPUT_FILES}; 0 refuses uploads); beyond it 400`),
    EXEC_FILES_MAX_BYTES: z.coerce.number().int().min(0).max(MAX_FILES_BYTES_CEILING).default(8 * 1024 * 1024)
      .describe(`total decoded size of one request's \`files\` (at most ${MAX_FILES_BYTES_CEILING / MIB} MiB and half of EXEC_TMP_MB, so the program keeps room in /tmp); beyond it 400`),
    EXEC_OUTPUT_FILES_MAX_COUNT: z.coerce.number().int().min(0).max(MAX_INPUT_FILES).default(64)
      .describe('most files `outputFiles` returns; past it the rest are left out and truncated.files is true'),
    EXEC_OUTPUT_FILES_MAX_BYTES: z.coerce.number().int().min(0).max(MAX_OUTPUT_FILES_BYTES_CEILING).default(8 * 1024 * 1024)
      .describe(`total size of the files \`outputFiles\` returns (at most ${MAX_OUTPUT_FILES_BYTES_CEILING / MIB} MiB); a file that does not fit is left out and truncated.files is true`),
    EXEC_STREAM_HEARTBEAT_MS: positiveInt(15_000).describe('interval of the heartbeat comment on a streamed /execute response (Accept: text/event-stream)'),
    EXEC_POOL_SIZE: z.coerce.number().int().min(0).max(64).default(2)
      .describe('sandboxes per runtime created and started ahead of time (warm pool), each used once; 0 disables the pool (every run starts cold)'),
    EXEC_MAX_CONCURRENT: positiveInt(Math.max(2, availableParallelism() * 4))
      .describe('executions running at once (default: 4 per CPU); further requests queue'),
    EXEC_MAX_CONCURRENT_PER_CALLER: z.coerce.number().int().positive().optional()
      .describe('executions one caller (JWT subject, or address without a token) may hold at once, running or queued (default: half of EXEC_MAX_CONCURRENT, at least 1); beyond it 429 with Retry-After'),
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
    RATE_LIMIT_ADDRESS_MAX: z.coerce.number().int().min(0).default(600)
      .describe('/execute requests per window per client address, with or without a token, counted before any other work (token, body, policy); 0 turns the limit off'),
    RATE_LIMIT_AUTH_FAILURES_MAX: z.coerce.number().int().min(0).default(20)
      .describe('refused tokens (401) per window per client address; past it the address gets 429 before its token is even checked; 0 turns the limit off'),
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
  .refine((c) => c.EXEC_FILES_MAX_BYTES <= (c.EXEC_TMP_MB * MIB) / 2, {
    message: 'must not exceed half of EXEC_TMP_MB (uploads land in the sandbox /tmp)',
    path: ['EXEC_FILES_MAX_BYTES'],
  })
  .refine((c) => c.EXEC_TIMEOUT_MS <= c.EXEC_MAX_TIMEOUT_MS, {
    message: 'must not exceed EXEC_MAX_TIMEOUT_MS',
    path: ['EXEC_TIMEOUT_MS'],
  })
  .transform((c) => ({
    ...c,
    DATA_DIR: resolve(c.DATA_DIR),
    EXEC_MAX_CONCURRENT_PER_CALLER: c.EXEC_MAX_CONCURRENT_PER_CALLER ?? Math.max(1, Math.floor(c.EXEC_MAX_CONCURRENT / 2)),
  }));

export type Config = z.infer<typeof ConfigSchema>;

/** The one ConfigError of every service (key-source problems are reported with it too). */
export { ConfigError } from '../service-kit/index.ts';

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return loadEnv(ConfigSchema, env);
}
