/**
 * Secrets bound to hosts (DESIGN §11), the policy's half: which secret may be
 * substituted toward which host and in which places, the lint that keeps a
 * secret from ever widening egress, and the public view of a policy that
 * carries no value. Pure: no I/O.
 */
import { PolicyValidationError } from './errors.ts';
import { DEFAULT_PORTS, canonicalHost, hostMatches, parseDomainEntry, parseHostPattern } from './host.ts';
import type { DomainEntry, HostPattern } from './host.ts';
import type { Policy, SecretPlace, SecretRule } from './schema.ts';

/** A secret's hosts, parsed once: answers "may it go to this host:port?". */
export interface SecretHostMatcher {
  readonly entries: readonly DomainEntry[];
  /** `host` must already be canonical (`canonicalHost`). */
  matches(host: string, port: number): boolean;
}

/** Parses host patterns (allowedDomains syntax). Throws PolicyValidationError naming every bad one. */
export function compileSecretHosts(hosts: readonly string[], label = 'hosts'): SecretHostMatcher {
  const problems: string[] = [];
  const entries: DomainEntry[] = [];
  hosts.forEach((raw, index) => {
    const parsed = parseDomainEntry(raw);
    if (parsed.ok) entries.push(parsed.entry);
    else problems.push(`${label}[${index}]: ${parsed.problem}`);
  });
  if (problems.length > 0) throw new PolicyValidationError(problems);
  return Object.freeze({
    entries: Object.freeze(entries),
    matches: (host: string, port: number) => entries.some((entry) => entryMatches(entry, host, port)),
  });
}

function entryMatches(entry: DomainEntry, host: string, port: number): boolean {
  const portOk = entry.port === null ? DEFAULT_PORTS.includes(port) : entry.port === port;
  return portOk && hostMatches(entry.host, host);
}

/** One declared secret, compiled. */
export interface CompiledSecretRule {
  readonly name: string;
  readonly hosts: SecretHostMatcher;
  readonly places: ReadonlySet<SecretPlace>;
  /** Whether the policy source supplied the value (the value itself stays in the policy). */
  readonly hasPolicyValue: boolean;
}

/** Compiles every declared secret of a policy (compile once per policy, query per request). */
export function compileSecretRules(policy: Pick<Policy, 'secrets'>): readonly CompiledSecretRule[] {
  return Object.entries(policy.secrets ?? {}).map(([name, rule]) => ({
    name,
    hosts: compileSecretHosts(rule.hosts, `secrets.${name}.hosts`),
    places: new Set(rule.in),
    hasPolicyValue: rule.value !== undefined,
  }));
}

/** A secret that may be substituted toward a destination, and where. */
export interface SecretAllowance {
  readonly name: string;
  readonly places: readonly SecretPlace[];
}

/**
 * Which secrets may be substituted into a request toward `host:port`, and in
 * which places. `host` may be raw: it is canonicalised here (an unparseable
 * host gets nothing). Ask only after the policy allowed the request:
 * substitution never replaces the policy decision.
 */
export function secretsFor(
  rules: readonly CompiledSecretRule[],
  destination: { host: string; port: number },
): SecretAllowance[] {
  const host = canonicalHost(destination.host);
  if (host === null) return [];
  return rules
    .filter((rule) => rule.hosts.matches(host, destination.port))
    .map((rule) => ({ name: rule.name, places: [...rule.places] }));
}

const portsOf = (entry: DomainEntry): readonly number[] => (entry.port === null ? DEFAULT_PORTS : [entry.port]);

/** Whether every host `inner` matches is matched by `outer`. */
export function hostPatternCovers(outer: HostPattern, inner: HostPattern): boolean {
  switch (outer.kind) {
    case 'any':
      return true;
    case 'exact':
      return inner.kind === 'exact' && inner.text === outer.text;
    case 'subdomains':
      if (inner.kind === 'any') return false;
      if (inner.kind === 'exact') return hostMatches(outer, inner.text);
      return inner.suffix === outer.suffix || inner.suffix.endsWith(outer.suffix);
  }
}

/**
 * The lint that keeps a secret from widening egress: each of its hosts must
 * be allowed by the policy's own allowedDomains (on every port it names) and
 * not wholly blocked by blockedDomains. One `path: message` line per problem.
 */
export function secretCoverageProblems(policy: Pick<Policy, 'allowedDomains' | 'blockedDomains' | 'secrets'>): string[] {
  const allowed = policy.allowedDomains.flatMap((raw) => {
    const parsed = parseDomainEntry(raw);
    return parsed.ok ? [parsed.entry] : [];
  });
  const blocked = policy.blockedDomains.flatMap((raw) => {
    const parsed = parseHostPattern(raw);
    return parsed.ok ? [parsed.pattern] : [];
  });
  const problems: string[] = [];
  for (const [name, rule] of Object.entries(policy.secrets ?? {})) {
    rule.hosts.forEach((raw, index) => {
      const parsed = parseDomainEntry(raw);
      if (!parsed.ok) return; // the schema reports it
      const where = `secrets.${name}.hosts[${index}]`;
      const blocker = blocked.find((pattern) => hostPatternCovers(pattern, parsed.entry.host));
      if (blocker !== undefined) {
        problems.push(`${where}: "${raw}" is blocked by blockedDomains ("${blocker.text}"); a secret never widens egress`);
        return;
      }
      const uncovered = portsOf(parsed.entry).filter(
        (port) => !allowed.some((entry) => portsOf(entry).includes(port) && hostPatternCovers(entry.host, parsed.entry.host)),
      );
      if (uncovered.length > 0) {
        const ports = uncovered.length === portsOf(parsed.entry).length && parsed.entry.port === null ? '' : ` on port ${uncovered.join(', ')}`;
        problems.push(`${where}: "${raw}" is not covered by allowedDomains${ports}; a secret never widens egress`);
      }
    });
  }
  return problems;
}

/** Throws PolicyValidationError when a secret of the policy is bound outside its allowlist. */
export function assertSecretsCovered(policy: Pick<Policy, 'allowedDomains' | 'blockedDomains' | 'secrets'>): void {
  const problems = secretCoverageProblems(policy);
  if (problems.length > 0) throw new PolicyValidationError(problems);
}

type WithSecrets = { secrets?: Record<string, { value?: string | undefined }> | undefined };

/** Whether the policy itself holds a secret value. */
export function hasSecretValues(policy: WithSecrets): boolean {
  return Object.values(policy.secrets ?? {}).some((secret) => secret.value !== undefined);
}

/**
 * The policy as anything that displays, logs, hashes or caches it by content
 * must see it: every secret value removed (marked `valueFromPolicy: true`
 * instead), everything else unchanged. Works on both formats; the input is
 * not modified.
 */
export function redactSecretValues<P extends WithSecrets>(policy: P): P {
  if (policy.secrets === undefined) return policy;
  const secrets: Record<string, unknown> = {};
  for (const [name, secret] of Object.entries(policy.secrets)) {
    const { value, ...rest } = secret;
    secrets[name] = value === undefined ? { ...rest } : { ...rest, valueFromPolicy: true };
  }
  return { ...policy, secrets };
}

/** What a policy says about its secrets, without values: for policyInfo and explanations. */
export function secretSummary(policy: Pick<Policy, 'secrets'>): Array<{ name: string; hosts: string[]; in: SecretPlace[]; valueFromPolicy: boolean }> {
  return Object.entries(policy.secrets ?? {}).map(([name, rule]: [string, SecretRule]) => ({
    name,
    hosts: [...rule.hosts],
    in: [...rule.in],
    valueFromPolicy: rule.value !== undefined,
  }));
}
