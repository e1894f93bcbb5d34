/**
 * The `/execute` request body (DESIGN.md §3). The schema is the contract:
 * every field is described so the OpenAPI document can be generated from it.
 */
import { z } from 'zod';
import { LANGUAGES, RUNTIMES, runtimeForLanguage, SANDBOX_RUNTIMES } from '../images/index.ts';
import { RequestSecretsSchema } from '../policies/index.ts';

/** Variables the sandbox sets itself: a request may not override the route out or the CA. */
export const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set([
  'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
  'NODE_USE_ENV_PROXY', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE', 'PIP_CERT', 'NODE_OPTIONS', 'PATH', 'HOME',
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_VALUE_BYTES = 32 * 1024;

/** e.g. "javascript (aliases js, node) or python (alias py)". */
const LANGUAGE_CHOICES = RUNTIMES.map((runtime) => {
  const [name, ...aliases] = SANDBOX_RUNTIMES[runtime].languages;
  return aliases.length === 0 ? name : `${name} (${aliases.length === 1 ? 'alias' : 'aliases'} ${aliases.join(', ')})`;
}).join(' or ');

export const ExecuteRequestSchema = z
  .object({
    code: z.string({ error: 'code must be a string' }).describe('the program'),
    language: z
      .string({ error: 'language must be a string' })
      .default('javascript')
      .transform((language, ctx) => {
        const runtime = runtimeForLanguage(language);
        if (runtime === undefined) {
          ctx.addIssue({ code: 'custom', message: `unknown language; supported: ${LANGUAGES.join(', ')}` });
          return z.NEVER;
        }
        return runtime;
      })
      .describe(`runtime: ${LANGUAGE_CHOICES}`),
    stdin: z.string().max(8 * 1024 * 1024).default('').describe('fed to the program'),
    args: z.array(z.string().max(64 * 1024)).max(256).default([]).describe('program arguments'),
    env: z
      .record(z.string(), z.string().max(MAX_ENV_VALUE_BYTES))
      .default({})
      .superRefine((env, ctx) => {
        for (const name of Object.keys(env)) {
          if (!ENV_NAME.test(name)) ctx.addIssue({ code: 'custom', message: `invalid variable name ${JSON.stringify(name)}`, path: [name] });
          else if (RESERVED_ENV_NAMES.has(name)) ctx.addIssue({ code: 'custom', message: `${name} is reserved by the sandbox`, path: [name] });
        }
      })
      .describe('environment variables for the program (plain values the program holds: pass credentials as secrets instead)'),
    secrets: RequestSecretsSchema.optional().describe(
      'credentials by variable name (also as X-Secret-* headers; the body wins): the program sees a placeholder, ' +
        'the egress proxy substitutes the value only toward the hosts the caller\'s policy binds the secret to, and scrubs it from responses and output',
    ),
    timeoutMs: z.number().int().positive().optional().describe('wall-clock limit in ms, capped by the server maximum'),
    packages: z.array(z.string().min(1)).max(64).default([]).describe('packages to install before running, gated by allowedPackages'),
    encrypt_messages: z.boolean().default(false).describe('encrypt the whole response (JWE)'),
  })
  .strict();

export type ExecuteRequest = z.infer<typeof ExecuteRequestSchema>;

export interface FieldProblem {
  field: string;
  message: string;
}

export function describeIssues(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => {
    const field = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue.path.join('.') || '(body)';
    return { field, message: issue.message };
  });
}
