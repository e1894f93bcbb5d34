import { rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { aptMirror } from './apt-source.ts';
import { stageBaseFiles } from './base-files.ts';
import { debootstrapTree } from './debootstrap.ts';
import { importRootfs } from './docker-import.ts';
import { inputsHash } from './inputs-hash.ts';
import { withLock } from './lock.ts';
import { stepper } from './progress.ts';
import type { BuildLog } from './progress.ts';
import type { ImageRecipe } from './recipe.ts';
import { freshDir } from './rootfs.ts';

/** Label carrying the full inputs hash, so a tag can be traced to what made it. */
export const INPUTS_LABEL = 'sandbox.image.inputs';
const TAG_HASH_LENGTH = 12;
/** Superseded images of a repository kept after a build (another checkout may still run one). */
export const SUPERSEDED_KEPT = 2;

export async function recipeTag(recipe: ImageRecipe): Promise<string> {
  return `${recipe.repository}:${(await inputsHash(recipe)).slice(0, TAG_HASH_LENGTH)}`;
}

export async function imageExists(docker: Docker, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

export interface BuildOptions {
  docker: Docker;
  log: BuildLog;
  cacheDir: string;
}

/**
 * Builds the recipe's image offline unless its tag already exists: a Debian
 * tree from the configured mirror (cached), the recipe's files staged on top
 * of the shared base files, then one `docker import` of the stage.
 */
export async function buildImage(recipe: ImageRecipe, { docker, log, cacheDir }: BuildOptions): Promise<{ tag: string; built: boolean }> {
  const hash = await inputsHash(recipe);
  const tag = `${recipe.repository}:${hash.slice(0, TAG_HASH_LENGTH)}`;
  if (await imageExists(docker, tag)) return { tag, built: false };
  return withLock(
    join(cacheDir, 'build.lock'),
    async () => {
      // Another process may have built it while we waited for the lock.
      if (await imageExists(docker, tag)) return { tag, built: false };
      return build(recipe, { docker, log, cacheDir }, hash, tag);
    },
    () => log(`[images] ${tag}: waiting for another build to finish`),
  );
}

async function build(recipe: ImageRecipe, { docker, log, cacheDir }: BuildOptions, hash: string, tag: string): Promise<{ tag: string; built: boolean }> {
  const { step, total } = stepper(log, `[images] ${tag}:`);
  const { suite, variant, packages } = recipe.debian;
  const mirror = await aptMirror(suite);
  const tree = await step(`debian ${suite} (${variant}) from ${mirror}`, async () => {
    const made = await debootstrapTree({ suite, variant, packages, mirror }, cacheDir);
    if (made.cached) log(`[images] ${tag}: debian tree cached at ${made.dir}`);
    return made.dir;
  });
  const stage = join(cacheDir, 'stage', hash);
  try {
    await freshDir(stage);
    await step('base files', () => stageBaseFiles(tree, stage, recipe.user));
    await recipe.populate({ tree, stage, cacheDir, step });
    const changes = [...recipe.changes, `LABEL ${INPUTS_LABEL}=${hash}`];
    await step('docker import', () => importRootfs(docker, { rootfs: stage, tag, changes }));
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rmdir(dirname(stage)).catch(() => {}); // only when no other build is staging
  }
  log(`[images] ${tag}: built in ${total()}`);
  await pruneSuperseded(docker, recipe.repository, tag, SUPERSEDED_KEPT, log);
  return { tag, built: true };
}

/**
 * Every change of inputs makes a new tag, so without this each one would
 * leave a 100 MB image behind. Removes all but the `keep` newest other tags
 * of `repository` that this build system made (they carry INPUTS_LABEL).
 * One a container still uses stays: the engine refuses, and that is fine.
 */
export async function pruneSuperseded(docker: Docker, repository: string, current: string, keep: number, log: BuildLog): Promise<string[]> {
  const images = await docker.listImages({ filters: { reference: [repository], label: [INPUTS_LABEL] } });
  const superseded = images
    .flatMap((image) => (image.RepoTags ?? []).map((tag) => ({ tag, created: image.Created })))
    .filter(({ tag }) => tag !== current && tag.startsWith(`${repository}:`))
    .sort((a, b) => b.created - a.created || b.tag.localeCompare(a.tag))
    .slice(keep);
  const removed: string[] = [];
  for (const { tag } of superseded) {
    try {
      await docker.getImage(tag).remove();
      removed.push(tag);
      log(`[images] removed superseded ${tag}`);
    } catch (err) {
      log(`[images] kept superseded ${tag} (${(err as Error).message})`);
    }
  }
  return removed;
}
