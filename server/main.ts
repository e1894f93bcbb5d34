/**
 * `npm start`: validate the environment, start the service, stop cleanly on
 * SIGTERM/SIGINT.
 */
import { imageTag } from '../images/index.ts';
import { ConfigError, loadConfig } from './config.ts';
import { startService } from './service.ts';
import { exitOnSignals } from './shutdown.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }

  const service = await startService({ config, images: { node: await imageTag('node'), python: await imageTag('python') } });

  exitOnSignals(service, service.logger, config.SHUTDOWN_GRACE_MS);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
