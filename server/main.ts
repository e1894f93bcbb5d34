/**
 * `npm start`: validate the environment, start the service, stop cleanly on
 * SIGTERM/SIGINT (running executions get SHUTDOWN_GRACE_MS to finish).
 */
import { imageTags } from '../images/index.ts';
import { runMain } from '../service-kit/index.ts';
import { loadConfig } from './config.ts';
import { startService } from './service.ts';

await runMain(async () => {
  const config = loadConfig();
  const service = await startService({ config, images: await imageTags() });
  return { service, logger: service.logger, graceMs: config.SHUTDOWN_GRACE_MS };
});
