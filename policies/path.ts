/**
 * Request-path normalisation and path-glob compilation (DESIGN §5).
 *
 * The proxy forwards the path it checked, so the normal form must be one that
 * every upstream server reads the same way. Where servers disagree about what a
 * path means (an encoded `/`, a backslash, a NUL, a double-encoded byte, a dot
 * segment carrying `;params`), the path is reported as ambiguous instead of
 * picking one reading, and the matcher blocks it on hosts that have path rules.
 *
 * `;params`: some servers (Tomcat, Jetty, Spring) drop `;…` from each segment
 * before routing, others keep it as part of the name. Normalisation keeps it
 * (the literal view) and also produces the path with params stripped (the
 * stripped view); the matcher requires both views to be allowed and lets a
 * deny rule hit either, so params can neither dodge a deny nor borrow an allow.
 */
import micromatch from 'micromatch';

export type NormalisedPath =
  | { ok: true; path: string; strippedPath: string }
  | { ok: false; path: string; problem: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;
// Bytes whose decoded meaning differs between servers: `/`, `\`, NUL.
const AMBIGUOUS_ESCAPES: ReadonlySet<string> = new Set(['2F', '5C', '00']);
const FORBIDDEN_RAW = /[\\#\s\u0000-\u001f\u007f]/u;

/** The path without its query, as the reason strings show it. */
export function pathWithoutQuery(rawTarget: string): string {
  const query = rawTarget.indexOf('?');
  return query === -1 ? rawTarget : rawTarget.slice(0, query);
}

/**
 * Normalises a raw origin-form request target: query dropped, unreserved
 * escapes decoded (other escapes upper-cased), dot segments resolved (also when
 * encoded as `%2e`), repeated slashes collapsed, trailing slash kept.
 */
export function normalisePath(rawTarget: string): NormalisedPath {
  const raw = pathWithoutQuery(rawTarget);
  const ambiguous = (problem: string): NormalisedPath => ({ ok: false, path: raw, problem });
  if (!raw.startsWith('/')) return ambiguous('not an origin-form path');
  if (FORBIDDEN_RAW.test(raw)) return ambiguous('contains a backslash, fragment, space or control character');

  const literal: string[] = [];
  const stripped: string[] = [];
  const rawSegments = raw.split('/').slice(1);
  for (const [index, rawSegment] of rawSegments.entries()) {
    const isLast = index === rawSegments.length - 1;
    const decoded = decodeSegment(rawSegment);
    if (!decoded.ok) return ambiguous(decoded.problem);
    const segment = decoded.segment;
    const semicolon = segment.indexOf(';');
    const name = semicolon === -1 ? segment : segment.slice(0, semicolon);

    if (segment === '' && !isLast) continue;
    if (name === '.' || name === '..') {
      if (semicolon !== -1) return ambiguous('a dot segment carries ;params');
      if (name === '..') {
        literal.pop();
        stripped.pop();
      }
      // A path ending in a dot segment names the directory: keep the trailing slash.
      if (isLast) {
        literal.push('');
        stripped.push('');
      }
      continue;
    }
    literal.push(segment);
    stripped.push(name);
  }
  return { ok: true, path: `/${literal.join('/')}`, strippedPath: `/${stripped.join('/')}` };
}

type DecodedSegment = { ok: true; segment: string } | { ok: false; problem: string };

function decodeSegment(segment: string): DecodedSegment {
  let out = '';
  for (let i = 0; i < segment.length; i += 1) {
    const char = segment.charAt(i);
    if (char !== '%') {
      out += char;
      continue;
    }
    const hex = segment.slice(i + 1, i + 3);
    if (!HEX_PAIR.test(hex)) return { ok: false, problem: 'malformed percent-encoding' };
    const upper = hex.toUpperCase();
    if (AMBIGUOUS_ESCAPES.has(upper)) return { ok: false, problem: `encoded %${upper}` };
    // `%25` followed by hex reads as a different byte to a server that decodes twice.
    if (upper === '25' && HEX_PAIR.test(segment.slice(i + 3, i + 5))) {
      return { ok: false, problem: 'double percent-encoding' };
    }
    const decoded = String.fromCharCode(Number.parseInt(upper, 16));
    out += UNRESERVED.test(decoded) ? decoded : `%${upper}`;
    i += 2;
  }
  return { ok: true, segment: out };
}

/** A path glob compiled once, when its policy loads. */
export interface PathGlob {
  readonly pattern: string;
  readonly test: (normalisedPath: string) => boolean;
}

export type PathGlobResult = { ok: true; glob: PathGlob } | { ok: false; problem: string };

/**
 * Compiles a path pattern. `*` stays within a segment and `**` crosses
 * segments; a trailing `/*` is widened to the whole subtree because that is
 * what the policy format has always meant by it (`/*` covers `/api/v1/users/1`).
 * Dot files are matched like any other name so a deny on `/*` covers `/.env`.
 */
export function compilePathGlob(pattern: string): PathGlobResult {
  if (pattern.length === 0) return { ok: false, problem: 'empty path pattern' };
  if (!pattern.startsWith('/')) return { ok: false, problem: `path pattern "${pattern}" must start with "/"` };
  if (FORBIDDEN_RAW.test(pattern) || pattern.includes('?')) {
    return { ok: false, problem: `path pattern "${pattern}" contains a backslash, "?", "#", space or control character` };
  }
  if (pattern.split('/').some((segment) => segment === '.' || segment === '..')) {
    return { ok: false, problem: `path pattern "${pattern}" contains a dot segment` };
  }
  // Patterns get the same normal form as paths, so `/a//b` and `/%61` mean what they say.
  const normalised = normalisePath(pattern);
  if (!normalised.ok) return { ok: false, problem: `path pattern "${pattern}" is ambiguous: ${normalised.problem}` };
  const canonical = normalised.path;
  const glob = canonical.endsWith('/*') && !canonical.endsWith('/**') ? `${canonical}*` : canonical;
  let test: (path: string) => boolean;
  try {
    test = micromatch.matcher(glob, { dot: true, nonegate: true });
  } catch (error) {
    return { ok: false, problem: `path pattern "${pattern}" does not compile: ${(error as Error).message}` };
  }
  return { ok: true, glob: { pattern: glob, test } };
}
