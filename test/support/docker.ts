/**
 * Integration tests need a real Docker engine and the sandbox images. Without
 * them a local run skips loudly; under CI a missing engine is a failure.
 */
import { DockerContainerClient } from '../../executor/index.ts';

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
