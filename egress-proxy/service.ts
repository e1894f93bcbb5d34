/**
 * The egress proxy as its own service: the proxy (deciding with policies/)
 * behind the control API, with its own Prometheus /metrics (the API cannot
 * count decisions made in another process). It needs no Docker socket: the API makes the
 * sandboxes and asks for a session per sandbox over the control channel.
 */
import { mkdir } from 'node:fs/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { CompiledPolicy } from '../policies/index.ts';
import { ControlServer } from './control.ts';
import { countDecisions } from './decision-metrics.ts';
import { createPolicyEgressProxy, type EgressProxy } from './index.ts';
import type { EgressServiceConfig } from './service-config.ts';
import type { EgressLogger } from './types.ts';

export interface RunningEgressService {
  /** Base URL of the control API. */
  url: string;
  proxy: EgressProxy<CompiledPolicy>;
  /** What GET /metrics on the control port serves: process metrics and decisions by result and reason. */
  metrics: Registry;
  close(): Promise<void>;
}

export async function startEgressService(config: EgressServiceConfig, logger: EgressLogger): Promise<RunningEgressService> {
  await mkdir(config.EGRESS_SANDBOXES_DIR, { recursive: true, mode: 0o755 });
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const proxy = await createPolicyEgressProxy(config, logger, { onDecision: countDecisions(metrics) });
  const control = new ControlServer({
    metrics,
    proxy,
    secret: config.EGRESS_CONTROL_SECRET,
    sandboxesDir: config.EGRESS_SANDBOXES_DIR,
    sessionMaxMs: config.EGRESS_SESSION_MAX_MS,
    logger,
  });
  let url: string;
  try {
    url = await control.listen(config.EGRESS_CONTROL_PORT, config.EGRESS_CONTROL_HOST);
  } catch (err) {
    await proxy.close();
    throw err;
  }
  return {
    url,
    proxy,
    metrics,
    async close() {
      await control.close();
      await proxy.close();
    },
  };
}
