/**
 * A policy's identity: the SHA-256 of its canonical JSON, so two executions
 * ran under the same rules exactly when their hashes are equal, whatever
 * order the source wrote keys in. Secret values are left out (only whether
 * the policy holds one is kept): the hash is stored and shown to
 * administrators, and rotating a credential does not change the rules.
 */
import { createHash } from 'node:crypto';
import type { Policy } from './schema.ts';
import { redactSecretValues } from './secrets.ts';

/** JSON with object keys sorted at every depth; arrays keep their order (rule order matters). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item === undefined ? null : item)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Hex SHA-256 of the effective (internal) policy's canonical JSON, secret values excluded. */
export function policyHash(policy: Policy): string {
  return createHash('sha256').update(canonicalJson(redactSecretValues(policy))).digest('hex');
}
