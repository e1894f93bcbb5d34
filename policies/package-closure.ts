/**
 * One session's view of the registries (DESIGN §5). A registry request is
 * allowed only when it is metadata of a package in the session's closure
 * (the allowed packages plus every dependency named in metadata fetched for
 * a package already in it) or a file whose exact URL appeared in such
 * metadata. File paths do not name their package reliably (PyPI's
 * `/packages/ab/cd/…`), so they are never judged by their shape, only by
 * having been seen.
 *
 * Nothing here does I/O: the proxy hands metadata responses, and the wheels
 * of packages in the closure (their own METADATA names their dependencies),
 * to `learn`.
 */
import { DEFAULT_PORTS, canonicalHost } from './host.ts';
import { MAX_NAME, NPM_NAME, PYPI_NAME, normalisePypiName, packageAllowed, type Ecosystem, type PackageRules } from './package-spec.ts';
import type { Decision, EgressRequest, RegistryResponse } from './types.ts';
import { parseRequirement, readWheelMetadata, requiresDist } from './wheel.ts';

type RegistryPath =
  | { kind: 'npm-metadata'; name: string }
  | { kind: 'pypi-simple'; name: string }
  | { kind: 'pypi-json'; name: string }
  | { kind: 'file' };

/** Decodes what npm clients escape in a package name (`@scope%2fname`); any other escape is not a name. */
function npmNameFromSegment(path: string): string | null {
  const decoded = path.replace(/%2f/gi, '/').replace(/%40/g, '@');
  if (decoded.includes('%')) return null;
  return NPM_NAME.test(decoded) && decoded.length <= MAX_NAME ? decoded : null;
}

function classify(ecosystem: Ecosystem, path: string): RegistryPath {
  if (ecosystem === 'npm') {
    const name = npmNameFromSegment(path.slice(1));
    return path.startsWith('/') && name !== null ? { kind: 'npm-metadata', name } : { kind: 'file' };
  }
  const simple = /^\/simple\/([^/]+)\/?$/.exec(path);
  if (simple?.[1] !== undefined && PYPI_NAME.test(simple[1])) return { kind: 'pypi-simple', name: normalisePypiName(simple[1]) };
  const json = /^\/pypi\/([^/]+)(?:\/[A-Za-z0-9.!+_-]+)?\/json\/?$/.exec(path);
  if (json?.[1] !== undefined && PYPI_NAME.test(json[1])) return { kind: 'pypi-json', name: normalisePypiName(json[1]) };
  return { kind: 'file' };
}

function withoutQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q === -1 ? path : path.slice(0, q);
}

/** `https://host/path` (default port omitted): how file URLs are remembered and compared. */
function urlKey(scheme: string, host: string, port: number, path: string): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  return `${scheme}://${host}${port === defaultPort ? '' : `:${port}`}${path}`;
}

function keyOfUrl(raw: string, base: string): string | null {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  const host = canonicalHost(url.hostname);
  if (host === null) return null;
  const scheme = url.protocol.slice(0, -1);
  return urlKey(scheme, host, url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port), url.pathname);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The package name a dependency entry fetches from the registry, if any (`npm:` aliases fetch their target). */
function npmDependencyName(name: string, range: unknown): string | null {
  if (typeof range === 'string' && range.startsWith('npm:')) {
    const target = range.slice(4);
    const at = target.indexOf('@', 1);
    const aliased = at === -1 ? target : target.slice(0, at);
    return NPM_NAME.test(aliased) ? aliased : null;
  }
  // git, file, URL and `user/repo` specs are not fetched from the registry.
  if (typeof range !== 'string' || range.includes(':') || range.includes('/')) return null;
  return NPM_NAME.test(name) ? name : null;
}

const blocked = (reason: string, host: string): Decision => ({ allowed: false, reason, rule: 'allowedPackages', host });

/**
 * One session's view of the registries: starts from `allowedPackages` and
 * grows only from metadata it was handed for packages already inside it.
 */
export class PackageClosure {
  readonly #rules: PackageRules;
  readonly #npm = new Set<string>();
  readonly #pypi = new Set<string>();
  /** File URL key → the package whose metadata listed it (PEP 658 `.metadata` files belong to it too). */
  readonly #files = new Map<string, { ecosystem: Ecosystem; name: string }>();

  constructor(rules: PackageRules) {
    this.#rules = rules;
  }

  /** Which registry a canonical host belongs to, if any. */
  registryOf(host: string): Ecosystem | null {
    if (this.#rules.hosts.npm.includes(host)) return 'npm';
    if (this.#rules.hosts.pypi.includes(host)) return 'pypi';
    return null;
  }

  /** Whether a package is inside this session's closure. */
  has(ecosystem: Ecosystem, name: string): boolean {
    if (packageAllowed(this.#rules, ecosystem, name)) return true;
    return ecosystem === 'npm' ? this.#npm.has(name) : this.#pypi.has(normalisePypiName(name));
  }

  /** Names learned as dependencies so far (for diagnostics and tests). */
  learned(): { npm: string[]; pypi: string[]; files: number } {
    return { npm: [...this.#npm].sort(), pypi: [...this.#pypi].sort(), files: this.#files.size };
  }

  /**
   * Decides a request to a registry host; null when the host is not a
   * registry (the ordinary policy decides). Allowed metadata comes back with
   * `learn: true`: its body must reach `learn` before the client sees it.
   */
  decide(request: EgressRequest): Decision | null {
    const host = canonicalHost(request.host);
    if (host === null) return null;
    const ecosystem = this.registryOf(host);
    if (ecosystem === null) return null;
    if (!DEFAULT_PORTS.includes(request.port)) return blocked(`Port ${request.port} is not a registry port`, host);
    const method = request.method.toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') return blocked(`Method ${method} is not allowed on package registry ${host}`, host);
    const path = withoutQuery(request.path);
    const target = classify(ecosystem, path);
    if (target.kind === 'file') {
      const key = urlKey(request.scheme, host, request.port, path);
      const owner = this.#files.get(key) ?? (key.endsWith('.metadata') ? this.#files.get(key.slice(0, -'.metadata'.length)) : undefined);
      if (owner !== undefined) {
        // A wheel's dependencies are in the wheel itself (pip may never ask for PEP 658 metadata): both are read.
        const learn = owner.ecosystem === 'pypi' && (key.endsWith('.whl') || key.endsWith('.metadata'));
        return { allowed: true, reason: `File listed in metadata of an allowed package`, rule: 'allowedPackages', host, ...(learn ? { learn } : {}) };
      }
      return blocked(`${path} on ${host} is not a file of an allowed package`, host);
    }
    if (!this.has(ecosystem, target.name)) return blocked(`Package ${target.name} is not in allowedPackages`, host);
    return { allowed: true, reason: `Package ${target.name} is allowed`, rule: 'allowedPackages', host, learn: true };
  }

  /**
   * Learns dependencies and file URLs from a metadata response this closure
   * allowed. Anything else (another path, a failed response, a package outside
   * the closure, unparseable bodies) teaches nothing.
   */
  learn(request: EgressRequest, response: RegistryResponse): void {
    if (response.statusCode !== 200) return;
    const host = canonicalHost(request.host);
    const ecosystem = host === null ? null : this.registryOf(host);
    if (host === null || ecosystem === null) return;
    const path = withoutQuery(request.path);
    const base = urlKey(request.scheme, host, request.port, path);
    const target = classify(ecosystem, path);
    if (target.kind === 'file') {
      const owner = this.#files.get(base) ?? (base.endsWith('.metadata') ? this.#files.get(base.slice(0, -'.metadata'.length)) : undefined);
      if (owner?.ecosystem !== 'pypi') return;
      if (base.endsWith('.metadata')) this.#learnCoreMetadata(textOf(response.body));
      else if (base.endsWith('.whl')) this.#learnWheel(owner.name, response.body);
      return;
    }
    if (!this.has(ecosystem, target.name)) return;
    const text = textOf(response.body);
    switch (target.kind) {
      case 'npm-metadata':
        this.#learnPackument(target.name, parseJson(text), base);
        return;
      case 'pypi-json':
        this.#learnPypiJson(target.name, parseJson(text), base);
        return;
      case 'pypi-simple': {
        const json = text.trimStart().startsWith('{') ? parseJson(text) : undefined;
        if (isRecord(json)) this.#learnSimpleJson(target.name, json, base);
        else this.#learnSimpleHtml(target.name, text, base);
        return;
      }
    }
  }

  #addFile(raw: unknown, base: string, ecosystem: Ecosystem, name: string): void {
    if (typeof raw !== 'string') return;
    const key = keyOfUrl(raw, base);
    if (key !== null) this.#files.set(key, { ecosystem, name });
  }

  #learnPackument(name: string, json: unknown, base: string): void {
    if (!isRecord(json) || json.name !== name || !isRecord(json.versions)) return;
    for (const version of Object.values(json.versions)) {
      if (!isRecord(version)) continue;
      for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
        const deps = version[field];
        if (!isRecord(deps)) continue;
        for (const [dep, range] of Object.entries(deps)) {
          const target = npmDependencyName(dep, range);
          if (target !== null) this.#npm.add(target);
        }
      }
      if (isRecord(version.dist)) this.#addFile(version.dist.tarball, base, 'npm', name);
    }
  }

  #learnPypiJson(name: string, json: unknown, base: string): void {
    if (!isRecord(json)) return;
    const info = json.info;
    if (isRecord(info) && typeof info.name === 'string' && normalisePypiName(info.name) !== name) return;
    if (isRecord(info) && Array.isArray(info.requires_dist)) this.#learnRequirements(info.requires_dist);
    const urls: unknown[] = Array.isArray(json.urls) ? json.urls : [];
    const releases: unknown[] = isRecord(json.releases) ? Object.values(json.releases).flat() : [];
    const files = [...urls, ...releases];
    for (const file of files) if (isRecord(file)) this.#addFile(file.url, base, 'pypi', name);
  }

  #learnSimpleJson(name: string, json: Record<string, unknown>, base: string): void {
    if (typeof json.name === 'string' && normalisePypiName(json.name) !== name) return;
    if (!Array.isArray(json.files)) return;
    for (const file of json.files) if (isRecord(file)) this.#addFile(file.url, base, 'pypi', name);
  }

  #learnSimpleHtml(name: string, html: string, base: string): void {
    for (const match of html.matchAll(/<a\s[^>]*?href\s*=\s*["']([^"']+)["']/gi)) {
      const href = match[1];
      if (href !== undefined) this.#addFile(decodeEntities(href), base, 'pypi', name);
    }
  }

  /** PEP 658 core metadata: RFC 822 headers, one `Requires-Dist` per dependency. */
  #learnCoreMetadata(text: string): void {
    for (const requirement of requiresDist(text)) this.#pypi.add(requirement.name);
  }

  /**
   * A wheel of a package in the closure: its own METADATA, provided the
   * wheel is readable without doubt and its `.dist-info` names that package
   * (a file listed for one package does not speak for another).
   */
  #learnWheel(owner: string, body: Uint8Array): void {
    const read = readWheelMetadata(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    if (read.ok && read.value.name === owner) this.#learnCoreMetadata(read.value.metadata);
  }

  #learnRequirements(requirements: readonly unknown[]): void {
    for (const requirement of requirements) {
      if (typeof requirement !== 'string') continue;
      const dep = parseRequirement(requirement);
      if (dep !== null) this.#pypi.add(dep.name);
    }
  }
}

function textOf(body: Uint8Array): string {
  return new TextDecoder().decode(body);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function decodeEntities(text: string): string {
  return text.replace(/&amp;/g, '&').replace(/&#x27;|&#39;/g, "'").replace(/&quot;/g, '"');
}
