/**
 * The egress proxy as its own service: the proxy (deciding with policies/)
 * behind the control API. It needs no Docker socket: the API makes the
 * sandboxes and asks for a session per sandbox over the control channel.
 */
import { mkdir } from 'node:fs/promises';
import type { CompiledPolicy } from '../policies/index.ts';
import { ControlServer } from './control.ts';
import { createPolicyEgressProxy, type EgressProxy } from './index.ts';
import type { EgressServiceConfig } from './service-config.ts';
import type { EgressLogger } from './types.ts';

export interface RunningEgressService {
  /** Base URL of the control API. */
  url: string;
  proxy: EgressProxy<CompiledPolicy>;
  close(): Promise<void>;
}

export async function startEgressService(config: EgressServiceConfig, logger: EgressLogger): Promise<RunningEgressService> {
  await mkdir(config.EGRESS_SANDBOXES_DIR, { recursive: true, mode: 0o755 });
  const proxy = await createPolicyEgressProxy(config, logger);
  const control = new ControlServer({
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
    async close() {
      await control.close();
      await proxy.close();
    },
  };
}
