/**
 * `allowedPackages` at the request: which package specs a caller may ask to
 * install (DESIGN §5), checked before any sandbox exists, and the rules
 * (names and npm scopes) every session's closure starts from.
 */
import { canonicalHost } from './host.ts';

export type Ecosystem = 'npm' | 'pypi';

/** Host names of the public registries; operators may point them elsewhere (a mirror). */
export interface RegistryHosts {
  /** npm registry: packuments at `/<name>`, tarballs at `/<name>/-/<file>.tgz`. */
  npm: readonly string[];
  /** PyPI: `/simple/<name>/` and `/pypi/<name>/json` on the index, files on the file host. */
  pypi: readonly string[];
}

export const DEFAULT_REGISTRY_HOSTS: RegistryHosts = Object.freeze({
  npm: ['registry.npmjs.org'],
  pypi: ['pypi.org', 'files.pythonhosted.org'],
});

/** A package spec as the install step will pass it on, and the name it governs. */
export interface PackageSpec {
  ecosystem: Ecosystem;
  /** Exactly what the request asked for (`lodash@4`, `requests[socks]==2.*`). */
  spec: string;
  /** npm: the name as written; PyPI: normalised per PEP 503. */
  name: string;
}

export type PackageSpecResult = { ok: true; spec: PackageSpec } | { ok: false; problem: string };

export const NPM_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[A-Za-z0-9][A-Za-z0-9._~-]*$/;
// Registry ranges and dist-tags only: aliases (`npm:`), git, file and URL
// specs would fetch something other than the named package.
const NPM_RANGE = /^[A-Za-z0-9.^~<>=|*+ -]*$/;
export const PYPI_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const PYPI_SPEC =
  /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?\s*((?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+(?:\s*,\s*(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?$/;
export const MAX_NAME = 214;

/** PEP 503: case-insensitive, runs of `-`, `_` and `.` are one `-`. */
export function normalisePypiName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** Parses one entry of the request's `packages` for the given ecosystem. */
export function parsePackageSpec(raw: string, ecosystem: Ecosystem): PackageSpecResult {
  const spec = raw.trim();
  if (spec === '') return { ok: false, problem: 'empty package spec' };
  if (ecosystem === 'npm') {
    const at = spec.indexOf('@', 1);
    const name = at === -1 ? spec : spec.slice(0, at);
    const range = at === -1 ? '' : spec.slice(at + 1);
    if (name.length > MAX_NAME || !NPM_NAME.test(name)) return { ok: false, problem: `${JSON.stringify(spec)} is not an npm package name[@range]` };
    if (!NPM_RANGE.test(range)) return { ok: false, problem: `${JSON.stringify(spec)}: only registry versions, ranges and tags can be installed` };
    return { ok: true, spec: { ecosystem, spec, name } };
  }
  const match = PYPI_SPEC.exec(spec);
  const name = match?.[1];
  if (name === undefined || name.length > MAX_NAME) {
    return { ok: false, problem: `${JSON.stringify(spec)} is not a PyPI requirement name[extras][specifier]` };
  }
  return { ok: true, spec: { ecosystem, spec, name: normalisePypiName(name) } };
}

/** `allowedPackages` compiled: which names and npm scopes are roots of every session's closure. */
export interface PackageRules {
  readonly hosts: RegistryHosts;
  readonly npmNames: ReadonlySet<string>;
  readonly npmScopes: ReadonlySet<string>;
  readonly pypiNames: ReadonlySet<string>;
}

/** One `allowedPackages` entry, read: which ecosystems it speaks for, and a name or an npm scope. */
export type AllowedPackageEntry =
  | { ok: true; ecosystems: readonly Ecosystem[]; kind: 'name' | 'scope'; name: string; prefixed: boolean }
  | { ok: false; problem: string };

const ECOSYSTEM_PREFIX = /^(npm|pypi):/;

/**
 * `npm:lodash` and `pypi:requests` name a package of one ecosystem; a bare
 * `lodash` names it in both (a name is a name: the registries are separate
 * worlds, so a bare name may cover two different projects, which lint warns
 * about); `@okta` (or `npm:@okta`) is a whole npm scope.
 */
export function parseAllowedPackage(raw: string): AllowedPackageEntry {
  const prefix = ECOSYSTEM_PREFIX.exec(raw)?.[1] as Ecosystem | undefined;
  const rest = prefix === undefined ? raw : raw.slice(prefix.length + 1);
  if (/^@[^/]+$/.test(rest)) {
    if (prefix === 'pypi') return { ok: false, problem: `${JSON.stringify(raw)}: scopes exist only on npm` };
    if (!NPM_NAME.test(`${rest}/x`)) return { ok: false, problem: `${JSON.stringify(raw)} is not an npm scope` };
    return { ok: true, ecosystems: ['npm'], kind: 'scope', name: rest.toLowerCase(), prefixed: prefix !== undefined };
  }
  const npm = rest.length <= MAX_NAME && NPM_NAME.test(rest);
  const pypi = rest.length <= MAX_NAME && PYPI_NAME.test(rest);
  if (prefix === 'npm') return npm ? { ok: true, ecosystems: ['npm'], kind: 'name', name: rest, prefixed: true } : { ok: false, problem: `${JSON.stringify(raw)} is not an npm package name` };
  if (prefix === 'pypi') {
    return pypi ? { ok: true, ecosystems: ['pypi'], kind: 'name', name: normalisePypiName(rest), prefixed: true } : { ok: false, problem: `${JSON.stringify(raw)} is not a PyPI project name` };
  }
  const ecosystems: Ecosystem[] = [...(npm ? (['npm'] as const) : []), ...(pypi ? (['pypi'] as const) : [])];
  if (ecosystems.length === 0) return { ok: false, problem: `${JSON.stringify(raw)} is not a package name or @scope` };
  return { ok: true, ecosystems, kind: 'name', name: rest, prefixed: false };
}

/**
 * Compiles `allowedPackages` (see parseAllowedPackage); entries that do not
 * parse cover nothing. Registry host names are canonicalised once here.
 */
export function packageRules(allowedPackages: readonly string[], hosts: RegistryHosts = DEFAULT_REGISTRY_HOSTS): PackageRules {
  const npmNames = new Set<string>();
  const npmScopes = new Set<string>();
  const pypiNames = new Set<string>();
  for (const raw of allowedPackages) {
    const entry = parseAllowedPackage(raw);
    if (!entry.ok) continue;
    if (entry.kind === 'scope') {
      npmScopes.add(entry.name);
      continue;
    }
    if (entry.ecosystems.includes('npm')) npmNames.add(entry.name);
    if (entry.ecosystems.includes('pypi')) pypiNames.add(normalisePypiName(entry.name));
  }
  const canonical = (list: readonly string[]) => list.map((h) => canonicalHost(h)).filter((h): h is string => h !== null);
  return Object.freeze({ hosts: Object.freeze({ npm: canonical(hosts.npm), pypi: canonical(hosts.pypi) }), npmNames, npmScopes, pypiNames });
}

/** Whether `allowedPackages` itself covers a package (dependencies aside). */
export function packageAllowed(rules: PackageRules, ecosystem: Ecosystem, name: string): boolean {
  if (ecosystem === 'pypi') return rules.pypiNames.has(normalisePypiName(name));
  if (rules.npmNames.has(name)) return true;
  const slash = name.indexOf('/');
  return name.startsWith('@') && slash > 0 && rules.npmScopes.has(name.slice(0, slash).toLowerCase());
}

export interface RequestedPackageProblem {
  /** `packages[2]`. */
  field: string;
  message: string;
  /** The package named in the message (absent when the spec did not parse). */
  package?: string;
}

export type RequestedPackagesResult =
  | { ok: true; specs: PackageSpec[] }
  | { ok: false; kind: 'invalid' | 'not-allowed'; problems: RequestedPackageProblem[] };

/**
 * Checks a request's `packages` before anything runs: each must parse for the
 * runtime's ecosystem and be covered by `allowedPackages` itself (a
 * dependency is installable only as part of what pulls it in).
 */
export function checkRequestedPackages(requested: readonly string[], ecosystem: Ecosystem, rules: PackageRules): RequestedPackagesResult {
  const specs: PackageSpec[] = [];
  const invalid: RequestedPackageProblem[] = [];
  const refused: RequestedPackageProblem[] = [];
  requested.forEach((raw, index) => {
    const field = `packages[${index}]`;
    const parsed = parsePackageSpec(raw, ecosystem);
    if (!parsed.ok) invalid.push({ field, message: parsed.problem });
    else if (!packageAllowed(rules, ecosystem, parsed.spec.name)) {
      refused.push({ field, package: parsed.spec.name, message: `package ${parsed.spec.name} is not in allowedPackages` });
    } else specs.push(parsed.spec);
  });
  if (invalid.length > 0) return { ok: false, kind: 'invalid', problems: invalid };
  if (refused.length > 0) return { ok: false, kind: 'not-allowed', problems: refused };
  return { ok: true, specs };
}
