/**
 * `npm run bench`: every figure beside its baseline, measured in the same
 * run on this machine; prints a table and writes bench/results/<timestamp>.json.
 * It reports and never judges: no figure here is asserted anywhere.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { DockerContainerClient } from '../executor/index.ts';
import { imageTag } from '../images/index.ts';
import { coldLatency, pooledContainerMemory, settleAndMeasureRss, startBenchService, throughput, warmLatency, type ThroughputResult } from './execute.ts';
import { auditQueries, auditRows, auditUnderLoad } from './audit.ts';
import { pathMatch, pathMatchRows } from './path-match.ts';
import { policyCache } from './policy-cache.ts';
import { registryCapture, registryCaptureRows } from './registry-capture.ts';
import { secretsBench, secretsRows } from './secrets.ts';
import { connectCost, gcOf, proxyCase, secretCase, type ConnectCost, type ProxyCase, type SecretCase } from './proxy.ts';
import { PROXY_TOPOLOGY, startProxyWorld } from './proxy-world.ts';
import { coldDockerRun, dockerRunRate, HOST_PYTHON, nodeStartup, pythonStartup, sandboxNodeBinary } from './startup.ts';
import { summarise, type LoadResult, type Summary } from './stats.ts';
import { tierRows, tiersBench } from './tiers.ts';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const N = { nodeStartup: 20, dockerRun: 10, warm: 30, cold: 15 };
const THROUGHPUT_MS = 8_000;
const ENGINE_RATE_MS = 5_000;
const LOAD_CONCURRENCY = [1, 4, 16] as const;
const PROXY_MS = 3_000;

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const ms = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99}`;
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '');

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function machine() {
  const version = await new DockerContainerClient().version();
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    docker: version,
    loadAverage: os.loadavg(),
  };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const facts = await machine();
  const image = await imageTag('node');
  log(`machine: ${facts.cpus} × ${facts.cpuModel}, ${mb(facts.memoryBytes)} MiB, node ${facts.node}, docker ${facts.docker.server}`);

  log('baselines: node -e start-up, a cold docker run, and docker runs per second');
  const hostNode = summarise(await nodeStartup(process.execPath, N.nodeStartup));
  const sandboxNode = await sandboxNodeBinary();
  const sandboxNodeStartup = sandboxNode ? summarise(await nodeStartup(sandboxNode.path, N.nodeStartup)) : undefined;
  await sandboxNode?.cleanup();
  const hostPython = summarise(await pythonStartup(N.nodeStartup));
  const dockerRun = summarise(await coldDockerRun(image, N.dockerRun));
  const engineRate: LoadResult[] = [];
  for (const concurrency of LOAD_CONCURRENCY) engineRate.push(await dockerRunRate(image, concurrency, ENGINE_RATE_MS));

  log('/execute with the warm pool');
  const pooled = await startBenchService({ EXEC_RUNTIME: 'runc', EXEC_POOL_SIZE: '2' });
  let warm: Awaited<ReturnType<typeof warmLatency>>;
  let warmPython: Awaited<ReturnType<typeof warmLatency>>;
  const load: ThroughputResult[] = [];
  let rssAtRest: number;
  let containerMemory: number[];
  try {
    await pooled.pool.whenFull();
    rssAtRest = await settleAndMeasureRss();
    containerMemory = await pooledContainerMemory(pooled);
    warm = await warmLatency(pooled, N.warm);
    warmPython = await warmLatency(pooled, N.warm, 'python');
    for (const concurrency of LOAD_CONCURRENCY) {
      log(`executions per second at concurrency ${concurrency}`);
      load.push(await throughput(pooled, concurrency, THROUGHPUT_MS));
    }
  } finally {
    await pooled.stop();
  }

  log('/execute cold (pool off)');
  const coldService = await startBenchService({ EXEC_RUNTIME: 'runc', EXEC_POOL_SIZE: '0' });
  let cold: Summary;
  try {
    cold = await coldLatency(coldService, N.cold);
  } finally {
    await coldService.stop();
  }

  log(`egress proxy vs direct (${PROXY_TOPOLOGY})`);
  const world = await startProxyWorld();
  const proxy: ProxyCase[] = [];
  let connect: ConnectCost;
  let substitution: SecretCase;
  try {
    for (const scheme of ['http', 'https'] as const) {
      for (const concurrency of [1, 32]) proxy.push(await proxyCase(world, scheme, concurrency, PROXY_MS));
    }
    connect = await connectCost(world, 300);
    substitution = await secretCase(world, 1, PROXY_MS);
  } finally {
    await world.close();
  }

  log('isolation tiers');
  const tiers = await tiersBench(log);

  log('policy cache');
  const cache = await policyCache();

  log('secret scrubbing and substitution');
  const secrets = await secretsBench();

  log('registry responses held for slow readers');
  const capture = await registryCapture();

  log(`audit store: warm /execute with the store off, then on while decisions are written; queries over stored decisions`);
  const audit = { load: await auditUnderLoad(N.warm), queries: await auditQueries() };

  const results = {
    startedAt: startedAt.toISOString(),
    machine: facts,
    image,
    baselines: { hostNodeStartup: hostNode, sandboxNodeStartup, sandboxNodeVersion: sandboxNode?.version, coldDockerRun: dockerRun, dockerRunRate: engineRate, hostPythonStartup: hostPython },
    execute: { warm: warm.latency, warmHits: warm.warmHits, warmPython: warmPython.latency, warmPythonHits: warmPython.warmHits, cold, throughput: load },
    proxyTopology: PROXY_TOPOLOGY,
    proxy,
    connectCost: connect,
    policyCache: cache,
    pathMatch: pathMatch(),
    secrets: { ...secrets, substitutedHttps: substitution },
    registryCapture: capture,
    isolationTiers: tiers,
    audit,
    memory: { serverRssAtRestBytes: rssAtRest, serverRssPeakUnderLoadBytes: Math.max(...load.map((l) => l.peakRssBytes)), idlePooledContainerBytes: containerMemory },
  };

  const rows: Array<[string, string, string, string]> = [];
  const nodeBase = sandboxNodeStartup ?? hostNode;
  rows.push(['node -e start-up, host node ' + process.version, ms(hostNode), '', '']);
  if (sandboxNodeStartup) rows.push([`node -e start-up, sandbox node ${sandboxNode?.version ?? ''}`, ms(sandboxNodeStartup), '', '']);
  rows.push(['cold docker run (create+start+wait+remove)', ms(dockerRun), `node -e ${nodeBase.p50}`, ratio(dockerRun.p50, nodeBase.p50)]);
  rows.push([`/execute hello, warm pool (${warm.warmHits}/${N.warm} warm)`, ms(warm.latency), `node -e ${nodeBase.p50}`, ratio(warm.latency.p50, nodeBase.p50)]);
  rows.push([`python3 -c start-up, host ${HOST_PYTHON}`, ms(hostPython), '', '']);
  rows.push([`/execute python hello, warm pool (${warmPython.warmHits}/${N.warm} warm)`, ms(warmPython.latency), `python3 -c ${hostPython.p50}`, ratio(warmPython.latency.p50, hostPython.p50)]);
  rows.push(['/execute hello, cold (pool off)', ms(cold), `docker run ${dockerRun.p50}`, ratio(cold.p50, dockerRun.p50)]);
  for (const l of load) {
    const engine = engineRate.find((e) => e.concurrency === l.concurrency);
    rows.push([
      `executions/s, concurrency ${l.concurrency} (${Math.round(l.warmShare * 100)}% warm, ${l.failed} failed)`,
      `${l.perSecond}/s (p50 ${l.latency.p50})`,
      engine ? `docker runs alone ${engine.perSecond}/s` : '',
      engine ? `${Math.round((l.perSecond / engine.perSecond) * 100)}%` : '',
    ]);
  }
  for (const p of proxy) {
    rows.push([
      `${p.scheme.toUpperCase()} via proxy (own process), c=${p.concurrency}: req/s`,
      `${p.proxied.perSecond}/s`,
      `direct ${p.direct.perSecond}/s`,
      `${Math.round((p.proxied.perSecond / p.direct.perSecond) * 100)}%`,
    ]);
    rows.push([
      `${p.scheme.toUpperCase()} via proxy (own process), c=${p.concurrency}: p50 / p99`,
      `${p.proxied.latency.p50} / ${p.proxied.latency.p99}`,
      `direct ${p.direct.latency.p50} / ${p.direct.latency.p99}`,
      `+${(p.proxied.latency.p50 - p.direct.latency.p50).toFixed(2)} ms p50`,
    ]);
    rows.push([`${p.scheme.toUpperCase()} via proxy (own process), c=${p.concurrency}: proxy CPU`, `${p.proxyCpu.perRequestUs} µs/request${gcOf(p)}`, `${Math.round(p.proxyCpu.coreShare * 100)}% of a core`, '']);
  }
  rows.push([`refused CONNECT (403, no TLS): proxy CPU, ${connect.count} sequential`, `${connect.refusedUs} µs/CONNECT`, `allowed, leaf cached ${connect.allowedUs} µs`, ratio(connect.refusedUs, connect.allowedUs)]);
  rows.push(...tierRows(tiers));
  rows.push(['policy cache hit', `${cache.hitNs} ns`, `miss (loopback fetch) ${cache.miss.p50} ms`, '']);
  rows.push([`policy: ${cache.concurrentMisses} concurrent misses, one token`, `${cache.fetchesForThem} fetch(es)`, '', '']);
  rows.push(...pathMatchRows(results.pathMatch));
  rows.push(...secretsRows(secrets));
  rows.push(...registryCaptureRows(capture));
  rows.push([
    'HTTPS via proxy with a substituted secret, c=1: p50 / p99',
    `${substitution.substituted.latency.p50} / ${substitution.substituted.latency.p99}`,
    `no secret ${substitution.plain.latency.p50} / ${substitution.plain.latency.p99}`,
    `+${(substitution.substituted.latency.p50 - substitution.plain.latency.p50).toFixed(2)} ms p50`,
  ]);
  rows.push(...auditRows(results.audit.load, results.audit.queries));
  rows.push(['server RSS at rest / peak under load', `${mb(rssAtRest)} / ${mb(results.memory.serverRssPeakUnderLoadBytes)} MiB`, '', '']);
  rows.push(['idle pooled container memory', containerMemory.map((b) => `${mb(b)} MiB`).join(', '), '', '']);

  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length), ['measure', 'value (ms: p50 / p95 / p99)', 'baseline', 'ratio'][i].length));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' │ ');
  const out = [line(['measure', 'value (ms: p50 / p95 / p99)', 'baseline', 'ratio']), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...rows.map(line)];
  process.stdout.write(`\n${out.join('\n')}\n\n`);

  await mkdir(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
}

await main();
