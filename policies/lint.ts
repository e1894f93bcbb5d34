/**
 * Validation entry point: turns any JSON value into a policy or into the full
 * list of problems, one `path: message` line each, so an operator fixes them in
 * one pass instead of one per reload. A valid policy may still carry warnings:
 * choices that are allowed but probably not meant.
 */
import { parse as parseDomain } from 'tldts';
import type { z } from 'zod';
import { parseDomainEntry, parseHostPattern } from './host.ts';
import { parseAllowedPackage } from './package-spec.ts';
import { PolicyApiSchema, policyFromApi } from './schema.ts';
import type { Policy, PolicyApi } from './schema.ts';
import { hostPatternCovers, secretCoverageProblems } from './secrets.ts';

export type LintResult = { ok: true; policy: Policy; api: PolicyApi; warnings: string[] } | { ok: false; problems: string[] };

/**
 * Services that give every customer a name under their own domain
 * (`dev-123.okta.com`) and that anyone can sign up for. The public-suffix list
 * only holds domains whose owners asked to be listed, and these did not.
 */
export const MULTI_TENANT_DOMAINS: readonly string[] = [
  'okta.com',
  'oktapreview.com',
  'okta-emea.com',
  'auth0.com',
  'onelogin.com',
  'atlassian.net',
  'my.salesforce.com',
  'force.com',
  'zendesk.com',
  'slack.com',
  'sharepoint.com',
  'service-now.com',
];

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
  const secretProblems = [...secretCoverageProblems(policy), ...webSocketCoverageProblems(policy)];
  if (secretProblems.length > 0) return { ok: false, problems: secretProblems };
  return { ok: true, policy, api: parsed.data, warnings: policyWarnings(policy) };
}

/** A webSocketDomains entry no allowedDomains entry covers would never be reached: a mistake worth refusing. */
function webSocketCoverageProblems(policy: Policy): string[] {
  const allowed = policy.allowedDomains.flatMap((raw) => {
    const parsed = parseDomainEntry(raw);
    return parsed.ok ? [parsed.entry.host] : [];
  });
  return (policy.webSocketDomains ?? []).flatMap((raw, index) => {
    const parsed = parseHostPattern(raw);
    if (!parsed.ok || allowed.some((outer) => hostPatternCovers(outer, parsed.pattern))) return [];
    return [`webSocketDomains[${index}]: "${raw}" is not covered by allowedDomains; add the host there too (WebSockets never widen egress)`];
  });
}

/** Warnings for a valid policy, one `path: message` line each. */
export function policyWarnings(policy: Policy): string[] {
  const domains = policy.allowedDomains.flatMap((raw, index) => {
    const parsed = parseDomainEntry(raw);
    if (!parsed.ok || parsed.entry.host.kind !== 'subdomains') return [];
    const problem = sharedSuffixProblem(parsed.entry.host.text.slice(2));
    return problem === null ? [] : [`allowedDomains[${index}]: "${raw}" ${problem}`];
  });
  return [...domains, ...packageWarnings(policy.allowedPackages)];
}

/**
 * A bare name is allowed on npm and on PyPI at once: two registries, two
 * owners, possibly two unrelated projects. Say so, and how to name one. An
 * entry that covers nothing (`pypi:@scope`) is said too.
 */
export function packageWarnings(allowedPackages: readonly string[]): string[] {
  return allowedPackages.flatMap((raw, index) => {
    const entry = parseAllowedPackage(raw);
    if (!entry.ok) return [`allowedPackages[${index}]: ${entry.problem}; it allows nothing`];
    if (entry.prefixed || entry.ecosystems.length < 2) return [];
    return [
      `allowedPackages[${index}]: "${raw}" allows the package of that name on npm and the project of that name on PyPI, which may belong to different owners; write "npm:${raw}" or "pypi:${raw}" for the one you mean`,
    ];
  });
}

/**
 * Why `*.domain` reaches hosts other parties control, or null: `domain` is a
 * public suffix (`github.io`, `s3.amazonaws.com`, `co.uk`) or sits above one
 * (`compute.amazonaws.com`), or it is a multi-tenant service's domain.
 */
function sharedSuffixProblem(domain: string): string | null {
  const probe = parseDomain(`name.${domain}`, { allowPrivateDomains: true });
  const suffix = probe.publicSuffix;
  const listed = probe.isIcann === true || probe.isPrivate === true;
  if (listed && suffix !== null && (suffix === domain || suffix.endsWith(`.${domain}`))) {
    return `covers names anyone can register: ${suffix} is on the public-suffix list; name the hosts you mean instead`;
  }
  if (MULTI_TENANT_DOMAINS.includes(domain)) {
    return `covers every customer of ${domain}, and anyone can sign up for a name under it; name your own tenant (e.g. "your-org.${domain}") instead`;
  }
  return null;
}
