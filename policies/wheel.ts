/**
 * What a wheel says it depends on: its `<name>-<version>.dist-info/METADATA`
 * (core metadata, RFC 822 headers) and the `Requires-Dist` lines in it.
 *
 * Which dependencies count: every name a `Requires-Dist` line gives, whatever
 * its environment marker, `extra == "…"` included. The proxy knows neither
 * the interpreter pip resolves for nor which extras were asked for (a program
 * may run pip itself), and every such name is a dependency the allowed
 * package declares, so the closure stays "dependencies of allowed packages".
 * The PyPI JSON API's `requires_dist` and PEP 658 metadata are read the same way.
 */
import { listZipEntries, readZipEntry } from './zip.ts';

/** Core metadata is a few KiB; anything near this is not a real wheel's. */
export const MAX_WHEEL_METADATA_BYTES = 1024 * 1024;

/**
 * How much of a wheel's end is kept to read its METADATA: the central
 * directory (tens of bytes per file) and the `.dist-info` entries, which
 * wheel builders write last (PEP 427 asks them to). A wheel whose METADATA
 * lies further from the end teaches nothing, so its dependencies stay
 * closed: the safe way to be wrong.
 */
export const WHEEL_TAIL_BYTES = 2 * 1024 * 1024;

export interface WheelMetadata {
  /** `requests-2.31.0.dist-info`. */
  distInfo: string;
  /** The distribution name the directory gives, normalised per PEP 503. */
  name: string;
  /** The METADATA file, decoded as UTF-8. */
  metadata: string;
}

export type WheelMetadataResult = { ok: true; value: WheelMetadata } | { ok: false; problem: string };

export interface Requirement {
  /** Normalised per PEP 503. */
  name: string;
  /** Extras the requirement asks of the dependency (`foo[bar]`), normalised. */
  extras: string[];
  /** The environment marker after `;`, if any, unevaluated. */
  marker: string | null;
}

const DIST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const REQUIREMENT = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?/;

function normalise(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** A name pip would refuse to extract, or that could mean another file: the archive is not read at all. */
function unsafeName(name: string): boolean {
  return name === '' || name.startsWith('/') || /^[A-Za-z]:/.test(name) || /[\\\0]/.test(name) || name.split('/').some((s) => s === '..');
}

/**
 * Finds and reads the one METADATA file of a wheel. Like pip, exactly one
 * top-level `*.dist-info` directory is accepted; a second METADATA entry in
 * it (duplicate names, or names differing only in case) makes the wheel
 * ambiguous, and an unsafe entry name anywhere rejects the archive.
 * `wheel` may be the archive's tail from offset `base` (see WHEEL_TAIL_BYTES).
 */
export function readWheelMetadata(wheel: Buffer, maxBytes = MAX_WHEEL_METADATA_BYTES, base = 0): WheelMetadataResult {
  const listed = listZipEntries(wheel, base);
  if (!listed.ok) return listed;
  const entries = listed.value;
  const unsafe = entries.find((e) => unsafeName(e.name));
  if (unsafe !== undefined) return { ok: false, problem: `unsafe entry name ${JSON.stringify(unsafe.name)}` };

  const distInfos = new Set<string>();
  for (const entry of entries) {
    const slash = entry.name.indexOf('/');
    const top = slash === -1 ? null : entry.name.slice(0, slash);
    if (top?.endsWith('.dist-info') === true) distInfos.add(top);
  }
  if (distInfos.size !== 1) return { ok: false, problem: `${distInfos.size === 0 ? 'no' : 'more than one'} .dist-info directory` };
  const [distInfo] = [...distInfos] as [string];
  const dash = distInfo.indexOf('-');
  const name = dash === -1 ? '' : distInfo.slice(0, dash);
  if (!DIST_NAME.test(name)) return { ok: false, problem: `${distInfo} does not name a distribution` };

  const wanted = `${distInfo}/METADATA`;
  const candidates = entries.filter((e) => e.name.toLowerCase() === wanted.toLowerCase());
  if (candidates.length !== 1 || candidates[0]?.name !== wanted) {
    return { ok: false, problem: candidates.length === 0 ? `no ${wanted}` : `ambiguous ${wanted} (${candidates.length} entries)` };
  }
  const content = readZipEntry(wheel, candidates[0], maxBytes, base);
  if (!content.ok) return content;
  return { ok: true, value: { distInfo, name: normalise(name), metadata: content.value.toString('utf8') } };
}

/** One PEP 508 requirement string; null when it does not start with a name. */
export function parseRequirement(text: string): Requirement | null {
  const match = REQUIREMENT.exec(text);
  const name = match?.[1];
  if (match === null || name === undefined) return null;
  const extras = (match[2] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
    .map(normalise);
  // In `name @ url ; marker` the `;` needs a space before it (a URL may contain one); elsewhere it starts the marker.
  const rest = text.slice(match[0].length);
  const at = /^\s*@/.test(rest);
  const semi = at ? rest.search(/\s;/) : rest.indexOf(';');
  const marker = semi === -1 ? null : rest.slice(rest.indexOf(';', semi) + 1).trim() || null;
  return { name: normalise(name), extras, marker };
}

/**
 * The `Requires-Dist` values of core metadata: header lines only (the body
 * after the first blank line is the description), folded continuation lines
 * joined, field names case-insensitive.
 */
export function requiresDist(metadata: string): Requirement[] {
  const head = metadata.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const fields: string[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length > 0) fields[fields.length - 1] += ` ${line.trim()}`;
    else fields.push(line);
  }
  const requirements: Requirement[] = [];
  for (const field of fields) {
    const match = /^Requires-Dist[ \t]*:(.*)$/i.exec(field);
    const parsed = match?.[1] === undefined ? null : parseRequirement(match[1]);
    if (parsed !== null) requirements.push(parsed);
  }
  return requirements;
}
