/**
 * Request-path normalisation, the readings of a path, and path globs (DESIGN §5).
 *
 * The proxy forwards the path it checked, so the forwarded form must be one that
 * every upstream server reads the same way. Where servers disagree about what a
 * path means (an encoded `/`, a backslash, a NUL, a double-encoded byte, a dot
 * segment carrying `;params`), the path is reported as ambiguous instead of
 * picking one reading, and the matcher blocks it on hosts that have path rules.
 *
 * Where servers disagree in ways a rule can still judge, the path has several
 * readings, and the matcher lets a deny rule hit any of them while an allow
 * rule must cover all of them (see `READING_KINDS`). Every reading decodes the
 * escapes of printable ASCII (`%40` is `@`, `%3A` is `:`, `%3B` is `;`), except
 * `%2F`, `%5C` (ambiguous) and `%25` (decoding it would make a new escape);
 * patterns are decoded the same way, so a rule means the same whichever
 * spelling its author or the client chose.
 *
 * Matching is segment-wise and runs in time linear in the path length for a
 * given pattern: `**` is a state of a small automaton over segments, never a
 * backtracking regular expression.
 */

export type NormalisedPath =
  | { ok: true; path: string; readings: PathReadings }
  | { ok: false; path: string; problem: string };

/** A path as a list of segments: `/a/b/` is `['a', 'b', '']`, `/` is `['']`. */
export type Segments = readonly string[];

/**
 * The readings a rule is checked against, by kind:
 * - `kept`: `;params` kept as part of their segment (most servers);
 * - `stripped`: `;params` removed from each segment (Tomcat, Jetty, Spring);
 * - and each of them with a trailing slash removed (`/admin/` read as `/admin`).
 * A fourth dimension, case, is applied by the matcher: hosts not marked
 * case-sensitive are also read lower-cased.
 */
export const READING_KINDS = ['kept', 'keptTrimmed', 'stripped', 'strippedTrimmed'] as const;
export type ReadingKind = (typeof READING_KINDS)[number];
export type PathReadings = Readonly<Record<ReadingKind, Segments>>;

/**
 * Longest path (without query) judged on a host with path rules. Longer ones
 * are blocked as ambiguous: common servers refuse them anyway (8 KiB request
 * lines are usual), and the bound keeps every decision cheap.
 */
export const MAX_RULED_PATH_LENGTH = 16_384;

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;
// Bytes whose decoded meaning differs between servers: `/`, `\`, NUL.
const AMBIGUOUS_ESCAPES: ReadonlySet<string> = new Set(['2F', '5C', '00']);
const FORBIDDEN_RAW = /[\\#\s\u0000-\u001f\u007f]/u;
// Stands for an encoded `*` (`%2A`) inside a pattern, where a raw `*` is a wildcard.
// Raw input cannot contain it: FORBIDDEN_RAW refuses control characters first.
const LITERAL_STAR = '\u0001';

/** The path without its query, as the reason strings show it. */
export function pathWithoutQuery(rawTarget: string): string {
  const query = rawTarget.indexOf('?');
  return query === -1 ? rawTarget : rawTarget.slice(0, query);
}

/**
 * Normalises a raw origin-form request target. `path` is the form to forward:
 * query dropped, unreserved escapes decoded (other escapes upper-cased), dot
 * segments resolved (also when encoded as `%2e`), repeated slashes collapsed,
 * trailing slash kept. `readings` are what rules are checked against.
 */
export function normalisePath(rawTarget: string): NormalisedPath {
  return normaliseWith(rawTarget, false);
}

function normaliseWith(rawTarget: string, isPattern: boolean): NormalisedPath {
  const raw = pathWithoutQuery(rawTarget);
  const ambiguous = (problem: string): NormalisedPath => ({ ok: false, path: raw, problem });
  if (!raw.startsWith('/')) return ambiguous('not an origin-form path');
  if (FORBIDDEN_RAW.test(raw)) return ambiguous('contains a backslash, fragment, space or control character');

  const literal: string[] = [];
  const kept: string[] = [];
  const stripped: string[] = [];
  const rawSegments = raw.split('/').slice(1);
  for (const [index, rawSegment] of rawSegments.entries()) {
    const isLast = index === rawSegments.length - 1;
    const decoded = decodeSegment(rawSegment, isPattern);
    if (!decoded.ok) return ambiguous(decoded.problem);
    const semicolon = decoded.read.indexOf(';');
    const name = semicolon === -1 ? decoded.read : decoded.read.slice(0, semicolon);

    if (decoded.read === '' && !isLast) continue;
    if (name === '.' || name === '..') {
      // `..;x` or `..%3B`: a server that strips params climbs, one that does not, does not.
      if (semicolon !== -1) return ambiguous('a dot segment carries ;params');
      if (name === '..') {
        literal.pop();
        kept.pop();
        stripped.pop();
      }
      // A path ending in a dot segment names the directory: keep the trailing slash.
      if (isLast) {
        literal.push('');
        kept.push('');
        stripped.push('');
      }
      continue;
    }
    literal.push(decoded.literal);
    kept.push(decoded.read);
    stripped.push(name);
  }
  // Readings that come out the same share one array, so the matcher checks them once.
  const strippedSegments = stripped.every((name, index) => name === kept[index]) ? kept : withoutInnerEmpties(stripped);
  return {
    ok: true,
    path: `/${literal.join('/')}`,
    readings: {
      kept,
      keptTrimmed: withoutTrailingSlash(kept),
      stripped: strippedSegments,
      strippedTrimmed: withoutTrailingSlash(strippedSegments),
    },
  };
}

// A segment that was only `;params` vanishes when they are stripped, as repeated slashes do.
function withoutInnerEmpties(segments: readonly string[]): Segments {
  const out = segments.filter((segment, index) => segment !== '' || index === segments.length - 1);
  return out.length === 0 ? [''] : out;
}

function withoutTrailingSlash(segments: Segments): Segments {
  return segments.length > 1 && segments[segments.length - 1] === '' ? segments.slice(0, -1) : segments;
}

type DecodedSegment = { ok: true; literal: string; read: string } | { ok: false; problem: string };

/**
 * `literal`: unreserved escapes decoded, others upper-cased (the forwarded
 * form). `read`: every printable-ASCII escape decoded but `%2F %5C %25`.
 */
function decodeSegment(segment: string, isPattern: boolean): DecodedSegment {
  if (!segment.includes('%')) return { ok: true, literal: segment, read: segment };
  let literal = '';
  let read = '';
  for (let i = 0; i < segment.length; i += 1) {
    const char = segment.charAt(i);
    if (char !== '%') {
      literal += char;
      read += char;
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
    const code = Number.parseInt(upper, 16);
    const decoded = String.fromCharCode(code);
    literal += UNRESERVED.test(decoded) ? decoded : `%${upper}`;
    if (isPattern && upper === '2A') read += LITERAL_STAR;
    else read += code > 0x20 && code < 0x7f && upper !== '25' ? decoded : `%${upper}`;
    i += 2;
  }
  return { ok: true, literal, read };
}

/** One pattern segment: `**`, or literal pieces with a `*` between each two. */
type SegmentPattern = { readonly globstar: true } | { readonly globstar: false; readonly pieces: readonly string[] };
type SegmentsPattern = readonly SegmentPattern[];

interface CompiledReading {
  readonly exact: SegmentsPattern;
  readonly lowerCase: SegmentsPattern;
}

/** A path glob compiled once, when its policy loads. */
export interface PathGlob {
  /** The canonical pattern, as decisions and errors show it. */
  readonly pattern: string;
  /**
   * For deny rules: does any reading match? With `lowerCased` (the readings
   * through `lowerCaseReadings`), case is ignored: matching lower-cased
   * covers the readings as written too.
   */
  readonly matchesAnyReading: (readings: PathReadings, lowerCased: PathReadings | null) => boolean;
  /** For allow rules, which must cover every reading: which readings match, case included? */
  readonly matchEachReading: (readings: PathReadings) => Readonly<Record<ReadingKind, boolean>>;
}

export type PathGlobResult = { ok: true; glob: PathGlob } | { ok: false; problem: string };

/**
 * Compiles a path pattern. Only `*` and `**` are special: `*` stays within a
 * segment, a segment of exactly `**` matches any number of segments (none
 * included), and a trailing `/*` is widened to the whole subtree because that
 * is what the policy format has always meant by it (`/*` covers
 * `/api/v1/users/1`). Every other character, `()[]{}!+@` included, is literal;
 * `%2A` is a literal `*`. Dot files are matched like any other name so a deny
 * on `/*` covers `/.env`.
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
  if (pattern.length > MAX_RULED_PATH_LENGTH) {
    return { ok: false, problem: `path pattern is longer than ${MAX_RULED_PATH_LENGTH} characters` };
  }
  // Patterns get the same normal form and readings as paths, so `/a//b` and `/%61` mean what they say.
  const normalised = normaliseWith(pattern, true);
  if (!normalised.ok) return { ok: false, problem: `path pattern "${pattern}" is ambiguous: ${normalised.problem}` };
  const widened = normalised.path.endsWith('/*') && !normalised.path.endsWith('/**');
  const canonical = widened ? `${normalised.path}*` : normalised.path;

  const byReading = new Map<Segments, CompiledReading>();
  const compiled = {} as Record<ReadingKind, CompiledReading>;
  for (const kind of READING_KINDS) {
    const source = normalised.readings[kind];
    let reading = byReading.get(source);
    if (reading === undefined) {
      const written = source.map(compileSegment);
      const exact = widened ? widenTrailingStar(written) : written;
      reading = { exact, lowerCase: exact.map(lowerCaseSegment) };
      byReading.set(source, reading);
    }
    compiled[kind] = reading;
  }
  // Kinds whose pattern and path readings are the same arrays as an earlier kind's give its answer.
  const eachReading = (readings: PathReadings, side: 'exact' | 'lowerCase'): Record<ReadingKind, boolean> => {
    const answers = {} as Record<ReadingKind, boolean>;
    const done: Array<{ pattern: SegmentsPattern; path: Segments; answer: boolean }> = [];
    for (const kind of READING_KINDS) {
      const pattern = compiled[kind][side];
      const path = readings[kind];
      const earlier = done.find((entry) => entry.pattern === pattern && entry.path === path);
      const answer = earlier?.answer ?? matchSegments(pattern, path);
      if (earlier === undefined) done.push({ pattern, path, answer });
      answers[kind] = answer;
    }
    return answers;
  };
  const glob: PathGlob = {
    pattern: canonical,
    matchesAnyReading: (readings, lowerCased) => {
      const answers = lowerCased === null ? eachReading(readings, 'exact') : eachReading(lowerCased, 'lowerCase');
      return READING_KINDS.some((kind) => answers[kind]);
    },
    matchEachReading: (readings) => eachReading(readings, 'exact'),
  };
  return { ok: true, glob };
}

function compileSegment(segment: string): SegmentPattern {
  if (segment === '**') return { globstar: true };
  return { globstar: false, pieces: segment.split(/\*+/u).map((piece) => piece.replaceAll(LITERAL_STAR, '*')) };
}

const isLoneStar = (segment: SegmentPattern | undefined): boolean =>
  segment !== undefined && !segment.globstar && segment.pieces.length === 2 && segment.pieces.every((piece) => piece === '');

function widenTrailingStar(segments: readonly SegmentPattern[]): SegmentsPattern {
  return isLoneStar(segments[segments.length - 1]) ? [...segments.slice(0, -1), { globstar: true }] : segments;
}

function lowerCaseSegment(segment: SegmentPattern): SegmentPattern {
  return segment.globstar ? segment : { globstar: false, pieces: segment.pieces.map(asciiLowerCase) };
}

/** The readings of a host whose paths are not case-sensitive, lower-cased once per request. */
export function lowerCaseReadings(readings: PathReadings): PathReadings {
  const lowered = new Map<Segments, Segments>();
  const lower = (segments: Segments): Segments => {
    let out = lowered.get(segments);
    if (out === undefined) {
      out = segments.map(asciiLowerCase);
      lowered.set(segments, out);
    }
    return out;
  };
  const kept = lower(readings.kept);
  const stripped = lower(readings.stripped);
  // A trimmed reading is its untrimmed one less the last segment (or the same array).
  const trimmed = (untrimmed: Segments, source: Segments, sourceTrimmed: Segments) =>
    sourceTrimmed === source ? untrimmed : untrimmed.slice(0, -1);
  return {
    kept,
    keptTrimmed: trimmed(kept, readings.kept, readings.keptTrimmed),
    stripped,
    strippedTrimmed: trimmed(stripped, readings.stripped, readings.strippedTrimmed),
  };
}

/** Lower-cases A-Z only, so lengths never change and `%C3%A9` stays one escape. */
export function asciiLowerCase(text: string): string {
  return ASCII_ONLY.test(text) ? text.toLowerCase() : text.replace(/[A-Z]+/gu, (run) => run.toLowerCase());
}
const ASCII_ONLY = /^[\u0000-\u007f]*$/u;

/**
 * Runs the pattern as an automaton over segments: `states[j]` says the first
 * `j` pattern segments have matched the segments read so far. A `**` state
 * stays put while consuming a segment and also lets the next state start
 * without one. Time O(path segments × pattern segments × segment length).
 */
export function matchSegments(pattern: SegmentsPattern, path: Segments): boolean {
  let states = new Uint8Array(pattern.length + 1);
  let next = new Uint8Array(pattern.length + 1);
  states[0] = 1;
  skipGlobstars(pattern, states);
  for (const segment of path) {
    next.fill(0);
    let any = false;
    for (let j = 0; j < pattern.length; j += 1) {
      if (states[j] === 0) continue;
      const step = pattern[j];
      if (step === undefined) continue;
      if (step.globstar) {
        next[j] = 1;
        any = true;
      } else if (matchSegment(step.pieces, segment)) {
        next[j + 1] = 1;
        any = true;
      }
    }
    if (!any) return false;
    skipGlobstars(pattern, next);
    [states, next] = [next, states];
  }
  return states[pattern.length] === 1;
}

function skipGlobstars(pattern: SegmentsPattern, states: Uint8Array): void {
  for (let j = 0; j < pattern.length; j += 1) {
    if (states[j] === 1 && pattern[j]?.globstar === true) states[j + 1] = 1;
  }
}

/** `*`-only globbing: anchored first and last piece, the middle ones leftmost-first (never needs backtracking). */
function matchSegment(pieces: readonly string[], segment: string): boolean {
  const first = pieces[0] ?? '';
  if (pieces.length === 1) return segment === first;
  const last = pieces[pieces.length - 1] ?? '';
  if (segment.length < first.length + last.length || !segment.startsWith(first) || !segment.endsWith(last)) return false;
  let position = first.length;
  const end = segment.length - last.length;
  for (let i = 1; i < pieces.length - 1; i += 1) {
    const piece = pieces[i] ?? '';
    const found = segment.indexOf(piece, position);
    if (found === -1 || found + piece.length > end) return false;
    position = found + piece.length;
  }
  return true;
}
