/**
 * The `/execute` request's secrets (the `secrets` field and `X-Secret-*`
 * headers) checked against the caller's policy and bound to the execution,
 * or refused with a 400 naming each field, before any container exists.
 */
import { resolveRequestSecrets, type SecretBinding } from '../policies/index.ts';
import { ApiError } from './errors.ts';
import type { Caller } from './identity/index.ts';

export function bindRequestSecrets(
  caller: Caller,
  body: unknown,
  headers: Readonly<Record<string, readonly string[] | undefined>>,
  env: Readonly<Record<string, string>>,
): SecretBinding {
  const resolved = resolveRequestSecrets({ policySource: caller.policyInfo.source, policy: caller.policy.policy, body, headers, env });
  if (resolved.ok) return resolved.binding;
  const [first] = resolved.problems;
  // Messages name secrets and fields, never a value.
  throw new ApiError(
    400,
    first?.code ?? 'SECRET_INVALID',
    `Invalid secrets: ${resolved.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
    resolved.problems.map((p) => ({ field: p.field, message: p.message, code: p.code })),
  );
}
