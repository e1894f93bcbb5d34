/**
 * The `/execute` request body (DESIGN.md §3). The schema is the contract:
 * every field is described so the OpenAPI document can be generated from it.
 */
import { z } from 'zod';
import { conflictingPaths, relativePathProblem, SANDBOX_WORK_DIR } from '../executor/index.ts';
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

/**
 * Hard ceilings on the file lists, whatever the configuration: the
 * configured limits (EXEC_FILES_MAX_COUNT and kin) are checked by the
 * execution service, below these.
 */
export const MAX_INPUT_FILES = 1000;
export const MAX_OUTPUT_PATTERNS = 32;

/** Standard base64 (RFC 4648 §4) with its padding: checked without a backtracking group, so a large upload costs one linear scan. */
const BASE64_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;
export const isBase64 = (text: string): boolean => text.length % 4 === 0 && BASE64_ALPHABET.test(text);

/** Bytes `text` (valid base64) decodes to. */
export function decodedLength(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}

const relativePath = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((path, ctx) => {
    const problem = relativePathProblem(path);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  });

export const InputFileSchema = z
  .strictObject({
    path: relativePath('path').describe(`where the file lands, relative to the program's working directory (${SANDBOX_WORK_DIR}), e.g. data/in.csv; directories are created`),
    content: z
      .string({ error: 'content must be a string' })
      .refine(isBase64, { message: 'must be base64 (RFC 4648: A-Z a-z 0-9 + /, padded with = to a multiple of 4)' })
      .describe('the file\'s bytes, base64'),
  })
  .describe('a file written into the working directory before the program starts');

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
    files: z
      .array(InputFileSchema)
      .max(MAX_INPUT_FILES)
      .default([])
      .superRefine((files, ctx) => {
        for (const { index, problem } of conflictingPaths(files.map((file) => file.path))) {
          ctx.addIssue({ code: 'custom', message: problem, path: [index, 'path'] });
        }
      })
      .describe(
        `files written into the program's working directory (${SANDBOX_WORK_DIR}, also its cwd) before it starts; ` +
          'count and total decoded size are capped by the server (EXEC_FILES_MAX_COUNT, EXEC_FILES_MAX_BYTES)',
      ),
    outputFiles: z
      .array(relativePath('pattern').describe('a glob relative to the working directory: * and ? within one path segment, ** across segments'))
      .max(MAX_OUTPUT_PATTERNS)
      .default([])
      .describe(
        'globs (e.g. "*.png", "out/**") of regular files collected from the working directory after the program exits and returned in `files`; ' +
          'symbolic links and anything outside the working directory are never followed; count and total size are capped (EXEC_OUTPUT_FILES_MAX_COUNT, EXEC_OUTPUT_FILES_MAX_BYTES) with truncated.files set',
      ),
  })
  .strict();

export type ExecuteRequest = z.infer<typeof ExecuteRequestSchema>;

export interface FieldProblem {
  field: string;
  message: string;
}

/** A field's path as clients write it: `files[0].path`, `env.NAME`. */
export function fieldName(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((name, key) => (typeof key === 'number' ? `${name}[${key}]` : name === '' ? String(key) : `${name}.${String(key)}`), '');
}

export function describeIssues(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => {
    const field = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : fieldName(issue.path) || '(body)';
    return { field, message: issue.message };
  });
}

/**
 * The largest request body worth reading: the largest code after JSON
 * escaping, the largest uploads in base64, and room for the rest. The
 * sizes themselves are checked after parsing, so the answer can name them.
 */
export function maxRequestBodyBytes(limits: { EXEC_MAX_CODE_BYTES: number; EXEC_FILES_MAX_BYTES: number; EXEC_FILES_MAX_COUNT: number }): number {
  return limits.EXEC_MAX_CODE_BYTES * 2 + Math.ceil(limits.EXEC_FILES_MAX_BYTES / 3) * 4 + limits.EXEC_FILES_MAX_COUNT * 4096 + 10 * 1024 * 1024;
}
