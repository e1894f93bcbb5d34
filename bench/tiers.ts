/**
 * What each isolation tier costs: warm /execute hello p50 and executions
 * per second at concurrency 1 and 4, each beside a bare `docker run` of the
 * same image under the same runtime (the sandbox's spec, `node -e` in place
 * of the agent), measured in the same run. gVisor is measured only where
 * the engine has runsc. Run alone with `tsx bench/tiers.ts`; `npm run bench`
 * includes it.
 */
import { fileURLToPath } from 'node:url';
import { DockerContainerClient, ISOLATION_TIERS, ISOLATIONS, type Isolation } from '../executor/index.ts';
import { imageTag } from '../images/index.ts';
import { startBenchService, throughput, warmLatency, type ThroughputResult } from './execute.ts';
import { coldDockerRun, dockerRunRate } from './startup.ts';
import { summarise, type LoadResult, type Summary } from './stats.ts';

const N = { warm: 20, dockerRun: 8 };
const LOAD_MS = 6_000;
const CONCURRENCY = [1, 4] as const;

export interface TierResult {
  isolation: Isolation;
  warm: Summary;
  warmHits: number;
  dockerRun: Summary;
  load: Array<{ concurrency: number; execute: ThroughputResult; dockerRun: LoadResult }>;
}

export async function tiersBench(log: (message: string) => void): Promise<TierResult[]> {
  const engineRuntimes = await new DockerContainerClient().ociRuntimes();
  const image = await imageTag('node');
  const results: TierResult[] = [];
  for (const isolation of ISOLATIONS.filter((tier) => engineRuntimes.includes(ISOLATION_TIERS[tier].ociRuntime))) {
    log(`isolation ${isolation}: bare docker run, then /execute with the warm pool`);
    const dockerRun = summarise(await coldDockerRun(image, N.dockerRun, isolation));
    const service = await startBenchService({ EXEC_RUNTIME: ISOLATION_TIERS[isolation].ociRuntime, EXEC_POOL_SIZE: '2' });
    const executions: ThroughputResult[] = [];
    let warm: Awaited<ReturnType<typeof warmLatency>>;
    try {
      await service.pool.whenFull();
      warm = await warmLatency(service, N.warm);
      for (const concurrency of CONCURRENCY) executions.push(await throughput(service, concurrency, LOAD_MS));
    } finally {
      await service.stop();
    }
    // The engine's own rate under this runtime, with the service stopped so the two never share the cores.
    const load: TierResult['load'] = [];
    for (const execute of executions) load.push({ concurrency: execute.concurrency, execute, dockerRun: await dockerRunRate(image, execute.concurrency, LOAD_MS, isolation) });
    results.push({ isolation, warm: warm.latency, warmHits: warm.warmHits, dockerRun, load });
  }
  return results;
}

export function tierRows(results: readonly TierResult[]): Array<[string, string, string, string]> {
  const rows: Array<[string, string, string, string]> = [];
  for (const r of results) {
    const runtime = ISOLATION_TIERS[r.isolation].ociRuntime;
    rows.push([`${r.isolation}: /execute hello, warm (${r.warmHits}/${N.warm} warm)`, `p50 ${r.warm.p50}`, `docker run (${runtime}) p50 ${r.dockerRun.p50}`, '']);
    for (const l of r.load) {
      rows.push([
        `${r.isolation}: executions/s, concurrency ${l.concurrency} (${l.execute.failed} failed)`,
        `${l.execute.perSecond}/s (p50 ${l.execute.latency.p50})`,
        `docker runs (${runtime}) ${l.dockerRun.perSecond}/s`,
        l.dockerRun.perSecond > 0 ? `${Math.round((l.execute.perSecond / l.dockerRun.perSecond) * 100)}%` : '',
      ]);
    }
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await tiersBench((message) => process.stderr.write(`bench: ${message}\n`));
  process.stdout.write(`${JSON.stringify(results)}\n`);
  for (const row of tierRows(results)) process.stdout.write(`${row.join(' | ')}\n`);
}
