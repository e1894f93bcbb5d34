/**
 * Files in and out of a job's working directory, as the executor hands them
 * to the image's agent (protocol at the top of images/node/agent/agent.js).
 *
 * Paths and patterns are checked here (the server's request schema uses the
 * same checks, so a bad one is a 400 before any sandbox exists) and the
 * agents check paths again as a second lock. Output globs are compiled here,
 * once, into one regular expression the agents apply as it is: the glob
 * dialect then lives in one place and the two agents cannot drift apart.
 */

/** Where the program runs and where `files` land; `outputFiles` are relative to it. */
export const SANDBOX_WORK_DIR = '/tmp/work';

const MAX_PATH_BYTES = 1024;
const MAX_SEGMENT_BYTES = 255;

/** A file the job brings into the working directory. */
export interface InputFile {
  /** Relative to the working directory, `/`-separated. */
  path: string;
  /** The bytes, in base64. */
  content: string;
}

/** A file collected from the working directory after the program exited. */
export interface OutputFile {
  path: string;
  size: number;
  /** The bytes, in base64. */
  content: string;
}

/** What the agent collects, and how much of it at most. */
export interface OutputFilesRequest {
  patterns: readonly string[];
  maxFiles: number;
  maxBytes: number;
}

/** The agent's report: what it collected, and whether it left matching files out at a cap. */
export interface CollectedFiles {
  files: OutputFile[];
  truncated: boolean;
}

/**
 * Why `path` cannot name a file inside the working directory, or null when
 * it can: relative, `/`-separated, no empty, `.` or `..` segment, no NUL or
 * backslash (which another reader might take for a separator).
 */
export function relativePathProblem(path: string): string | null {
  if (path === '') return 'must not be empty';
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `must be at most ${MAX_PATH_BYTES} bytes`;
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.includes('\\')) return 'must use / as separator, not \\';
  if (path.startsWith('/')) return 'must be relative to the working directory, not absolute';
  for (const segment of path.split('/')) {
    if (segment === '') return 'must not have empty segments (// or a trailing /)';
    if (segment === '..') return 'must not contain .. (it would leave the working directory)';
    if (segment === '.') return 'must not contain . segments';
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return `each segment must be at most ${MAX_SEGMENT_BYTES} bytes`;
  }
  return null;
}

/** Why a set of input paths cannot all be written (one names a directory another needs as a file), per index. */
export function conflictingPaths(paths: readonly string[]): Array<{ index: number; problem: string }> {
  const problems: Array<{ index: number; problem: string }> = [];
  const files = new Map<string, number>();
  const dirs = new Set<string>();
  paths.forEach((path, index) => {
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join('/'));
    const earlier = files.get(path);
    if (earlier !== undefined) problems.push({ index, problem: `duplicates files[${earlier}].path` });
    else files.set(path, index);
  });
  files.forEach((index, path) => {
    if (dirs.has(path)) problems.push({ index, problem: `is a file, but another path needs ${JSON.stringify(path)} as a directory` });
  });
  return problems.sort((a, b) => a.index - b.index);
}

const REGEX_SPECIAL = /[.+^${}()|[\]\\]/g;

function segmentSource(segment: string): string {
  return segment
    .replace(REGEX_SPECIAL, '\\$&')
    .replace(/\*+/g, '[^/]*')
    .replace(/\?/g, '[^/]');
}

/**
 * One glob as a regular expression source (unanchored; the agents match
 * whole paths). `*` and `?` stay within a segment, a `**` segment spans any
 * number of them; dot files are matched like any other. Every other
 * character is literal. Sources use only syntax JavaScript and Python read
 * alike.
 */
export function globSource(pattern: string): string {
  const segments = pattern.split('/');
  let source = '';
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    if (segment === '**') source += last ? '(?:[^/]*/)*[^/]*' : '(?:[^/]*/)*';
    else source += segmentSource(segment) + (last ? '' : '/');
  });
  return source;
}

/** All patterns as one alternation, for the job header. */
export function outputFilesMatcher(patterns: readonly string[]): string {
  return patterns.map((pattern) => `(?:${globSource(pattern)})`).join('|');
}

/**
 * The largest files record the executor accepts for `request`: the base64
 * of the byte cap, plus each file's JSON framing with a path of the longest
 * kind. A longer record can only come from a broken agent.
 */
export function maxFilesRecordBytes(request: OutputFilesRequest): number {
  return Math.ceil(request.maxBytes / 3) * 4 + request.maxFiles * (MAX_PATH_BYTES * 6 + 64) + 64;
}
