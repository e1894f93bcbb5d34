/**
 * Reads what a package's registry metadata says about its closure: the
 * dependencies it names and the file URLs it lists. The whole body is
 * decoded and parsed here (a packument can be tens of MiB), so this is kept
 * free of any state: a caller may run it on another thread and hand the
 * facts to `PackageClosure.apply`.
 */
import { NPM_NAME, normalisePypiName } from './package-spec.ts';
import { parseRequirement } from './wheel.ts';

export type MetadataKind = 'npm-metadata' | 'pypi-simple' | 'pypi-json';

/** A metadata body of package `name`, as the closure classified its path. */
export interface RegistryMetadata {
  kind: MetadataKind;
  name: string;
  body: Uint8Array;
}

/** What one metadata body teaches: dependency names and file URLs (as written; resolved against the metadata's URL by the closure). */
export interface MetadataFacts {
  npm: string[];
  pypi: string[];
  fileUrls: string[];
}

/** The facts of a metadata body; none when it is unparseable or speaks for another package. */
export function readRegistryMetadata({ kind, name, body }: RegistryMetadata): MetadataFacts {
  const facts: MetadataFacts = { npm: [], pypi: [], fileUrls: [] };
  const text = new TextDecoder().decode(body);
  switch (kind) {
    case 'npm-metadata':
      readPackument(name, parseJson(text), facts);
      break;
    case 'pypi-json':
      readPypiJson(name, parseJson(text), facts);
      break;
    case 'pypi-simple': {
      const json = text.trimStart().startsWith('{') ? parseJson(text) : undefined;
      if (isRecord(json)) readSimpleJson(name, json, facts);
      else readSimpleHtml(name, text, facts);
      break;
    }
  }
  return facts;
}

function readPackument(name: string, json: unknown, facts: MetadataFacts): void {
  if (!isRecord(json) || json.name !== name || !isRecord(json.versions)) return;
  for (const version of Object.values(json.versions)) {
    if (!isRecord(version)) continue;
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
      const deps = version[field];
      if (!isRecord(deps)) continue;
      for (const [dep, range] of Object.entries(deps)) {
        const target = npmDependencyName(dep, range);
        if (target !== null) facts.npm.push(target);
      }
    }
    if (isRecord(version.dist) && typeof version.dist.tarball === 'string') facts.fileUrls.push(version.dist.tarball);
  }
}

function readPypiJson(name: string, json: unknown, facts: MetadataFacts): void {
  if (!isRecord(json)) return;
  const info = json.info;
  if (isRecord(info) && typeof info.name === 'string' && normalisePypiName(info.name) !== name) return;
  if (isRecord(info) && Array.isArray(info.requires_dist)) {
    for (const requirement of info.requires_dist) {
      const dep = typeof requirement === 'string' ? parseRequirement(requirement) : null;
      if (dep !== null) facts.pypi.push(dep.name);
    }
  }
  const urls: unknown[] = Array.isArray(json.urls) ? json.urls : [];
  const releases: unknown[] = isRecord(json.releases) ? Object.values(json.releases).flat() : [];
  for (const file of [...urls, ...releases]) if (isRecord(file) && typeof file.url === 'string') facts.fileUrls.push(file.url);
}

function readSimpleJson(name: string, json: Record<string, unknown>, facts: MetadataFacts): void {
  if (typeof json.name === 'string' && normalisePypiName(json.name) !== name) return;
  if (!Array.isArray(json.files)) return;
  for (const file of json.files) if (isRecord(file) && typeof file.url === 'string') facts.fileUrls.push(file.url);
}

/**
 * PEP 503 HTML: the page must be this project's (its `Links for <name>`
 * title and heading, when present, name it) and each file must be one of
 * its distributions by file name, so a page for one project never teaches
 * the closure about files of another.
 */
function readSimpleHtml(name: string, html: string, facts: MetadataFacts): void {
  for (const heading of html.matchAll(/<(title|h1)[^>]*>\s*Links for ([^<]*?)\s*<\/\1>/gi)) {
    if (normalisePypiName(decodeEntities(heading[2] ?? '')) !== name) return;
  }
  for (const match of html.matchAll(/<a\s[^>]*?href\s*=\s*["']([^"']+)["'][^>]*>([^<]*)<\/a>/gi)) {
    const href = match[1];
    if (href === undefined) continue;
    const url = decodeEntities(href);
    const text = decodeEntities(match[2] ?? '').trim();
    const fileName = text !== '' ? text : (url.split(/[?#]/, 1)[0] ?? '').split('/').pop() ?? '';
    if (distributionOf(fileName, name)) facts.fileUrls.push(url);
  }
}

/**
 * Whether a file name is a distribution of the project: PyPI names files
 * `<name>-<version>…` (wheels with `_` for `-`), so after PEP 503
 * normalisation it is the project's name, a dash, then a version digit.
 */
function distributionOf(fileName: string, project: string): boolean {
  const normalised = normalisePypiName(fileName);
  return normalised.startsWith(`${project}-`) && /^[0-9]/.test(normalised.slice(project.length + 1));
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
