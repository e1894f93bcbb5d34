/**
 * Validation entry point: turns any JSON value into a policy or into the full
 * list of problems, one `path: message` line each, so an operator fixes them in
 * one pass instead of one per reload.
 */
import type { z } from 'zod';
import { PolicyApiSchema, policyFromApi } from './schema.ts';
import type { Policy, PolicyApi } from './schema.ts';
import { secretCoverageProblems } from './secrets.ts';

export type LintResult = { ok: true; policy: Policy; api: PolicyApi } | { ok: false; problems: string[] };

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `apiPathRules["*.okta.com"][1].method`, the same spelling `Decision.rule` uses. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && IDENTIFIER.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(policy)' : out;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${formatIssuePath(issue.path)}: ${issue.message}`);
}

/** Validates a policy in the API format (the internal format is accepted too) and maps it. */
export function lintPolicy(json: unknown): LintResult {
  const parsed = PolicyApiSchema.safeParse(json);
  if (!parsed.success) return { ok: false, problems: formatIssues(parsed.error.issues) };
  const policy = policyFromApi(parsed.data);
  // Secrets: a host the policy itself does not allow.
  const secretProblems = secretCoverageProblems(policy);
  if (secretProblems.length > 0) return { ok: false, problems: secretProblems };
  return { ok: true, policy, api: parsed.data };
}
