import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, sandboxContainerSpec } from './container-spec.ts';
import { DockerContainerClient, removeContainer } from './docker.ts';
import { ContainerEngineError, DockerUnavailableError, ImageMissingError } from './errors.ts';

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

describe('DockerContainerClient', () => {
  let dir: string;
  let engine: http.Server;
  let socketPath: string;

  // A stand-in engine on a Unix socket: no such image, a broken create, a list that fails.
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'engine-'));
    socketPath = join(dir, 'docker.sock');
    engine = http.createServer((req, res) => {
      const answer = (status: number, message: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));
      if (req.url?.includes('/images/')) answer(404, 'No such image: missing:1');
      else if (req.url?.includes('/containers/create')) answer(500, 'driver failed programming the container');
      else answer(503, 'engine is shutting down');
    });
    await new Promise<void>((resolve) => engine.listen(socketPath, resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => engine.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const spec = sandboxContainerSpec({ image: 'missing:1', sandboxId: 'abc', egressDir: '/nonexistent', labels: {}, masks: [], limits: DEFAULT_LIMITS });

  it('reports a missing image as ImageMissingError', async () => {
    await expect(new DockerContainerClient({ socketPath }).imageLabels('missing:1')).rejects.toBeInstanceOf(ImageMissingError);
    expect(await new DockerContainerClient({ socketPath }).hasImage('missing:1')).toBe(false);
  });

  it('reports any other engine answer as ContainerEngineError with its status', async () => {
    const client = new DockerContainerClient({ socketPath });
    await expect(client.create(spec)).rejects.toMatchObject({ name: 'ContainerEngineError', status: 500, code: 'CONTAINER_ENGINE' });
    const listed = await client.listLabelled({ a: 'b' }).catch((e: unknown) => e);
    expect(listed).toBeInstanceOf(ContainerEngineError);
    expect(listed).toMatchObject({ status: 503 });
  });

  it('reports an engine that is not there as DockerUnavailableError, whatever was asked', async () => {
    const gone = new DockerContainerClient({ socketPath: join(dir, 'nothing-here.sock') });
    await expect(gone.ping()).rejects.toBeInstanceOf(DockerUnavailableError);
    await expect(gone.create(spec)).rejects.toBeInstanceOf(DockerUnavailableError);
    await expect(gone.listLabelled({ a: 'b' })).rejects.toBeInstanceOf(DockerUnavailableError);
    await expect(gone.removeLabelled({ a: 'b' })).rejects.toBeInstanceOf(DockerUnavailableError);
  });
});
