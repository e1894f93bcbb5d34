/**
 * The deployment's isolation tier, chosen once at start from EXEC_RUNTIME
 * and the runtimes the engine has, and the one check a policy's
 * requirement meets: a user whose policy needs gVisor never runs weaker.
 */
import { ISOLATION_TIERS, type ContainerClient, type Isolation } from '../executor/index.ts';
import type { IsolationRequirement } from '../policies/index.ts';
import { ApiError } from './errors.ts';
import type { Logger } from './logger.ts';

export type ExecRuntimeSetting = 'auto' | 'runsc' | 'runc';

export interface IsolationChoice {
  /** What every execution runs under unless its policy needs more (and then it is refused). */
  tier: Isolation;
  /** The tiers this deployment runs programs under (/readyz, /metrics). */
  available: readonly Isolation[];
}

export const REGISTER_RUNSC_HINT =
  'register it with the engine: add {"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--host-uds=open"]}}} to /etc/docker/daemon.json and reload dockerd (kill -HUP)';

/**
 * auto: gVisor when the engine has `runsc`, else runc (an engine that does
 * not answer yet counts as without it). runsc: gVisor, and the engine must
 * have it when it answers; runc: runc.
 */
export async function chooseIsolation(setting: ExecRuntimeSetting, docker: Pick<ContainerClient, 'ociRuntimes'>, logger: Logger): Promise<IsolationChoice> {
  let engineRuntimes: string[] | undefined;
  try {
    engineRuntimes = await docker.ociRuntimes();
  } catch (error) {
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not list the engine\'s runtimes');
  }
  const hasRunsc = engineRuntimes?.includes(ISOLATION_TIERS.gvisor.ociRuntime) ?? false;
  if (setting === 'runsc' && engineRuntimes !== undefined && !hasRunsc) {
    throw new Error(`EXEC_RUNTIME=runsc but the Docker engine has no runsc runtime (it has: ${engineRuntimes.join(', ')}); ${REGISTER_RUNSC_HINT}, or set EXEC_RUNTIME=auto`);
  }
  const tier: Isolation = setting === 'runsc' || (setting === 'auto' && hasRunsc) ? 'gvisor' : 'runc';
  logger.info({ EXEC_RUNTIME: setting, isolation: tier, ociRuntime: ISOLATION_TIERS[tier].ociRuntime, engineRuntimes }, 'isolation tier');
  return { tier, available: [tier] };
}

/** The tier a job runs under; a requirement the deployment cannot meet is refused before any container exists. */
export function isolationFor(required: IsolationRequirement | undefined, choice: IsolationChoice): Isolation {
  if (required === undefined || choice.available.includes(required)) return required ?? choice.tier;
  throw new ApiError(
    503,
    'ISOLATION_UNAVAILABLE',
    `Your policy requires isolation "${required}", which this deployment does not offer (it runs ${choice.available.join(', ')}); the program was not run`,
  );
}
