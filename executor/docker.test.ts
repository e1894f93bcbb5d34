import { describe, expect, it } from 'vitest';
import { removeContainer } from './docker.ts';

function apiError(statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode });
}

/** A container whose remove() answers with the given outcomes in turn. */
function containerAnswering(...outcomes: Array<'ok' | Error>) {
  const calls: Array<{ force: boolean; v: boolean }> = [];
  return {
    calls,
    remove(options: { force: boolean; v: boolean }): Promise<void> {
      calls.push(options);
      const outcome = outcomes[Math.min(calls.length, outcomes.length) - 1];
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve();
    },
  };
}

const EXITING = apiError(409, 'Could not kill running container abc, cannot remove - Container abc is not running');
const IN_PROGRESS = apiError(409, 'removal of container abc is already in progress');

describe('removeContainer', () => {
  it('asks again when the container was exiting as the forced kill arrived', async () => {
    const container = containerAnswering(EXITING, 'ok');
    await removeContainer(container);
    expect(container.calls).toEqual([
      { force: true, v: true },
      { force: true, v: true },
    ]);
  });

  it('waits out a removal already in progress until the engine no longer has the container', async () => {
    const container = containerAnswering(IN_PROGRESS, IN_PROGRESS, apiError(404, 'No such container: abc'));
    await removeContainer(container);
    expect(container.calls).toHaveLength(3);
  });

  it('counts a container that is already gone as removed', async () => {
    const container = containerAnswering(apiError(404, 'No such container: abc'));
    await removeContainer(container);
    expect(container.calls).toHaveLength(1);
  });

  it('gives up with the engine error when the conflict outlasts the retry window', async () => {
    const container = containerAnswering(EXITING);
    await expect(removeContainer(container, 100)).rejects.toThrow(/cannot remove/);
    expect(container.calls.length).toBeGreaterThan(1);
  });

  it('does not retry other engine errors', async () => {
    const container = containerAnswering(apiError(500, 'driver failed removing root filesystem'));
    await expect(removeContainer(container)).rejects.toThrow(/driver failed/);
    expect(container.calls).toHaveLength(1);
  });
});
