/**
 * `npm run egress-proxy`: the egress proxy as a standalone service (the
 * compose deployment). Validates its environment, listens, and stops
 * cleanly on SIGTERM/SIGINT.
 */
import { pino } from 'pino';
import { EgressServiceConfigError, loadEgressServiceConfig } from './service-config.ts';
import { startEgressService } from './service.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadEgressServiceConfig();
  } catch (error) {
    if (error instanceof EgressServiceConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const logger = pino({
    level: config.LOG_LEVEL,
    base: { service: 'egress-proxy' },
    redact: { paths: ['authorization', 'headers.authorization', 'secret'], censor: '[redacted]' },
  });
  const service = await startEgressService(config, logger);
  logger.info({ url: service.url, sandboxesDir: config.EGRESS_SANDBOXES_DIR }, 'listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    service.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
