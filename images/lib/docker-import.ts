import { spawn } from 'node:child_process';
import type Docker from 'dockerode';

export interface ImportSpec {
  /** Staging directory that becomes the image's root file system. */
  rootfs: string;
  /** `repository:tag`. */
  tag: string;
  /** Dockerfile-style instructions applied on import (USER, ENV, ENTRYPOINT…). */
  changes: readonly string[];
}

/**
 * Turns a directory into a one-layer image without a Dockerfile or a base
 * image: `tar` streams it straight into the engine's import endpoint.
 * Owners are forced to root and times and order fixed, so the same inputs
 * give the same layer.
 */
export async function importRootfs(docker: Docker, spec: ImportSpec): Promise<void> {
  const tar = spawn('tar', ['-C', spec.rootfs, '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=@0', '-cf', '-', '.'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: Buffer[] = [];
  tar.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const tarDone = new Promise<void>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`tar of ${spec.rootfs} failed (exit status ${String(code)}): ${Buffer.concat(stderr).toString().trim()}`));
    });
  });
  tarDone.catch(() => {}); // awaited below; this only stops an early failure counting as unhandled
  const colon = spec.tag.lastIndexOf(':');
  const response = await docker.importImage(tar.stdout, {
    repo: spec.tag.slice(0, colon),
    tag: spec.tag.slice(colon + 1),
    changes: [...spec.changes],
  });
  // The engine reports failures inside the 200 progress stream, not as a status.
  const events = await new Promise<{ error?: string; errorDetail?: { message?: string } }[]>((resolve, reject) => {
    docker.modem.followProgress(response, (err: Error | null, output: { error?: string }[]) => (err ? reject(err) : resolve(output)));
  });
  try {
    await tarDone;
  } catch (err) {
    // The engine tagged whatever part of the stream it got; never leave that behind.
    await docker.getImage(spec.tag).remove({ force: true }).catch(() => {});
    throw err;
  }
  const failed = events.find((e) => e.error ?? e.errorDetail);
  if (failed) throw new Error(`docker import ${spec.tag}: ${failed.error ?? failed.errorDetail?.message ?? 'failed'}`);
}
