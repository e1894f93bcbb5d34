/**
 * Integration tests need a real Docker engine and the sandbox images. Without
 * them a local run skips loudly; under CI a missing engine is a failure.
 *
 *   describeWithDocker('the warm pool', () => { … });
 *   itWithDocker('runs code for a valid token', async () => { … });
 */
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerContainerClient } from '../../executor/index.ts';
import { eventually } from './eventually.ts';

export async function dockerAvailable(): Promise<boolean> {
  try {
    await new DockerContainerClient().ping();
    return true;
  } catch (error) {
    if (process.env.CI === 'true') {
      throw new Error(`Docker engine required under CI: ${error instanceof Error ? error.message : String(error)}`);
    }
    console.warn('\n*** Docker engine unreachable: SKIPPING integration tests (run `npm test` to set it up) ***\n');
    return false;
  }
}

/** Whether the engine answered; asked once per test file. */
const hasDocker = await dockerAvailable();

/** A `describe` that needs the engine: skipped loudly without one locally, a failure under CI. */
export const describeWithDocker = describe.skipIf(!hasDocker);

/** The same for one test in a file whose other tests need no engine. */
export const itWithDocker = it.skipIf(!hasDocker);

/**
 * Resolves once the agent in the container has started the program's
 * interpreter ahead of its job (the process running the agent's prelude).
 * Listing a container's processes is a test's need, not the executor's,
 * so this asks the engine through dockerode directly.
 */
export async function untilProgramWaits(containerId: string): Promise<void> {
  const container = new Docker().getContainer(containerId);
  const runsPrelude = (columns: string[]) => /\/prelude\.(js|py)\b/u.test(columns.at(-1) ?? '');
  const waiting = await eventually(async () => ((await container.top()) as { Processes?: string[][] }).Processes?.some(runsPrelude) ?? false);
  expect(waiting, `no program waiting in container ${containerId.slice(0, 12)}`).toBe(true);
}
