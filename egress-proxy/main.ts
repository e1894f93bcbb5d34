/**
 * `npm run egress-proxy`: the egress proxy as a standalone service (the
 * compose deployment). Validates its environment, listens, and stops
 * cleanly on SIGTERM/SIGINT.
 */
import { pino } from 'pino';
import { runMain } from '../service-kit/index.ts';
import { loadEgressServiceConfig } from './service-config.ts';
import { startEgressService } from './service.ts';

await runMain(async () => {
  const config = loadEgressServiceConfig();
  const logger = pino({
    level: config.LOG_LEVEL,
    base: { service: 'egress-proxy' },
    redact: { paths: ['authorization', 'headers.authorization', 'secret'], censor: '[redacted]' },
  });
  const service = await startEgressService(config, logger);
  logger.info({ url: service.url, sandboxesDir: config.EGRESS_SANDBOXES_DIR }, 'listening');
  return { service, logger };
});
