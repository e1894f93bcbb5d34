/**
 * After the whole run: no sandbox container may be left on the engine. Under
 * CI this is a failure; locally it is a warning, since another run may be
 * going on beside this one.
 */
import { ContainerClient, LABEL_MANAGED } from '../executor/index.ts';

export default function setup(): () => Promise<void> {
  return async () => {
    let left: string[];
    try {
      left = await new ContainerClient().listLabelled({ [LABEL_MANAGED]: 'true' });
    } catch {
      return; // no engine: the integration tests said so already
    }
    if (left.length === 0) return;
    const message = `${left.length} sandbox container(s) left after the test run: ${left.map((id) => id.slice(0, 12)).join(', ')}`;
    if (process.env.CI === 'true') throw new Error(message);
    console.warn(`warning: ${message}`);
  };
}
