/**
 * /execute through the real service (in this process, on loopback): latency
 * of hello world with a warm pool and cold, executions per second under a
 * closed loop, and memory of the server and of idle pooled sandboxes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED, LABEL_POOL, poolKey } from '../executor/index.ts';
import { imageTags } from '../images/index.ts';
import { loadConfig } from '../server/config.ts';
import { createLogger } from '../server/logger.ts';
import { instanceIdFor, startService, type RunningService } from '../server/service.ts';
import { HELLO, HELLO_PYTHON } from './startup.ts';
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
