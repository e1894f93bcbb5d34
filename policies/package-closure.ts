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
import { readRegistryMetadata, type MetadataFacts, type RegistryMetadata } from './registry-metadata.ts';
import type { Decision, EgressRequest, RegistryResponse } from './types.ts';
import { MAX_WHEEL_METADATA_BYTES, WHEEL_TAIL_BYTES, readWheelMetadata, requiresDist } from './wheel.ts';

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

/** Registries are reached over HTTPS only, so only HTTPS file URLs are remembered. */
function keyOfUrl(raw: string, base: string): { key: string; host: string } | null {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:') return null;
  const host = canonicalHost(url.hostname);
  if (host === null) return null;
  return { key: urlKey('https', host, url.port === '' ? 443 : Number(url.port), url.pathname), host };
}

/** A metadata response `learn` is to read, and the URL it came from (file URLs in it are relative to that). */
export interface PendingMetadata {
  base: string;
  metadata: RegistryMetadata;
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
    const method = request.method.toUpperCase();
    // The tunnel question (host and port only): every request inside is decided below.
    if (method === 'CONNECT') {
      return request.port === 443 ? { allowed: true, reason: `Package registry ${host} is reached over HTTPS`, rule: 'allowedPackages', host } : blocked(`Port ${request.port} is not a registry port`, host);
    }
    if (request.scheme !== 'https') return blocked(`Package registry ${host} is reached over HTTPS only`, host);
    if (!DEFAULT_PORTS.includes(request.port)) return blocked(`Port ${request.port} is not a registry port`, host);
    if (method !== 'GET' && method !== 'HEAD') return blocked(`Method ${method} is not allowed on package registry ${host}`, host);
    // A fragment is never sent by a real client; an upstream that reads it would see a path other than the one classified.
    if (request.path.includes('#')) return blocked(`A registry request must not carry a fragment ("#")`, host);
    const path = withoutQuery(request.path);
    const target = classify(ecosystem, path);
    // What goes upstream is the path classified here, nothing the classification skipped.
    const allowed = (reason: string, extra: Partial<Decision> = {}): Decision => ({ allowed: true, reason, rule: 'allowedPackages', host, path, ...extra });
    if (target.kind === 'file') {
      const key = urlKey(request.scheme, host, request.port, path);
      const owner = this.#ownerOf(key);
      if (owner?.ecosystem === ecosystem) {
        if (owner.ecosystem !== 'pypi') return allowed('File listed in metadata of an allowed package');
        // A wheel's dependencies are in the wheel itself (pip may never ask for PEP 658 metadata): both are read.
        if (key.endsWith('.metadata')) return allowed('File listed in metadata of an allowed package', { learn: true });
        if (key.endsWith('.whl')) return allowed('File listed in metadata of an allowed package', { learn: true, learnTail: WHEEL_TAIL_BYTES });
        return allowed('File listed in metadata of an allowed package');
      }
      return blocked(`${path} on ${host} is not a file of an allowed package`, host);
    }
    if (!this.has(ecosystem, target.name)) return blocked(`Package ${target.name} is not in allowedPackages`, host);
    return allowed(`Package ${target.name} is allowed`, { learn: true });
  }

  #ownerOf(key: string): { ecosystem: Ecosystem; name: string } | undefined {
    return this.#files.get(key) ?? (key.endsWith('.metadata') ? this.#files.get(key.slice(0, -'.metadata'.length)) : undefined);
  }

  /**
   * Learns dependencies and file URLs from a metadata response this closure
   * allowed. Anything else (another path, a failed response, a package outside
   * the closure, unparseable bodies) teaches nothing.
   */
  learn(request: EgressRequest, response: RegistryResponse): void {
    const pending = this.metadataIn(request, response);
    if (pending !== null) this.apply(pending, readRegistryMetadata(pending.metadata));
  }

  /**
   * `learn` in two steps, for a caller that reads large metadata elsewhere
   * (off its event loop): what of this response is to be read, if anything.
   * Wheels and PEP 658 files are read here at once (only their small
   * METADATA entry is inflated), so they yield null too.
   */
  metadataIn(request: EgressRequest, response: RegistryResponse): PendingMetadata | null {
    if (response.statusCode !== 200) return null;
    const host = canonicalHost(request.host);
    const ecosystem = host === null ? null : this.registryOf(host);
    if (host === null || ecosystem === null) return null;
    const path = withoutQuery(request.path);
    const base = urlKey(request.scheme, host, request.port, path);
    const target = classify(ecosystem, path);
    if (target.kind === 'file') {
      const owner = this.#ownerOf(base);
      if (owner?.ecosystem !== 'pypi' || ecosystem !== 'pypi') return null;
      if (base.endsWith('.metadata')) this.#learnRequirements(requiresDist(new TextDecoder().decode(response.body)));
      else if (base.endsWith('.whl')) this.#learnWheel(owner.name, response);
      return null;
    }
    if (!this.has(ecosystem, target.name)) return null;
    return { base, metadata: { kind: target.kind, name: target.name, body: response.body } };
  }

  /** Takes in what was read from metadata `metadataIn` handed out. */
  apply(pending: PendingMetadata, facts: MetadataFacts): void {
    const { kind, name } = pending.metadata;
    const ecosystem: Ecosystem = kind === 'npm-metadata' ? 'npm' : 'pypi';
    for (const dep of facts.npm) this.#npm.add(dep);
    for (const dep of facts.pypi) this.#pypi.add(normalisePypiName(dep));
    for (const url of facts.fileUrls) this.#addFile(url, pending.base, ecosystem, name);
  }

  /** Remembers a file URL, provided it is an HTTPS URL on a host of the same registry as the metadata naming it. */
  #addFile(raw: string, base: string, ecosystem: Ecosystem, name: string): void {
    const file = keyOfUrl(raw, base);
    if (file === null || this.registryOf(file.host) !== ecosystem) return;
    this.#files.set(file.key, { ecosystem, name });
  }

  /**
   * A wheel of a package in the closure: its own METADATA, provided the
   * wheel is readable without doubt and its `.dist-info` names that package
   * (a file listed for one package does not speak for another).
   */
  #learnWheel(owner: string, response: RegistryResponse): void {
    const { body } = response;
    const read = readWheelMetadata(Buffer.from(body.buffer, body.byteOffset, body.byteLength), MAX_WHEEL_METADATA_BYTES, response.bodyOffset ?? 0);
    if (read.ok && read.value.name === owner) this.#learnRequirements(requiresDist(read.value.metadata));
  }

  #learnRequirements(requirements: readonly { name: string }[]): void {
    for (const requirement of requirements) this.#pypi.add(requirement.name);
  }
}
