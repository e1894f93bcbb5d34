/**
 * Registry responses the proxy reads for the package closure: memory held by
 * N slow readers of 8 MiB wheels (each opens the download and reads nothing),
 * as the proxy's own accounting of captured bytes and as the process's
 * ArrayBuffer memory. Measured twice in the same run: the whole-body capture
 * every captured response used to get (the baseline: the wheel's tail
 * request stripped from the decision, no budget) and the tail-only capture
 * under the default per-session budget.
 *
 * Standalone (no Docker needed): `npx tsx bench/registry-capture.ts`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CAPTURE_LIMITS, EgressProxy, parseHostMap } from '../egress-proxy/index.ts';
import type { CaptureLimits } from '../egress-proxy/index.ts';
import { compilePolicy, policyFromApi, sessionPackagePolicy, WHEEL_TAIL_BYTES } from '../policies/index.ts';
import type { CompiledPolicy } from '../policies/index.ts';
import { PYPI_FILES_HOST, PYPI_HOST, startRegistry, type RegistryFixture } from '../test/fixtures/registry.ts';
import { connectTunnel, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { sleep } from './stats.ts';
import { printTable, writeStandaloneResult } from './report.ts';

const WHEEL_BYTES = 8 * 1024 * 1024;
const READERS = DEFAULT_CAPTURE_LIMITS.sessionCaptures;

export interface CaptureCase {
  mode: 'whole-body (before)' | 'tail, budgeted (now)';
  readers: number;
  /** The proxy's accounting once every reader has stalled. */
  heldBytes: number;
  /** Growth of the process's ArrayBuffer memory over the same span. */
  arrayBuffersBytes: number;
  sessionBudgetBytes: number | null;
}

export interface RegistryCaptureResult {
  wheelBytes: number;
  tailBytes: number;
  cases: CaptureCase[];
}

async function slowReader(proxy: EgressProxy<CompiledPolicy>, socketPath: string, host: string, target: string, accept?: string): Promise<{ res: http.IncomingMessage; stream: tls.TLSSocket }> {
  const tunnel = await connectTunnel(socketPath, `${host}:443`);
  const stream = await tlsOverTunnel(tunnel.socket, host, proxy.caCertPem);
  return new Promise((resolve, reject) => {
    const req = http.request({ path: target, headers: { host, ...(accept === undefined ? {} : { accept }) }, createConnection: () => stream });
    req.on('response', (res) => {
      res.pause();
      resolve({ res, stream });
    });
    req.on('error', reject);
    req.end();
  });
}

function drain(res: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    res.on('end', resolve);
    res.resume();
  });
}

async function measure(registry: RegistryFixture, dataDir: string, mode: CaptureCase['mode']): Promise<CaptureCase> {
  const before = mode === 'whole-body (before)';
  const packages = sessionPackagePolicy();
  const limits: CaptureLimits = before ? { sessionBytes: Number.MAX_SAFE_INTEGER, sessionCaptures: Number.MAX_SAFE_INTEGER } : DEFAULT_CAPTURE_LIMITS;
  const proxy = await EgressProxy.create<CompiledPolicy>({
    decide: (request, session) => {
      const decision = packages.decide(request, session);
      if (!before) return decision;
      const { learnTail: _tail, ...whole } = decision;
      return whole;
    },
    learn: packages.learn,
    dataDir,
    hostMap: parseHostMap(registry.hostMapEnv()),
    upstreamCa: registry.caPem,
    captureLimits: limits,
  });
  const policy = compilePolicy(policyFromApi({ allowedDomains: [], allowedPackages: ['pypi:big-py'] }));
  const session = await proxy.openSession({ executionId: `bench-${mode}`, socketPath: path.join(dataDir, before ? 'b' : 'n', 'proxy.sock'), context: policy });
  try {
    const page = await slowReader(proxy, session.socketPath, PYPI_HOST, '/simple/big-py/', 'application/vnd.pypi.simple.v1+json');
    await drain(page.res);
    page.stream.destroy();
    globalThis.gc?.();
    const baseline = process.memoryUsage().arrayBuffers;
    const wheel = new URL(registry.wheelUrl('big-py')).pathname;
    const readers = await Promise.all(Array.from({ length: READERS }, () => slowReader(proxy, session.socketPath, PYPI_FILES_HOST, wheel)));
    // Settled: every reader stalled, nothing more is being read upstream.
    let last = -1;
    while (proxy.captureStats().heldBytes !== last) {
      last = proxy.captureStats().heldBytes;
      await sleep(300);
    }
    globalThis.gc?.();
    const result: CaptureCase = {
      mode,
      readers: READERS,
      heldBytes: proxy.captureStats().heldBytes,
      arrayBuffersBytes: process.memoryUsage().arrayBuffers - baseline,
      sessionBudgetBytes: before ? null : limits.sessionBytes,
    };
    await Promise.all(readers.map((r) => drain(r.res)));
    for (const r of readers) r.stream.destroy();
    return result;
  } finally {
    await session.close();
    await proxy.close();
  }
}

export async function registryCapture(): Promise<RegistryCaptureResult> {
  const registry = await startRegistry([], [{ name: 'big-py', version: '1.0', module: 'big_py', init: '', padding: WHEEL_BYTES }]);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-registry-'));
  try {
    const cases = [await measure(registry, dataDir, 'whole-body (before)'), await measure(registry, dataDir, 'tail, budgeted (now)')];
    return { wheelBytes: WHEEL_BYTES, tailBytes: WHEEL_TAIL_BYTES, cases };
  } finally {
    await registry.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Rows for the bench table: measure, value, baseline, ratio. */
export function registryCaptureRows(result: RegistryCaptureResult): Array<[string, string, string, string]> {
  const before = result.cases.find((c) => c.mode === 'whole-body (before)');
  const now = result.cases.find((c) => c.mode === 'tail, budgeted (now)');
  if (before === undefined || now === undefined) return [];
  return [
    [
      `held by ${now.readers} slow readers of ${mib(result.wheelBytes)} wheels (proxy accounting)`,
      `${mib(now.heldBytes)} (budget ${mib(now.sessionBudgetBytes ?? 0)})`,
      `whole-body capture ${mib(before.heldBytes)}`,
      before.heldBytes > 0 ? `${(now.heldBytes / before.heldBytes).toFixed(2)}×` : '',
    ],
    [
      `ArrayBuffer growth, same readers`,
      mib(now.arrayBuffersBytes),
      `whole-body capture ${mib(before.arrayBuffersBytes)}`,
      before.arrayBuffersBytes > 0 ? `${(now.arrayBuffersBytes / before.arrayBuffersBytes).toFixed(2)}×` : '',
    ],
  ];
}

async function standalone(): Promise<void> {
  const startedAt = new Date();
  const result = await registryCapture();
  const rows = registryCaptureRows(result);
  printTable(['measure', 'value', 'baseline', 'ratio'], rows);
  await writeStandaloneResult('registry-capture', 'registryCapture', startedAt, result);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await standalone();
