/**
 * Secret scrubbing and substitution, each beside a same-run baseline:
 * scrubbing a 1 MiB response body (streamed in 64 KiB chunks, as the proxy
 * sees it) against passing the same chunks through unchanged; gzip decode
 * and scrub against gzip decode alone; substituting a request head against
 * the same head with no secrets bound.
 *
 * Part of `npm run bench`; also runs alone (no Docker needed):
 * `npx tsx bench/secrets.ts` prints the table and writes the JSON.
 */
import { PassThrough, Readable, Writable } from 'node:stream';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { planResponseScrub, substituteRequestHead } from '../egress-proxy/secrets/index.ts';
import { SecretBinding } from '../policies/index.ts';
import { summarise, type Summary } from './stats.ts';
import { printTable, writeStandaloneResult } from './report.ts';

const BODY_BYTES = 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
const RUNS = 60;
const HEAD_RUNS = 20_000;

export interface SecretsBenchResult {
  bodyBytes: number;
  chunkBytes: number;
  secrets: number;
  scrub1MiB: Summary;
  passThrough1MiB: Summary;
  gunzipAndScrub1MiB: Summary;
  gunzipOnly1MiB: Summary;
  headSubstitutionUs: number;
  headWithoutSecretsUs: number;
}

function binding(): SecretBinding {
  return SecretBinding.fromSpecs([
    { name: 'STRIPE_KEY', value: 'sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789', hosts: ['api.stripe.com'], in: ['header'], source: 'request' },
    { name: 'GH_TOKEN', value: 'ghp_0123456789abcdefABCDEF0123456789abcd', hosts: ['api.github.com'], in: ['header', 'query'], source: 'policy' },
  ]);
}

/** A JSON-ish body with a few echoes of the key in it, like an echoing API's answer. */
function responseBody(value: string): Buffer {
  const filler = JSON.stringify({ id: 'ch_3Nq', object: 'charge', amount: 2000, currency: 'usd', description: 'x'.repeat(400) });
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < BODY_BYTES; i += 1) {
    const part = i % 200 === 0 ? `{"echo":"Basic ${Buffer.from(`user:${value}`).toString('base64')}","key":"${value}"},` : `${filler},`;
    parts.push(part);
    size += part.length;
  }
  return Buffer.from(parts.join('')).subarray(0, BODY_BYTES);
}

const chunks = (body: Buffer): Buffer[] => {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += CHUNK_BYTES) out.push(body.subarray(at, at + CHUNK_BYTES));
  return out;
};

async function timeStream(input: readonly Buffer[], makeTransforms: () => Transform[]): Promise<number> {
  const start = performance.now();
  await pipeline(Readable.from(input), ...(makeTransforms() as [Transform]), new Writable({ write: (_chunk, _encoding, callback) => callback() }));
  return performance.now() - start;
}

/** Times `measure` and `baseline` alternately, so load on a shared machine falls on both alike. */
async function pairedSamples(n: number, measure: () => Promise<number>, baseline: () => Promise<number>): Promise<[number[], number[]]> {
  // Warm-up: both run optimised code before anything is timed.
  for (let i = 0; i < 10; i += 1) {
    await measure();
    await baseline();
  }
  const measured: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < n; i += 1) {
    measured.push(await measure());
    base.push(await baseline());
  }
  return [measured, base];
}

function microsPerCall(n: number, fn: () => unknown): number {
  for (let i = 0; i < n; i += 1) fn(); // warm-up: the same number of calls, so the timed ones run optimised
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1) fn();
  return Math.round(Number(process.hrtime.bigint() - start) / n / 10) / 100;
}

export async function secretsBench(): Promise<SecretsBenchResult> {
  const bound = binding();
  const value = bound.secrets[0]?.value ?? '';
  const body = responseBody(value);
  const plain = chunks(body);
  const gzipped = chunks(zlib.gzipSync(body));
  const context = { host: 'api.stripe.com', port: 443, carriedSecret: true };
  const identityPlan = planResponseScrub(bound, { ...context, contentEncoding: undefined });
  const gzipPlan = planResponseScrub(bound, { ...context, contentEncoding: 'gzip' });
  if (identityPlan.kind !== 'scrub' || gzipPlan.kind !== 'scrub') throw new Error('expected scrub plans');

  const [scrubbed, passed] = await pairedSamples(
    RUNS,
    () => timeStream(plain, identityPlan.createTransforms),
    () => timeStream(plain, () => [new PassThrough()]),
  );
  const [gunzippedAndScrubbed, gunzipped] = await pairedSamples(
    RUNS,
    () => timeStream(gzipped, gzipPlan.createTransforms),
    () => timeStream(gzipped, () => [zlib.createGunzip()]),
  );
  const scrub1MiB = summarise(scrubbed);
  const passThrough1MiB = summarise(passed);
  const gunzipAndScrub1MiB = summarise(gunzippedAndScrubbed);
  const gunzipOnly1MiB = summarise(gunzipped);

  const placeholder = bound.secrets[0]?.placeholder ?? '';
  const head = {
    host: 'api.stripe.com',
    port: 443,
    target: '/v1/charges?limit=3',
    headers: [['Host', 'api.stripe.com'], ['User-Agent', 'bench/1'], ['Accept', 'application/json'], ['Authorization', `Bearer ${placeholder}`]] as Array<[string, string]>,
  };
  const headSubstitutionUs = microsPerCall(HEAD_RUNS, () => substituteRequestHead(bound, head));
  const headWithoutSecretsUs = microsPerCall(HEAD_RUNS, () => substituteRequestHead(SecretBinding.EMPTY, head));

  return {
    bodyBytes: body.length,
    chunkBytes: CHUNK_BYTES,
    secrets: bound.size,
    scrub1MiB,
    passThrough1MiB,
    gunzipAndScrub1MiB,
    gunzipOnly1MiB,
    headSubstitutionUs,
    headWithoutSecretsUs,
  };
}

/** Table rows: measure, value, baseline, difference. */
export function secretsRows(r: SecretsBenchResult): Array<[string, string, string, string]> {
  const ms = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99}`;
  return [
    [`scrub 1 MiB response (${r.secrets} secrets, 64 KiB chunks)`, ms(r.scrub1MiB), `pass-through ${r.passThrough1MiB.p50}`, `+${(r.scrub1MiB.p50 - r.passThrough1MiB.p50).toFixed(2)} ms p50`],
    ['gunzip + scrub 1 MiB response', ms(r.gunzipAndScrub1MiB), `gunzip only ${r.gunzipOnly1MiB.p50}`, `+${(r.gunzipAndScrub1MiB.p50 - r.gunzipOnly1MiB.p50).toFixed(2)} ms p50`],
    ['substitute a request head (Bearer header)', `${r.headSubstitutionUs} µs`, `no secrets ${r.headWithoutSecretsUs} µs`, `+${(r.headSubstitutionUs - r.headWithoutSecretsUs).toFixed(2)} µs`],
  ];
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const result = await secretsBench();
  const rows = secretsRows(result);
  printTable(['measure', 'value (ms: p50 / p95 / p99)', 'baseline', 'difference'], rows);
  await writeStandaloneResult('secrets', 'secrets', startedAt, result);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
