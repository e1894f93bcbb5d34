/**
 * Environment variables from `X-Env-NAME: value` request headers (DESIGN §3),
 * merged under the body's `env` (the body wins).
 *
 * HTTP header names are case-insensitive and arrive lower-cased, so the
 * variable name is the header's suffix upper-cased, with `-` read as `_`
 * (proxies such as nginx drop headers whose names contain `_` by default):
 * `X-Env-Api-Key` and `X-Env-API_KEY` both set `API_KEY`. A name may be sent
 * once. Values are read as UTF-8.
 */
import { RESERVED_ENV_NAMES, type FieldProblem } from './execute-request.ts';

export const ENV_HEADER_PREFIX = 'x-env-';
export const MAX_HEADER_ENV_VARS = 64;
/** Below Node's 16 KiB limit on all headers together, so an oversize value gets a 400 naming it, not a bare 431. */
export const MAX_HEADER_ENV_VALUE_BYTES = 4096;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const MAX_ENV_NAME_LENGTH = 128;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export type HeaderEnvResult = { ok: true; env: Record<string, string> } | { ok: false; problems: FieldProblem[] };

/** Reads the `X-Env-*` headers of a request (`req.headersDistinct`: each name with all its values). */
export function envFromHeaders(headers: Record<string, string[] | undefined>): HeaderEnvResult {
  const env: Record<string, string> = {};
  const problems: FieldProblem[] = [];
  let count = 0;
  for (const [header, values] of Object.entries(headers)) {
    if (!header.startsWith(ENV_HEADER_PREFIX) || values === undefined) continue;
    const field = `header ${header}`;
    const name = header.slice(ENV_HEADER_PREFIX.length).toUpperCase().replace(/-/g, '_');
    if (++count > MAX_HEADER_ENV_VARS) {
      problems.push({ field, message: `at most ${MAX_HEADER_ENV_VARS} X-Env-* headers are accepted` });
      continue;
    }
    if (!ENV_NAME.test(name) || name.length > MAX_ENV_NAME_LENGTH) {
      problems.push({ field, message: `${JSON.stringify(name)} is not a valid variable name ([A-Z_][A-Z0-9_]*, at most ${MAX_ENV_NAME_LENGTH} characters)` });
      continue;
    }
    if (RESERVED_ENV_NAMES.has(name)) {
      problems.push({ field, message: `${name} is reserved by the sandbox` });
      continue;
    }
    if (values.length !== 1 || Object.hasOwn(env, name)) {
      problems.push({ field, message: `${name} is sent more than once` });
      continue;
    }
    // Node hands header bytes over as latin1 characters; clients send UTF-8.
    const bytes = Buffer.from(values[0] ?? '', 'latin1');
    if (bytes.length > MAX_HEADER_ENV_VALUE_BYTES) {
      problems.push({ field, message: `value is ${bytes.length} bytes; the limit is ${MAX_HEADER_ENV_VALUE_BYTES}` });
      continue;
    }
    try {
      env[name] = utf8.decode(bytes);
    } catch {
      problems.push({ field, message: 'value is not valid UTF-8' });
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, env };
}
