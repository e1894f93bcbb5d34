import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const FALLBACK_MIRROR = 'http://deb.debian.org/debian';

interface AptEntry {
  types: string[];
  uris: string[];
  suites: string[];
}

/**
 * The Debian mirror this machine's apt already uses for `suite`, so the image
 * build goes where the operator's network allows (a local mirror, a proxy,
 * a snapshot) instead of assuming the public one.
 */
export async function aptMirror(suite: string, aptDir = '/etc/apt'): Promise<string> {
  for (const entry of await aptEntries(aptDir)) {
    if (!entry.types.includes('deb') || !entry.suites.includes(suite)) continue;
    const uri = entry.uris.find((u) => /^https?:\/\//.test(u));
    if (uri) return uri.replace(/\/+$/, '');
  }
  return FALLBACK_MIRROR;
}

async function aptEntries(aptDir: string): Promise<AptEntry[]> {
  const entries: AptEntry[] = [];
  const listDir = join(aptDir, 'sources.list.d');
  const names = await readdir(listDir).catch(() => [] as string[]);
  const files = [join(aptDir, 'sources.list'), ...names.sort().map((n) => join(listDir, n))];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) continue;
    if (file.endsWith('.sources')) entries.push(...parseDeb822(text));
    else if (file.endsWith('.list') || file.endsWith('sources.list')) entries.push(...parseOneLine(text));
  }
  return entries;
}

/** `deb [arch=amd64 signed-by=…] http://mirror/debian bookworm main` */
export function parseOneLine(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').replace(/\[[^\]]*\]/, ' ').trim();
    const [type, uri, suite] = line.split(/\s+/);
    if (type && uri && suite) entries.push({ types: [type], uris: [uri], suites: [suite] });
  }
  return entries;
}

/** The deb822 `.sources` format: stanzas of `Field: value`, blank-line separated. */
export function parseDeb822(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last) ?? ''} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon === -1) continue;
      last = line.slice(0, colon).trim().toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const words = (key: string) => (fields.get(key) ?? '').split(/\s+/).filter(Boolean);
    entries.push({ types: words('types'), uris: words('uris'), suites: words('suites') });
  }
  return entries;
}
