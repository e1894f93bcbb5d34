/**
 * Starts the egress proxy EGRESS_MODE asks for: in this process (the
 * default, `npm start`) or a standalone service reached over its
 * authenticated control channel (compose). Either one is the executor's
 * egress port as it is (executor/egress.ts); the server also asks it
 * whether it is ready (/readyz) and closes it at shutdown.
 */
import { ControlClient, createPolicyEgressProxy, RemoteEgressProxy, type DecisionObserver } from '../egress-proxy/index.ts';
import type { EgressPort } from '../executor/index.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

export interface Egress extends EgressPort {
  /** Whether the proxy can take sessions right now (for /readyz). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** config.ts has checked that remote mode has its URL and secret. */
export async function startEgress(config: Config, logger: Logger, onDecision?: DecisionObserver): Promise<Egress> {
  if (config.EGRESS_MODE === 'remote') {
    if (config.EGRESS_HOST_MAP !== undefined || config.EGRESS_UPSTREAM_CA !== undefined || config.EGRESS_UPSTREAM_PROXY !== undefined) {
      logger.warn('EGRESS_HOST_MAP, EGRESS_UPSTREAM_CA and EGRESS_UPSTREAM_PROXY are ignored with EGRESS_MODE=remote: set them on the egress proxy service');
    }
    const remote = new RemoteEgressProxy(new ControlClient({ url: config.EGRESS_CONTROL_URL!, secret: config.EGRESS_CONTROL_SECRET! }));
    // Not fatal: compose starts the API after the proxy is healthy, and /readyz reports it meanwhile.
    if (!(await remote.ready())) logger.warn({ url: config.EGRESS_CONTROL_URL }, 'egress proxy service is not answering yet');
    return remote;
  }
  return createPolicyEgressProxy(config, logger, onDecision === undefined ? {} : { onDecision });
}
