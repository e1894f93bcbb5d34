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

  // A signal that arrives while the service starts is held, then acted on
  // once there is a service to stop (the default action would skip cleanup).
  let held: NodeJS.Signals | undefined;
  const hold = (signal: NodeJS.Signals) => {
    held ??= signal;
  };
  process.on('SIGTERM', hold);
  process.on('SIGINT', hold);
  const service = await startService({ config, images: { node: await imageTag('node'), python: await imageTag('python') } });
  process.off('SIGTERM', hold);
  process.off('SIGINT', hold);

  exitOnSignals(service, service.logger, config.SHUTDOWN_GRACE_MS);
  if (held !== undefined) process.kill(process.pid, held);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
