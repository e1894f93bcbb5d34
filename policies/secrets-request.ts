/**
 * Secrets supplied with `POST /execute` (the `secrets` field and
 * `X-Secret-*` headers), checked against the caller's policy and turned into
 * the execution's SecretBinding. Pure: the HTTP layer maps each problem's
 * `code` to a 400 and names its `field`; no container is started for a
 * request with problems.
 */
import { z } from 'zod';
import { parseDomainEntry } from './host.ts';
import type { Policy, SecretPlace } from './schema.ts';
import { MAX_SECRETS, MAX_SECRET_VALUE_BYTES, SECRET_PLACES, SecretNameSchema, secretValueProblem } from './schema.ts';
import { SecretBinding } from './secrets-binding.ts';
import type { SecretSpec } from './secrets-binding.ts';
import { secretCoverageProblems } from './secrets.ts';

export const SECRET_HEADER_PREFIX = 'x-secret-';

/**
 * The variable a `X-Env-*` / `X-Secret-*` header names: the suffix
 * upper-cased, `-` read as `_` (proxies such as nginx drop header names with
 * `_` by default), so `X-Secret-Stripe-Key` names `STRIPE_KEY`.
 */
export function variableNameFromHeader(header: string, prefix: string): string {
  return header.slice(prefix.length).toUpperCase().replace(/-/g, '_');
}

export const RequestSecretObjectSchema = z
  .strictObject({
    value: z.string().describe('the credential'),
    hosts: z.array(z.string()).min(1).describe('hosts it may be sent to (allowedDomains syntax); each must be allowed by the policy'),
    in: z.array(z.enum(SECRET_PLACES)).min(1).optional().describe('where it may be substituted: header (default), query, body'),
  })
  .describe('A secret the policy does not declare, bound to hosts by the request.');

export const RequestSecretsSchema = z
  .record(z.string(), z.union([z.string(), RequestSecretObjectSchema]))
  .describe(
    'Secrets by name: a string value for a secret the policy declares, or {value, hosts, in} for one it does not. ' +
      'The program sees a placeholder in the variable of that name; the proxy substitutes the value toward the secret\'s hosts only.',
  );
export type RequestSecrets = z.infer<typeof RequestSecretsSchema>;

export type SecretProblemCode =
  | 'SECRET_NOT_DECLARED'
  | 'SECRET_HOST_NOT_ALLOWED'
  | 'SECRET_WITHOUT_POLICY'
  | 'SECRET_LIMIT'
  | 'SECRET_TOO_LARGE'
  | 'SECRET_ALSO_IN_ENV'
  | 'SECRET_INVALID';

/** One refused part of the request; `field` is `secrets.NAME`, `header x-secret-…`, `env.NAME` or `secrets`. */
export interface SecretProblem {
  code: SecretProblemCode;
  field: string;
  message: string;
}

export interface RequestSecretsInput {
  /** `default` when the caller has no token or their policy could not be had. */
  policySource: 'jwt' | 'default';
  policy: Pick<Policy, 'allowedDomains' | 'blockedDomains' | 'secrets'>;
  /** The body's `secrets` field as received (undefined when absent). */
  body: unknown;
  /** Request headers, each name with all its values (`req.headersDistinct`). */
  headers: Readonly<Record<string, readonly string[] | undefined>>;
  /** The program's environment as requested (body `env` and `X-Env-*`). */
  env: Readonly<Record<string, string>>;
}

export type RequestSecretsResult = { ok: true; binding: SecretBinding } | { ok: false; problems: SecretProblem[] };

interface Supplied {
  field: string;
  value: string;
  /** Present for the object form. */
  bind?: { hosts: string[]; in: SecretPlace[] };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function suppliedFromHeaders(headers: RequestSecretsInput['headers'], problems: SecretProblem[]): Map<string, Supplied> {
  const supplied = new Map<string, Supplied>();
  for (const [header, values] of Object.entries(headers)) {
    if (!header.toLowerCase().startsWith(SECRET_HEADER_PREFIX) || values === undefined) continue;
    const field = `header ${header.toLowerCase()}`;
    const name = variableNameFromHeader(header, SECRET_HEADER_PREFIX);
    const nameCheck = SecretNameSchema.safeParse(name);
    if (!nameCheck.success) {
      problems.push({ code: 'SECRET_INVALID', field, message: `${JSON.stringify(name)}: ${nameCheck.error.issues[0]?.message ?? 'bad name'}` });
      continue;
    }
    if (values.length !== 1 || supplied.has(name)) {
      problems.push({ code: 'SECRET_INVALID', field, message: `${name} is sent more than once` });
      continue;
    }
    // Node hands header bytes over as latin1 characters; clients send UTF-8.
    try {
      supplied.set(name, { field, value: utf8.decode(Buffer.from(values[0] ?? '', 'latin1')) });
    } catch {
      problems.push({ code: 'SECRET_INVALID', field, message: 'value is not valid UTF-8' });
    }
  }
  return supplied;
}

function suppliedFromBody(body: unknown, problems: SecretProblem[]): Map<string, Supplied> {
  const supplied = new Map<string, Supplied>();
  if (body === undefined) return supplied;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    problems.push({ code: 'SECRET_INVALID', field: 'secrets', message: 'secrets must be an object of NAME: value' });
    return supplied;
  }
  for (const [name, entry] of Object.entries(body)) {
    const field = `secrets.${name}`;
    const nameCheck = SecretNameSchema.safeParse(name);
    if (!nameCheck.success) {
      problems.push({ code: 'SECRET_INVALID', field, message: nameCheck.error.issues[0]?.message ?? 'bad name' });
      continue;
    }
    if (typeof entry === 'string') {
      supplied.set(name, { field, value: entry });
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push({ code: 'SECRET_INVALID', field, message: 'must be a string, or {"value", "hosts", "in"}' });
      continue;
    }
    const parsed = RequestSecretObjectSchema.safeParse(entry);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push({ code: 'SECRET_INVALID', field: [field, ...issue.path.map(String)].join('.'), message: issue.message });
      }
      continue;
    }
    const bind = { hosts: parsed.data.hosts, in: [...new Set<SecretPlace>(parsed.data.in ?? ['header'])] };
    supplied.set(name, { field, value: parsed.data.value, bind });
  }
  return supplied;
}

function valueProblem(field: string, value: string): SecretProblem | null {
  const problem = secretValueProblem(value);
  if (problem === null) return null;
  const code = Buffer.byteLength(value, 'utf8') > MAX_SECRET_VALUE_BYTES ? 'SECRET_TOO_LARGE' : 'SECRET_INVALID';
  return { code, field, message: problem };
}

/**
 * Checks what the request supplies against the policy and binds every secret
 * of the execution: those supplied (the body wins over a header of the same
 * name) and those whose value the policy source holds.
 */
export function resolveRequestSecrets(input: RequestSecretsInput): RequestSecretsResult {
  const problems: SecretProblem[] = [];
  const fromHeaders = suppliedFromHeaders(input.headers, problems);
  const fromBody = suppliedFromBody(input.body, problems);
  const supplied = new Map([...fromHeaders, ...fromBody]);

  if (input.policySource === 'default') {
    if (supplied.size > 0 || problems.length > 0) {
      const field = fromBody.size > 0 || input.body !== undefined ? 'secrets' : ([...fromHeaders.values()][0]?.field ?? 'secrets');
      return {
        ok: false,
        problems: [{ code: 'SECRET_WITHOUT_POLICY', field, message: 'secrets need a policy that allows their hosts; the default policy allows none (send a token)' }],
      };
    }
    return { ok: true, binding: SecretBinding.EMPTY };
  }

  const declared = input.policy.secrets ?? {};
  const specs: SecretSpec[] = [];
  for (const [name, entry] of supplied) {
    const problem = valueProblem(entry.field, entry.value);
    if (problem !== null) {
      problems.push(problem);
      continue;
    }
    const rule = Object.hasOwn(declared, name) ? declared[name] : undefined;
    if (entry.bind === undefined) {
      if (rule === undefined) {
        problems.push({
          code: 'SECRET_NOT_DECLARED',
          field: entry.field,
          message: `${name} is not declared by the policy; declare it there, or send {"value", "hosts", "in"} to bind it to hosts the policy allows`,
        });
        continue;
      }
      specs.push({ name, value: entry.value, hosts: rule.hosts, in: rule.in, source: 'request' });
      continue;
    }
    if (rule !== undefined) {
      problems.push({ code: 'SECRET_INVALID', field: entry.field, message: `${name} is declared by the policy, which says where it may go; send its value as a string` });
      continue;
    }
    const unparsed = entry.bind.hosts.flatMap((host) => {
      const parsed = parseDomainEntry(host);
      return parsed.ok ? [] : [parsed.problem];
    });
    if (unparsed.length > 0) {
      problems.push({ code: 'SECRET_INVALID', field: `${entry.field}.hosts`, message: unparsed.join('; ') });
      continue;
    }
    const hostProblems = secretCoverageProblems({ ...input.policy, secrets: { [name]: { hosts: entry.bind.hosts, in: entry.bind.in } } });
    if (hostProblems.length > 0) {
      problems.push({
        code: 'SECRET_HOST_NOT_ALLOWED',
        field: `${entry.field}.hosts`,
        message: hostProblems.map((line) => line.replace(/^secrets\.[A-Z0-9_]+\./, '')).join('; '),
      });
      continue;
    }
    specs.push({ name, value: entry.value, hosts: entry.bind.hosts, in: entry.bind.in, source: 'request' });
  }

  // Values the policy source holds are bound whether or not the request names them.
  for (const [name, rule] of Object.entries(declared)) {
    if (rule.value === undefined || supplied.has(name)) continue;
    specs.push({ name, value: rule.value, hosts: rule.hosts, in: rule.in, source: 'policy' });
  }

  for (const spec of specs) {
    if (Object.hasOwn(input.env, spec.name)) {
      problems.push({ code: 'SECRET_ALSO_IN_ENV', field: `env.${spec.name}`, message: `${spec.name} is a secret of this execution; it cannot also be set in env` });
    }
  }
  if (specs.length > MAX_SECRETS) {
    problems.push({ code: 'SECRET_LIMIT', field: 'secrets', message: `${specs.length} secrets; at most ${MAX_SECRETS} may be bound to one execution` });
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, binding: SecretBinding.fromSpecs(specs) };
}
