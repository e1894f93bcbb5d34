/**
 * Path matching: what `decide()` costs on long paths against a deny with three
 * `**`, beside the same paths against a literal deny and on a host without
 * path rules, measured in the same run. Growth from 1 to 16 KB should follow
 * the path length (the matcher is linear in it), not its cube.
 *
 * Part of `npm run bench`; alone: `npx tsx bench/path-match.ts` (no Docker needed).
 */
import { fileURLToPath } from 'node:url';
import { compilePolicy, decide, lintPolicy } from '../policies/index.ts';
import type { CompiledPolicy, EgressRequest } from '../policies/index.ts';
import { summarise, type Summary } from './stats.ts';
import { printTable, writeStandaloneResult } from './report.ts';

const SIZES_KB = [1, 4, 16] as const;
const SAMPLES = 300;
const THREE_GLOBSTARS = '/**/orgs/**/members/**/delete';

const POLICY = {
  allowedDomains: ['globs.example.com', 'literal.example.com', 'plain.example.com'],
  apiPathRules: {
    'globs.example.com': [
      { path: '/**', allow: true },
      { path: THREE_GLOBSTARS, allow: false },
    ],
    'literal.example.com': [
      { path: '/**', allow: true },
      { path: '/orgs/x/members/y/delete', allow: false },
    ],
  },
};

export interface PathMatchCase {
  kb: number;
  pathLength: number;
  /** decide() time, ms, against the three-`**` deny. */
  threeGlobstars: Summary;
  /** The same path against a literal deny on a host with rules. */
  literalPattern: Summary;
  /** The same path on a host without path rules. */
  noRules: Summary;
  allowed: boolean;
}

export interface PathMatchResult {
  pattern: string;
  samplesPerCase: number;
  cases: PathMatchCase[];
}

/** A path of about `kb` KB whose every segment keeps the automaton busy, ending short of the deny. */
function longPath(kb: number): string {
  const unit = '/orgs/x/members/y';
  return `${unit.repeat(Math.floor((kb * 1000 - 5) / unit.length))}/keep`;
}

function timeDecide(compiled: CompiledPolicy, request: EgressRequest): Summary {
  for (let i = 0; i < 20; i += 1) decide(compiled, request);
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i += 1) {
    const start = performance.now();
    decide(compiled, request);
    samples.push(performance.now() - start);
  }
  // Two decimals of a millisecond hide the small cases: keep microseconds.
  const summary = summarise(samples.map((ms) => ms * 1000));
  return { n: summary.n, p50: summary.p50 / 1000, p95: summary.p95 / 1000, p99: summary.p99 / 1000, mean: summary.mean / 1000 };
}

export function pathMatch(): PathMatchResult {
  const linted = lintPolicy(POLICY);
  if (!linted.ok) throw new Error(linted.problems.join('\n'));
  const compiled = compilePolicy(linted.policy);
  const request = (host: string, path: string): EgressRequest => ({ method: 'GET', host, port: 443, scheme: 'https', path, headers: {} });
  const cases = SIZES_KB.map((kb): PathMatchCase => {
    const path = longPath(kb);
    return {
      kb,
      pathLength: path.length,
      threeGlobstars: timeDecide(compiled, request('globs.example.com', path)),
      literalPattern: timeDecide(compiled, request('literal.example.com', path)),
      noRules: timeDecide(compiled, request('plain.example.com', path)),
      allowed: decide(compiled, request('globs.example.com', path)).allowed,
    };
  });
  return { pattern: THREE_GLOBSTARS, samplesPerCase: SAMPLES, cases };
}

const us = (ms: number) => `${Math.round(ms * 1000)} µs`;

/** Rows for the bench table: measure, value (p50 / p99), baseline, ratio. */
export function pathMatchRows(result: PathMatchResult): Array<[string, string, string, string]> {
  const first = result.cases[0];
  return result.cases.map((c) => [
    `decide() ${c.kb} KB path vs ${result.pattern} (p50 / p99)`,
    `${us(c.threeGlobstars.p50)} / ${us(c.threeGlobstars.p99)}`,
    `literal deny ${us(c.literalPattern.p50)}, no rules ${us(c.noRules.p50)}`,
    first === undefined ? '' : `${(c.threeGlobstars.p50 / first.threeGlobstars.p50).toFixed(1)}× the 1 KB case`,
  ]);
}

async function standalone(): Promise<void> {
  const startedAt = new Date();
  const result = pathMatch();
  const rows = pathMatchRows(result);
  printTable(['measure', 'value', 'baseline', 'ratio'], rows);
  await writeStandaloneResult('path-match', 'pathMatch', startedAt, result);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await standalone();
