/**
 * Before the run: the sandbox images must be there (`npm test` builds them
 * first); without one, tests that wait for a full warm pool would wait for
 * good, so say what is missing at once instead.
 *
 * After the whole run: no sandbox container this run made may be left on the
 * engine. Containers that were already there when the run began (another
 * run beside this one, or an earlier crash) are not this run's to answer
 * for. Under CI a leftover is a failure; locally it is a warning.
 */
import { DockerContainerClient, LABEL_MANAGED } from '../executor/index.ts';
import { imagePresent, imageTag, RUNTIMES } from '../images/index.ts';

async function managedContainers(): Promise<string[] | null> {
  try {
    return await new DockerContainerClient().listLabelled({ [LABEL_MANAGED]: 'true' });
  } catch {
    return null; // no engine: the integration tests say so themselves
  }
}

async function missingImages(): Promise<string[]> {
  const missing: string[] = [];
  for (const runtime of RUNTIMES) {
    if (!(await imagePresent(runtime))) missing.push(await imageTag(runtime));
  }
  return missing;
}

export default async function setup(): Promise<() => Promise<void>> {
  const found = await managedContainers();
  if (found !== null) {
    const missing = await missingImages();
    if (missing.length > 0) throw new Error(`sandbox image(s) ${missing.join(', ')} missing: \`npm test\` builds them first, or run \`npm run setup\``);
  }
  const before = new Set(found ?? []);
  return async () => {
    const left = ((await managedContainers()) ?? []).filter((id) => !before.has(id));
    if (left.length === 0) return;
    const message = `${left.length} sandbox container(s) left after the test run: ${left.map((id) => id.slice(0, 12)).join(', ')}`;
    if (process.env.CI === 'true') throw new Error(message);
    console.warn(`warning: ${message}`);
  };
}
