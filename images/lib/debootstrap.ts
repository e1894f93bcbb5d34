import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run, withSbin } from './exec.ts';

export interface DebootstrapSpec {
  suite: string;
  variant: string;
  /** Extra packages on top of the variant (debootstrap --include). */
  packages: readonly string[];
  mirror: string;
}

/** Cache directory name for a spec: the same suite, mirror and packages reuse one tree. */
export function debootstrapKey(spec: DebootstrapSpec): string {
  const canonical = JSON.stringify([spec.suite, spec.variant, [...spec.packages].sort(), spec.mirror]);
  return `${spec.suite}-${spec.variant}-${createHash('sha256').update(canonical).digest('hex').slice(0, 12)}`;
}

/**
 * A Debian userland to take files from, made once per spec and kept under
 * the cache. It is a quarry, not the image: only the few files the runtime
 * needs are copied out of it. Built beside its final name and renamed when
 * complete, so an interrupted run never leaves a half tree that looks done.
 */
export async function debootstrapTree(spec: DebootstrapSpec, cacheDir: string): Promise<{ dir: string; cached: boolean }> {
  const dir = join(cacheDir, 'debootstrap', debootstrapKey(spec));
  if (existsSync(join(dir, 'etc', 'os-release'))) return { dir, cached: true };
  if (process.getuid?.() !== 0) {
    throw new Error('building a sandbox image runs debootstrap and chroot, which need root (try: sudo npm run build:images)');
  }
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const args = [`--variant=${spec.variant}`];
  if (spec.packages.length > 0) args.push(`--include=${spec.packages.join(',')}`);
  args.push(spec.suite, partial, spec.mirror);
  await run('debootstrap', args, { env: withSbin() });
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return { dir, cached: false };
}
