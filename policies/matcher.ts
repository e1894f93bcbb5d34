/**
 * The egress decision (DESIGN §5): compile a policy once, then answer each
 * request with allowed/blocked, a stable reason and the rule that decided.
 * Nothing here does I/O; the proxy calls `decide` for every request it sees.
 */
import { PolicyValidationError } from './errors.ts';
import { DEFAULT_PORTS, canonicalHost, hostMatches, parseDomainEntry, parseHostPattern } from './host.ts';
import type { DomainEntry, HostPattern } from './host.ts';
import { formatIssues } from './lint.ts';
import { MAX_RULED_PATH_LENGTH, READING_KINDS, compilePathGlob, lowerCaseReadings, normalisePath, pathWithoutQuery } from './path.ts';
import type { PathGlob } from './path.ts';
import { PolicySchema } from './schema.ts';
import type { Policy } from './schema.ts';
import type { Decision, EgressRequest } from './types.ts';

/** Headers some frameworks read instead of the request method. */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = ['x-http-method-override', 'x-http-method', 'x-method-override'];

const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

interface CompiledPathRule {
  readonly label: string;
  readonly method: string;
  readonly allow: boolean;
  readonly glob: PathGlob;
}

interface CompiledRuleSet {
  readonly key: string;
  readonly host: HostPattern;
  readonly rules: readonly CompiledPathRule[];
}

interface CompiledDomainEntry extends DomainEntry {
  readonly label: string;
}

interface CompiledBlockedEntry {
  readonly label: string;
  readonly host: HostPattern;
}

/** A policy with every pattern parsed and every glob compiled. Build it with `compilePolicy`. */
export interface CompiledPolicy {
  readonly policy: Readonly<Policy>;
  readonly blocked: readonly CompiledBlockedEntry[];
  readonly allowed: readonly CompiledDomainEntry[];
  readonly ruleSets: readonly CompiledRuleSet[];
  /** Hosts whose paths are compared with case: the rest are also read lower-cased. */
  readonly caseSensitivePaths: readonly HostPattern[];
  /** Hosts WebSocket upgrades may go to. */
  readonly webSocketHosts: readonly HostPattern[];
}

function unwrap<T>(result: { ok: true } & T | { ok: false; problem: string }, where: string, problems: string[]): T | null {
  if (result.ok) return result;
  problems.push(`${where}: ${result.problem}`);
  return null;
}

/**
 * Validates and compiles a policy. Throws PolicyValidationError (listing every
 * problem) for a policy that did not come through `lintPolicy`.
 */
export function compilePolicy(policy: Policy): CompiledPolicy {
  const parsed = PolicySchema.safeParse(policy);
  if (!parsed.success) throw new PolicyValidationError(formatIssues(parsed.error.issues));
  const problems: string[] = [];

  const blocked = policy.blockedDomains.flatMap((raw, index): CompiledBlockedEntry[] => {
    const label = `blockedDomains[${index}]`;
    const parsedHost = unwrap(parseHostPattern(raw), label, problems);
    return parsedHost === null ? [] : [{ label, host: parsedHost.pattern }];
  });
  const allowed = policy.allowedDomains.flatMap((raw, index): CompiledDomainEntry[] => {
    const label = `allowedDomains[${index}]`;
    const parsedEntry = unwrap(parseDomainEntry(raw), label, problems);
    return parsedEntry === null ? [] : [{ label, ...parsedEntry.entry }];
  });
  const ruleSets = Object.entries(policy.apiPathRules).flatMap(([key, rules]): CompiledRuleSet[] => {
    const keyLabel = `apiPathRules[${JSON.stringify(key)}]`;
    const parsedHost = unwrap(parseHostPattern(key), keyLabel, problems);
    const compiledRules = rules.flatMap((rule, index): CompiledPathRule[] => {
      const label = `${keyLabel}[${index}]`;
      const compiled = unwrap(compilePathGlob(rule.path), `${label}.path`, problems);
      if (compiled === null) return [];
      return [{ label, method: rule.method.toUpperCase(), allow: rule.allow, glob: compiled.glob }];
    });
    return parsedHost === null ? [] : [{ key: parsedHost.pattern.text, host: parsedHost.pattern, rules: compiledRules }];
  });
  const caseSensitivePaths = (policy.caseSensitivePaths ?? []).flatMap((raw, index): HostPattern[] => {
    const parsedHost = unwrap(parseHostPattern(raw), `caseSensitivePaths[${index}]`, problems);
    return parsedHost === null ? [] : [parsedHost.pattern];
  });
  const webSocketHosts = (policy.webSocketDomains ?? []).flatMap((raw, index): HostPattern[] => {
    const parsedHost = unwrap(parseHostPattern(raw), `webSocketDomains[${index}]`, problems);
    return parsedHost === null ? [] : [parsedHost.pattern];
  });
  if (problems.length > 0) throw new PolicyValidationError(problems);
  return Object.freeze({ policy: Object.freeze(structuredClone(policy)), blocked, allowed, ruleSets, caseSensitivePaths, webSocketHosts });
}

/**
 * Every method the request asks for: its own, any override header's (also
 * spelt with underscores, which CGI and Rack servers read as the dashed
 * name), `_method` in the query, and `_method` in a form body the proxy read.
 */
function requestedMethods(request: EgressRequest): string[] {
  const overrides: string[] = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || !METHOD_OVERRIDE_HEADERS.includes(name.toLowerCase().replaceAll('_', '-'))) continue;
    overrides.push(...(Array.isArray(value) ? value : [value]));
  }
  const query = request.path.indexOf('?');
  if (query !== -1) overrides.push(...new URLSearchParams(request.path.slice(query + 1)).getAll('_method'));
  overrides.push(...(request.formMethods ?? []));
  const methods = [request.method.toUpperCase()];
  for (const item of overrides) {
    for (const part of item.split(',')) {
      const method = part.trim().toUpperCase();
      if (method !== '') methods.push(method);
    }
  }
  return methods;
}

/** An upgrade needs both headers (RFC 9110 §7.8); an `Upgrade` alone is dropped as hop-by-hop and upgrades nothing. */
function asksToUpgrade(request: EgressRequest): boolean {
  const connection = request.headers.connection;
  const tokens = (Array.isArray(connection) ? connection : [connection ?? '']).flatMap((v) => v.split(',')).map((t) => t.trim().toLowerCase());
  return request.headers.upgrade !== undefined && tokens.includes('upgrade');
}

/** `CONNECT` with an empty path: may this host:port be reached at all (see EgressRequest). */
function isTunnelQuestion(request: EgressRequest): boolean {
  return request.method.toUpperCase() === 'CONNECT' && request.path === '';
}

const blockedBy = (reason: string, rule: string, host: string | null): Decision => ({ allowed: false, reason, rule, host });

/** Decides one request. First hit wins: blocked, not allowed, port, path rules (not for the tunnel question), allowed. */
export function decide(compiled: CompiledPolicy, request: EgressRequest): Decision {
  const host = canonicalHost(request.host);
  if (host === null) return blockedBy(`Host ${JSON.stringify(request.host)} is not a valid host name`, 'default', null);
  if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535) {
    return blockedBy(`Port ${String(request.port)} is not a valid port`, 'default', host);
  }

  const blockedEntry = compiled.blocked.find((entry) => hostMatches(entry.host, host));
  if (blockedEntry !== undefined) return blockedBy(`Domain ${host} is blocked by policy`, blockedEntry.label, host);

  const hostEntries = compiled.allowed.filter((entry) => hostMatches(entry.host, host));
  const [firstHostEntry] = hostEntries;
  if (firstHostEntry === undefined) return blockedBy(`Domain ${host} is not in allowed list`, 'allowedDomains', host);
  const portEntry = hostEntries.find((entry) =>
    entry.port === null ? DEFAULT_PORTS.includes(request.port) : entry.port === request.port,
  );
  if (portEntry === undefined) return blockedBy(`Port ${request.port} is not allowed for ${host}`, firstHostEntry.label, host);

  // The tunnel question has no request behind it yet: path rules judge each request inside the tunnel instead.
  if (isTunnelQuestion(request)) return { allowed: true, reason: `Domain ${host} is allowed`, rule: portEntry.label, host };

  // After an upgrade nothing is inspected, so a host must be opted in by name.
  if (asksToUpgrade(request) && !compiled.webSocketHosts.some((pattern) => hostMatches(pattern, host))) {
    return blockedBy(`WebSocket upgrades to ${host} are not allowed: the host is not in webSocketDomains`, 'webSocketDomains', host);
  }

  const ruleSets = compiled.ruleSets.filter((set) => hostMatches(set.host, host));
  const [firstRuleSet] = ruleSets;
  if (firstRuleSet === undefined) return { allowed: true, reason: `Domain ${host} is allowed`, rule: portEntry.label, host };
  const caseSensitive = compiled.caseSensitivePaths.some((pattern) => hostMatches(pattern, host));
  return decidePath(ruleSets, firstRuleSet, request, host, caseSensitive);
}

/** Deny rules for GET also stop HEAD: a server answers HEAD by running its GET handler. */
const denyMethodsFor = (method: string): readonly string[] => (method === 'HEAD' ? ['HEAD', 'GET'] : [method]);

function decidePath(
  ruleSets: readonly CompiledRuleSet[],
  firstRuleSet: CompiledRuleSet,
  request: EgressRequest,
  host: string,
  caseSensitive: boolean,
): Decision {
  const setLabel = `apiPathRules[${JSON.stringify(firstRuleSet.key)}]`;
  const pathLength = pathWithoutQuery(request.path).length;
  if (pathLength > MAX_RULED_PATH_LENGTH) {
    return blockedBy(
      `Ambiguous path blocked for ${firstRuleSet.key}: ${pathLength} characters, longer than the ${MAX_RULED_PATH_LENGTH} judged on a host with path rules`,
      setLabel,
      host,
    );
  }
  const normalised = normalisePath(request.path);
  if (!normalised.ok) {
    return blockedBy(`Ambiguous path ${normalised.path} blocked for ${firstRuleSet.key}`, setLabel, host);
  }
  // A deny hits if any reading matches; an allow must match every reading (see path.ts).
  const { readings } = normalised;
  const lowerCased = caseSensitive ? null : lowerCaseReadings(readings);
  const rules = ruleSets.flatMap((set) => set.rules.map((rule) => ({ set, rule })));
  let lastAllow: string | null = null;

  for (const method of requestedMethods(request)) {
    if (!METHOD_TOKEN.test(method)) {
      return blockedBy(`Method ${JSON.stringify(method)} is not a valid HTTP method`, setLabel, host);
    }
    const denyMethods = denyMethodsFor(method);
    const deny = rules.find(
      ({ rule }) =>
        !rule.allow && (rule.method === '*' || denyMethods.includes(rule.method)) && rule.glob.matchesAnyReading(readings, lowerCased),
    );
    if (deny !== undefined) {
      return { ...blockedBy(`Method ${method} not allowed for ${deny.set.key}`, deny.rule.label, host), path: normalised.path };
    }
    const forMethod = rules.filter(({ rule }) => rule.allow && (rule.method === '*' || rule.method === method));
    const matched = forMethod.map((entry) => ({ entry, readings: entry.rule.glob.matchEachReading(readings) }));
    const allows = READING_KINDS.map((kind) => matched.find((hit) => hit.readings[kind])?.entry);
    const [allow] = allows;
    if (allow === undefined || allows.some((hit) => hit === undefined)) {
      return {
        ...blockedBy(`No rule allows ${method} ${normalised.path} for ${firstRuleSet.key}`, setLabel, host),
        path: normalised.path,
      };
    }
    lastAllow ??= allow.rule.label;
  }
  return {
    allowed: true,
    reason: `Path ${normalised.path} is allowed for ${firstRuleSet.key}`,
    rule: lastAllow ?? setLabel,
    host,
    path: normalised.path,
  };
}

/** Binds a policy once so the proxy holds a plain `(request) => Decision`. */
export function createDecider(policy: Policy | CompiledPolicy): (request: EgressRequest) => Decision {
  const compiled = 'ruleSets' in policy ? policy : compilePolicy(policy);
  return (request) => decide(compiled, request);
}
