/**
 * Runs an image's agent the way the executor does, without the server: a
 * locked-down container (every tool hidden), one input written to stdin
 * verbatim, the exit status and both streams collected.
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { STANDARD_TOOLS, TOOLS_DIR } from '../../images/index.ts';

export interface LockedRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `inputDelayMs`: how long the agent waits for its input after the container starts (as in a pooled sandbox). */
export async function runLocked(docker: Docker, image: string, input: string, binds: string[] = [], inputDelayMs = 0): Promise<LockedRun> {
  const container = await docker.createContainer({
    Image: image,
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Labels: { 'sandbox.test': 'images' },
    HostConfig: {
      Init: true,
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      Tmpfs: {
        '/tmp': 'rw,noexec,nosuid,size=64m',
        ...Object.fromEntries(STANDARD_TOOLS.map((t) => [`${TOOLS_DIR}/${t.name}`, 'ro,noexec,size=4k'])),
      },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Binds: binds,
    },
  });
  try {
    const stream = await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (c: Buffer) => out.push(c));
    stderr.on('data', (c: Buffer) => err.push(c));
    docker.modem.demuxStream(stream, stdout, stderr);
    const ended = once(stream, 'end');
    await container.start();
    if (inputDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, inputDelayMs));
    stream.end(input);
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    await ended;
    return { code: StatusCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  } finally {
    await container.remove({ force: true });
  }
}
