/**
 * Runs an image's agent under the executor's own container spec (the same
 * lockdown every sandbox gets, every tool hidden), without the server: one
 * input written to stdin verbatim, the exit status and both streams
 * collected, the container and its egress directory removed afterwards.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testIsolation } from './service.ts';
import {
  DEFAULT_LIMITS,
  DockerStreamDemuxer,
  sandboxContainerSpec,
  toolMasks,
  toolsFromLabels,
  type ContainerClient,
  type Isolation,
  type OutputSink,
} from '../../executor/index.ts';

export interface LockedRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LockedRunOptions {
  /** Mounted as the sandbox's egress directory; default: a fresh empty one (no route out). */
  egressDir?: string;
  /** Awaited after the container starts and before the input is written (e.g. until the program waits, as in a pooled sandbox). */
  beforeInput?: (containerId: string) => Promise<void>;
  /** Default: the suites' tier (testIsolation). */
  isolation?: Isolation;
}

class Collected implements OutputSink {
  readonly chunks: Buffer[] = [];

  write(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk));
  }

  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

export async function runLocked(client: ContainerClient, image: string, input: string, options: LockedRunOptions = {}): Promise<LockedRun> {
  const sandboxId = randomUUID().replace(/-/g, '').slice(0, 16);
  const scratch = options.egressDir === undefined ? await mkdtemp(join(tmpdir(), 'locked-egress-')) : undefined;
  // The sandbox user must be able to look inside, as in the executor's own directories.
  if (scratch !== undefined) await chmod(scratch, 0o755);
  const spec = sandboxContainerSpec({
    image,
    sandboxId,
    egressDir: options.egressDir ?? scratch!,
    labels: { 'sandbox.test': 'images' },
    masks: toolMasks(toolsFromLabels(image, await client.imageLabels(image)), []),
    limits: DEFAULT_LIMITS,
    isolation: options.isolation ?? testIsolation(),
  });
  const container = await client.create(spec);
  try {
    const stream = await container.attach();
    const stdout = new Collected();
    const stderr = new Collected();
    const demuxer = new DockerStreamDemuxer(stdout, stderr);
    stream.on('data', (chunk: Buffer) => demuxer.push(chunk));
    const ended = once(stream, 'end');
    await container.start();
    await options.beforeInput?.(container.id);
    stream.end(input);
    await container.wait();
    await ended;
    const { statusCode } = await container.inspectExit();
    return { code: statusCode, stdout: stdout.text(), stderr: stderr.text() };
  } finally {
    await container.remove();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}
