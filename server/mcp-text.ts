/**
 * What the MCP tools answer, in words a model reads: an execution's result,
 * one egress decision under the caller's policy, and the caller's policy.
 * Secret values never appear here: only names and the hosts they are bound to.
 */
import {
  applyEnforcement,
  compileSecretRules,
  decide,
  enforcementOf,
  egressRequestFromUrl,
  secretsFor,
  secretSummary,
  type Decision,
} from '../policies/index.ts';
export { EgressUrlError } from '../policies/index.ts';
import type { ExecuteResponseData } from './execution-service.ts';
import type { Caller } from './identity/index.ts';

const list = (items: readonly string[]): string => (items.length === 0 ? 'none' : items.join(', '));

/** stdout, stderr, exit and one line per request the program made. */
export function describeExecution(data: ExecuteResponseData): string {
  const exit = data.timedOut
    ? 'timed out'
    : data.oomKilled
      ? 'killed: out of memory'
      : data.code === null
        ? `killed by ${data.signal ?? 'a signal'}`
        : String(data.code);
  const lines = [
    `exit: ${exit}`,
    `stdout${data.truncated.stdout ? ' (truncated)' : ''}:`,
    data.stdout === '' ? '(empty)' : data.stdout.replace(/\n$/, ''),
    `stderr${data.truncated.stderr ? ' (truncated)' : ''}:`,
    data.stderr === '' ? '(empty)' : data.stderr.replace(/\n$/, ''),
  ];
  const allowed = data.networkLog.filter((entry) => !entry.blocked);
  const blocked = data.networkLog.filter((entry) => entry.blocked);
  lines.push(`network: ${allowed.length} allowed, ${blocked.length} blocked${data.networkLogCapped === true ? ' (log capped)' : ''}`);
  for (const entry of data.networkLog) {
    const verdict = entry.blocked ? 'blocked' : entry.wouldBlock === true ? 'allowed (audit mode would block)' : 'allowed';
    const why = entry.reason === undefined ? '' : `: ${entry.reason}`;
    lines.push(`  ${verdict} ${entry.method} ${entry.url} -> ${entry.statusCode}${why}`);
  }
  if (data.files !== undefined) {
    // Names and sizes only: the contents (base64) are in the structured result.
    lines.push(`files: ${data.files.length}${data.truncated.files === true ? ' (truncated: more matched than the limits allow)' : ''}`);
    for (const file of data.files) lines.push(`  ${file.path} (${file.size} bytes)`);
  }
  return lines.join('\n');
}


export interface EgressCheck {
  allowed: boolean;
  reason: string;
  rule: string;
  host: string | null;
  path?: string;
  /** Audit mode: let through, though the rules would block it. */
  wouldBlock?: boolean;
  /** Names of the secrets the proxy would substitute into this request. */
  secrets: string[];
}

/** What the egress proxy's rules would decide for one request under the caller's own policy. */
export function checkEgress(caller: Caller, method: string, url: string): EgressCheck {
  const request = egressRequestFromUrl(method, url);
  const decision: Decision = applyEnforcement(caller.policy.policy, decide(caller.policy, request));
  const secrets = decision.allowed ? secretsFor(compileSecretRules(caller.policy.policy), request).map((allowance) => allowance.name) : [];
  return {
    allowed: decision.allowed,
    reason: decision.reason,
    rule: decision.rule,
    host: decision.host,
    ...(decision.path === undefined ? {} : { path: decision.path }),
    ...(decision.wouldBlock === true ? { wouldBlock: true } : {}),
    secrets,
  };
}

export function describeEgressCheck(method: string, url: string, check: EgressCheck): string {
  const verdict = check.wouldBlock === true ? 'allowed (audit mode; the rules would block it)' : check.allowed ? 'allowed' : 'blocked';
  return [
    `${method.toUpperCase()} ${url}: ${verdict}`,
    `reason: ${check.reason}`,
    `rule: ${check.rule}`,
    ...(check.allowed ? [`secrets substituted: ${list(check.secrets)}`] : []),
  ].join('\n');
}

export interface PolicyDescription {
  source: 'jwt' | 'default';
  name: string;
  enforcement: 'enforce' | 'audit';
  allowedDomains: string[];
  blockedDomains: string[];
  pathRules: Record<string, Array<{ method: string; path: string; allow: boolean }>>;
  allowedPackages: string[];
  allowedBinaries: string[];
  secrets: Array<{ name: string; hosts: string[]; in: string[] }>;
  hash: string;
  /** Why the default policy is in force, when the caller's own could not be had. */
  reason?: string;
}

/** The caller's effective policy, secret names and hosts only. */
export function policyDescription(caller: Caller): PolicyDescription {
  const policy = caller.policy.policy;
  return {
    source: caller.policyInfo.source,
    name: caller.policyInfo.name,
    enforcement: enforcementOf(policy),
    allowedDomains: [...policy.allowedDomains],
    blockedDomains: [...policy.blockedDomains],
    pathRules: Object.fromEntries(Object.entries(policy.apiPathRules).map(([host, rules]) => [host, rules.map((r) => ({ method: r.method, path: r.path, allow: r.allow }))])),
    allowedPackages: [...policy.allowedPackages],
    allowedBinaries: [...policy.allowedBinaries],
    secrets: secretSummary(policy).map(({ name, hosts, in: places }) => ({ name, hosts, in: places })),
    hash: caller.policyInfo.hash,
    ...(caller.policyInfo.reason === undefined ? {} : { reason: caller.policyInfo.reason }),
  };
}

export function describePolicy(description: PolicyDescription): string {
  const lines = [
    `${description.name} (${description.source === 'jwt' ? 'from your token' : 'no token or no policy for it: the default'}), ` +
      (description.enforcement === 'audit' ? 'audit mode: what the rules would block is let through and logged' : 'enforced'),
    `allowed domains: ${list(description.allowedDomains)}`,
    `blocked domains: ${list(description.blockedDomains)}`,
  ];
  const hosts = Object.entries(description.pathRules);
  if (hosts.length === 0) lines.push('path rules: none (every method and path on an allowed domain)');
  for (const [host, rules] of hosts) {
    lines.push(`path rules for ${host} (first match wins; no match: blocked):`);
    for (const rule of rules) lines.push(`  ${rule.allow ? 'allow' : 'deny'} ${rule.method} ${rule.path}`);
  }
  lines.push(`packages: ${list(description.allowedPackages)}`, `binaries: ${list(description.allowedBinaries)}`);
  if (description.secrets.length === 0) lines.push('secrets: none');
  for (const secret of description.secrets) lines.push(`secret ${secret.name}: sent only to ${list(secret.hosts)} (in ${secret.in.join(', ')})`);
  return lines.join('\n');
}
