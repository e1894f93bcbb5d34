/**
 * /execute through the real service (in this process, on loopback): latency
 * of hello world with a warm pool and cold, executions per second under a
 * closed loop and latency under an open one, and memory of the server and
 * of idle pooled sandboxes. Run alone (`npx tsx bench/execute.ts`) it
 * reports the executor's rows beside their baselines (BENCH_TIERS=runc
 * limits it to one tier, BENCH_LOAD_MS sets the load windows).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { DockerContainerClient, ISOLATION_TIERS, ISOLATIONS, LABEL_INSTANCE, LABEL_MANAGED, LABEL_POOL, poolKey, type Isolation } from '../executor/index.ts';
import { imageTag, imageTags } from '../images/index.ts';
import { loadConfig } from '../server/config.ts';
import { createLogger } from '../server/logger.ts';
import { instanceIdFor, startService, type RunningService } from '../server/service.ts';
import { profileCalls, traceEngineCalls, type RouteProfile } from './engine-trace.ts';
import { printTable, writeStandaloneResult, type Row } from './report.ts';
import { dockerRunRate, HELLO, HELLO_PYTHON, HOST_PYTHON, pythonStartup } from './startup.ts';
import { closedLoop, sleep, summarise, type LoadResult, type Summary } from './stats.ts';

export type BenchLanguage = 'javascript' | 'python';
const HELLO_IN: Record<BenchLanguage, string> = { javascript: HELLO, python: HELLO_PYTHON };

export interface BenchService extends RunningService {
  dataDir: string;
  execute(code?: string, language?: BenchLanguage): Promise<{ status: number; data?: { stdout: string; queuedMs: number } }>;
  stop(): Promise<void>;
}

/** The service as `npm start` assembles it, with its log discarded (a JSON line per execution still gets written). */
export async function startBenchService(env: Record<string, string>): Promise<BenchService> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-service-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', RATE_LIMIT_SUBJECT_MAX: '0', RATE_LIMIT_IP_MAX: '0', RATE_LIMIT_ADDRESS_MAX: '0', EXEC_MAX_CONCURRENT_PER_CALLER: '10000', ...env });
  const discard = new Writable({ write: (_chunk, _enc, done) => done() });
  const service = await startService({
    config,
    images: await imageTags(),
    logger: createLogger('info', discard),
    announce: () => undefined,
  });
  return {
    ...service,
    dataDir,
    async execute(code = HELLO, language: BenchLanguage = 'javascript') {
      const response = await fetch(`${service.url}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code, language }),
      });
      const body = (await response.json()) as { data?: { stdout: string; queuedMs: number } };
      return { status: response.status, ...(body.data ? { data: body.data } : {}) };
    },
    async stop() {
      await service.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function helloOnce(service: BenchService, language: BenchLanguage = 'javascript'): Promise<number> {
  const start = performance.now();
  const { status, data } = await service.execute(HELLO_IN[language], language);
  const elapsed = performance.now() - start;
  if (status !== 200 || data?.stdout !== 'Hello\n') throw new Error(`hello world failed: ${status} ${JSON.stringify(data)}`);
  return elapsed;
}

/** Sequential hello worlds, each given a full pool first, so every one is a warm hit. */
export async function warmLatency(service: BenchService, n: number, language: BenchLanguage = 'javascript'): Promise<{ latency: Summary; warmHits: number }> {
  const before = service.pool.stats().warmRuns;
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    await service.pool.whenFull();
    await service.executor.settle();
    samples.push(await helloOnce(service, language));
  }
  return { latency: summarise(samples), warmHits: service.pool.stats().warmRuns - before };
}

/** Sequential hello worlds on a service whose pool is off. */
export async function coldLatency(service: BenchService, n: number): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    await service.executor.settle();
    samples.push(await helloOnce(service));
  }
  return summarise(samples);
}

export interface ThroughputResult extends LoadResult {
  warmShare: number;
  peakRssBytes: number;
}

/** Hello worlds back to back from `concurrency` clients for `durationMs`. */
export async function throughput(service: BenchService, concurrency: number, durationMs: number): Promise<ThroughputResult> {
  await service.pool.whenFull();
  await service.executor.settle();
  const before = service.pool.stats();
  let peakRssBytes = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRssBytes = Math.max(peakRssBytes, process.memoryUsage().rss);
  }, 100);
  try {
    const result = await closedLoop(concurrency, durationMs, async () => {
      const { status, data } = await service.execute();
      return status === 200 && data?.stdout === 'Hello\n';
    });
    const after = service.pool.stats();
    const warm = after.warmRuns - before.warmRuns;
    const cold = after.coldRuns - before.coldRuns;
    return { ...result, warmShare: Math.round((warm / Math.max(1, warm + cold)) * 100) / 100, peakRssBytes };
  } finally {
    clearInterval(sampler);
  }
}

/** Memory charged to each idle pooled sandbox's cgroup (as `docker stats` counts it: page cache that can be dropped left out). */
export async function pooledContainerMemory(service: BenchService): Promise<number[]> {
  await service.pool.whenFull();
  await sleep(1_000);
  const engine = new DockerContainerClient();
  const found = await engine.listLabelled({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(service.dataDir), [LABEL_POOL]: poolKey('node', 'runc') });
  const usage: number[] = [];
  for (const id of found) {
    const bytes = await engine.memoryUsage(id);
    if (bytes !== undefined) usage.push(bytes);
  }
  return usage;
}

export async function settleAndMeasureRss(): Promise<number> {
  await sleep(500);
  return process.memoryUsage().rss;
}

/**
 * Hello worlds arriving every `1000 / perSecond` ms for `durationMs`
 * whether or not earlier ones have answered (an open loop, as independent
 * callers arrive): the latency a caller sees when the service is below its
 * ceiling, which a closed loop cannot show.
 */
export async function openLoop(service: BenchService, perSecond: number, durationMs: number): Promise<ThroughputResult & { offeredPerSecond: number }> {
  await service.pool.whenFull();
  await service.executor.settle();
  const before = service.pool.stats();
  const intervalMs = 1000 / perSecond;
  const samples: number[] = [];
  let failed = 0;
  const running: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i * intervalMs < durationMs; i++) {
    const due = start + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    running.push(
      helloOnce(service).then(
        (ms) => void samples.push(ms),
        () => void (failed += 1),
      ),
    );
  }
  await Promise.all(running);
  const elapsed = performance.now() - start;
  const after = service.pool.stats();
  const warm = after.warmRuns - before.warmRuns;
  const cold = after.coldRuns - before.coldRuns;
  return {
    concurrency: 0,
    offeredPerSecond: Math.round(perSecond * 100) / 100,
    durationMs: Math.round(elapsed),
    completed: samples.length,
    failed,
    perSecond: Math.round((samples.length / (elapsed / 1000)) * 10) / 10,
    latency: summarise(samples),
    warmShare: Math.round((warm / Math.max(1, warm + cold)) * 100) / 100,
    peakRssBytes: process.memoryUsage().rss,
  };
}

const EXECUTOR_N = { warm: 20, pythonStartup: 20 };
/** Window of each closed loop (BENCH_LOAD_MS): longer on a loaded machine, where a window completes only a few runs. */
const EXECUTOR_LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 8_000);
const OPEN_LOOP_MS = EXECUTOR_LOAD_MS + 2_000;

interface ExecutorTierResult {
  isolation: Isolation;
  loadAverage: { before: number[]; after: number[] };
  engineRate: LoadResult[];
  warm: Summary;
  warmHits: number;
  warmPython: Summary;
  warmPythonHits: number;
  closedLoop: ThroughputResult[];
  openLoop: ThroughputResult & { offeredPerSecond: number };
  engineCalls: RouteProfile[];
}

/**
 * The executor's rows, each beside its baseline from the same run: hello
 * p50 warm, Python warm beside `python3 -c`, executions per second at
 * concurrency 1 and 4 beside the engine's own rate of bare container
 * lifecycles of the same image, an open loop at half that rate, and which
 * engine calls each execution cost and how long the engine took for them.
 */
async function executorBench(): Promise<void> {
  const startedAt = new Date();
  const log = (message: string) => process.stderr.write(`bench: ${message} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})\n`);
  const engineRuntimes = await new DockerContainerClient().ociRuntimes();
  const tiers = ISOLATIONS.filter((tier) => engineRuntimes.includes(ISOLATION_TIERS[tier].ociRuntime) && (process.env.BENCH_TIERS ?? 'runc,gvisor').split(',').includes(tier));
  const image = await imageTag('node');
  log('python3 -c start-up');
  const python = summarise(await pythonStartup(EXECUTOR_N.pythonStartup));
  const results: ExecutorTierResult[] = [];
  for (const isolation of tiers) {
    const loadBefore = os.loadavg();
    log(`${isolation}: bare container lifecycles of ${image}`);
    const engineRate: LoadResult[] = [];
    for (const concurrency of [1, 4]) engineRate.push(await dockerRunRate(image, concurrency, EXECUTOR_LOAD_MS, isolation));
    const ceiling = Math.max(...engineRate.map((r) => r.perSecond));
    log(`${isolation}: /execute`);
    const trace = traceEngineCalls();
    const service = await startBenchService({ EXEC_RUNTIME: ISOLATION_TIERS[isolation].ociRuntime });
    try {
      await service.pool.whenFull();
      const warm = await warmLatency(service, EXECUTOR_N.warm);
      const warmPython = await warmLatency(service, EXECUTOR_N.warm, 'python');
      const closed: ThroughputResult[] = [];
      let engineCalls: RouteProfile[] = [];
      for (const concurrency of [1, 4]) {
        log(`${isolation}: closed loop, concurrency ${concurrency}`);
        await service.pool.whenFull();
        await service.executor.settle();
        trace.calls.length = 0;
        const result = await throughput(service, concurrency, EXECUTOR_LOAD_MS);
        closed.push(result);
        if (concurrency === 1) {
          await service.pool.whenFull();
          await service.executor.settle();
          engineCalls = profileCalls(trace.calls, result.completed + result.failed);
        }
      }
      log(`${isolation}: open loop at ${(ceiling / 2).toFixed(2)}/s`);
      const open = await openLoop(service, ceiling / 2, OPEN_LOOP_MS);
      results.push({ isolation, loadAverage: { before: loadBefore, after: os.loadavg() }, engineRate, warm: warm.latency, warmHits: warm.warmHits, warmPython: warmPython.latency, warmPythonHits: warmPython.warmHits, closedLoop: closed, openLoop: open, engineCalls });
    } finally {
      trace.stop();
      await service.stop();
    }
  }

  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '');
  const load = (l: number[]) => l.map((v) => v.toFixed(1)).join(' ');
  const rows: Row[] = [[`python3 -c start-up, host ${HOST_PYTHON}`, `p50 ${python.p50}`, '', '']];
  for (const r of results) {
    const runtime = ISOLATION_TIERS[r.isolation].ociRuntime;
    rows.push([`${r.isolation}: machine load average before / after`, `${load(r.loadAverage.before)} / ${load(r.loadAverage.after)}`, '', '']);
    for (const c of r.closedLoop) {
      const engine = r.engineRate.find((e) => e.concurrency === c.concurrency);
      rows.push([
        `${r.isolation}: executions/s, concurrency ${c.concurrency} (${Math.round(c.warmShare * 100)}% warm, ${c.failed} failed)`,
        `${c.perSecond}/s (p50 ${c.latency.p50})`,
        engine ? `bare lifecycles (${runtime}) ${engine.perSecond}/s` : '',
        engine && engine.perSecond > 0 ? `${Math.round((c.perSecond / engine.perSecond) * 100)}%` : '',
      ]);
    }
    rows.push([`${r.isolation}: /execute hello, warm (${r.warmHits}/${EXECUTOR_N.warm} warm)`, `p50 ${r.warm.p50}`, '', '']);
    rows.push([
      `${r.isolation}: hello, open loop at ${r.openLoop.offeredPerSecond}/s (half the engine's rate; ${Math.round(r.openLoop.warmShare * 100)}% warm, ${r.openLoop.failed} failed)`,
      `p50 ${r.openLoop.latency.p50} / p95 ${r.openLoop.latency.p95}`,
      `warm p50 ${r.warm.p50}`,
      ratio(r.openLoop.latency.p50, r.warm.p50),
    ]);
    rows.push([`${r.isolation}: /execute python hello, warm (${r.warmPythonHits}/${EXECUTOR_N.warm} warm)`, `p50 ${r.warmPython.p50}`, `python3 -c ${python.p50}`, ratio(r.warmPython.p50, python.p50)]);
    for (const call of r.engineCalls) rows.push([`${r.isolation}: engine ${call.route}, per execution (c=1)`, `${call.perExecution} (p50 ${call.p50Ms} ms)`, '', '']);
  }
  printTable(['measure', 'value (ms)', 'baseline', 'ratio'], rows);
  await writeStandaloneResult('execute', 'execute', startedAt, { machine: { cpus: os.cpus().length, loadAverage: os.loadavg() }, pythonStartup: python, tiers: results });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await executorBench();
