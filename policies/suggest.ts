/**
 * A policy suggestion from observed traffic: the smallest change to the
 * current policy that allows what was seen (or only what was blocked), as a
 * linted policy, the diff, and for each suggested rule the requests it
 * covers. Generalisation stays within what traffic justifies: a segment
 * that is an id or a hash becomes `*` (one segment, never a subtree), and a
 * folder seen with SUBTREE_MIN_CHILDREN or more different children becomes
 * `folder/*`. Explicit refusals (blockedDomains, deny rules) are never
 * overridden: those requests are reported as left blocked.
 */
import { lintPolicy } from './lint.ts';
import { compilePolicy, decide } from './matcher.ts';
import type { PolicyApi } from './schema.ts';

export const SUBTREE_MIN_CHILDREN = 4;

export interface ObservedRequest {
  method: string;
  host: string;
  port: number;
  /** Path without the query. */
  path: string;
  /** Blocked, or let through only because the policy was in audit mode. */
  blocked: boolean;
}

export interface SuggestedRule {
  host: string;
  method: string;
  path: string;
  /** `METHOD path` of each distinct request the rule covers. */
  covers: string[];
}

export interface Suggestion {
  policy: PolicyApi;
  diff: { addedDomains: string[]; addedRules: SuggestedRule[] };
  /** Requests left blocked on purpose (blockedDomains or a deny rule), with the reason. */
  leftBlocked: Array<{ request: string; reason: string }>;
  lint: { ok: true; warnings: string[] } | { ok: false; problems: string[] };
}

const ID_SEGMENT = [
  /^\d+$/u, // 123
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu, // uuid
  /^[0-9a-f]{16,}$/iu, // hex hashes
  /^[a-z]{2,12}_[A-Za-z0-9]{1,}$/u, // prefixed ids: prod_1, cus_9aB
  /^(?=.*\d)[A-Za-z0-9_-]{20,}$/u, // long opaque tokens with digits
];

const isId = (segment: string): boolean => ID_SEGMENT.some((re) => re.test(segment));

/** A path with id-like segments as `*`. */
export function generalisePath(path: string): string {
  return path
    .split('/')
    .map((segment, i) => (i > 0 && segment !== '' && isId(segment) ? '*' : segment))
    .join('/');
}

/** Patterns for one method's paths: ids generalised, then wide folders collapsed to `folder/*`. */
function patternsFor(paths: readonly string[]): Map<string, string[]> {
  const byPattern = new Map<string, string[]>();
  for (const path of paths) {
    const pattern = generalisePath(path);
    byPattern.set(pattern, [...(byPattern.get(pattern) ?? []), path]);
  }
  const children = new Map<string, Set<string>>();
  for (const pattern of byPattern.keys()) {
    const cut = pattern.lastIndexOf('/');
    if (cut <= 0) continue;
    const parent = pattern.slice(0, cut);
    children.set(parent, (children.get(parent) ?? new Set()).add(pattern.slice(cut + 1)));
  }
  for (const [parent, kids] of children) {
    if (kids.size < SUBTREE_MIN_CHILDREN) continue;
    const subtree = `${parent}/*`;
    const covered: string[] = [];
    for (const [pattern, seen] of [...byPattern]) {
      if (pattern.startsWith(`${parent}/`) && !pattern.slice(parent.length + 1).includes('/')) {
        covered.push(...seen);
        byPattern.delete(pattern);
      }
    }
    byPattern.set(subtree, [...(byPattern.get(subtree) ?? []), ...covered]);
  }
  return byPattern;
}

const hostEntry = (host: string, port: number): string => (port === 80 || port === 443 || port === 0 ? host : `${host}:${port}`);

export function suggestPolicy(current: PolicyApi, observed: readonly ObservedRequest[], options: { blockedOnly?: boolean } = {}): Suggestion {
  const currentLinted = lintPolicy({ ...current, enforcement: undefined });
  const compiled = currentLinted.ok ? compilePolicy(currentLinted.policy) : null;
  const suggested: PolicyApi = structuredClone(current);
  delete suggested.enforcement;
  const addedDomains: string[] = [];
  const addedRules: SuggestedRule[] = [];
  const leftBlocked: Suggestion['leftBlocked'] = [];
  const needed = new Map<string, Map<string, Set<string>>>(); // host entry → method → paths

  for (const request of observed) {
    if (options.blockedOnly === true && !request.blocked) continue;
    if (request.method === 'CONNECT' || request.host === '') continue;
    const decision = compiled === null ? null : decide(compiled, { method: request.method, host: request.host, port: request.port, scheme: 'https', path: request.path, headers: {} });
    if (decision?.allowed === true) continue;
    const label = `${request.method} ${request.host}${request.path}`;
    if (decision !== null && (decision.rule.startsWith('blockedDomains') || /^Method \S+ not allowed for /u.test(decision.reason))) {
      if (!leftBlocked.some((b) => b.request === label)) leftBlocked.push({ request: label, reason: decision.reason });
      continue;
    }
    const entry = hostEntry(request.host, request.port);
    const methods = needed.get(entry) ?? new Map<string, Set<string>>();
    methods.set(request.method.toUpperCase(), (methods.get(request.method.toUpperCase()) ?? new Set()).add(request.path));
    needed.set(entry, methods);
  }

  for (const [entry, methods] of [...needed].sort(([a], [b]) => a.localeCompare(b))) {
    const host = entry.replace(/:\d+$/u, '');
    const hostAllowed = compiled !== null && decide(compiled, { method: 'CONNECT', host, port: Number(/:(\d+)$/u.exec(entry)?.[1] ?? 443), scheme: 'https', path: '', headers: {} }).allowed;
    if (!hostAllowed) {
      suggested.allowedDomains = [...suggested.allowedDomains, entry];
      addedDomains.push(entry);
    }
    const rules = [...(suggested.apiPathRules?.[host] ?? [])];
    for (const [method, paths] of [...methods].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [path, seen] of [...patternsFor([...paths])].sort(([a], [b]) => a.localeCompare(b))) {
        rules.push({ path, allow: true, method });
        addedRules.push({ host, method, path, covers: [...new Set(seen)].sort().map((p) => `${method} ${p}`) });
      }
    }
    suggested.apiPathRules = { ...(suggested.apiPathRules ?? {}), [host]: rules };
  }

  const linted = lintPolicy(suggested);
  return {
    policy: suggested,
    diff: { addedDomains, addedRules },
    leftBlocked,
    lint: linted.ok ? { ok: true, warnings: linted.warnings } : { ok: false, problems: linted.problems },
  };
}
