/**
 * Sandbox images: which tag each runtime should run, and building it when it
 * is missing. The tag is a hash of everything the image is made from, so the
 * server and executor can compute the expected tag without Docker and
 * `/readyz` can ask whether exactly that image is present.
 */
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { buildImage, imageExists, INPUTS_LABEL, recipeTag } from './lib/build-image.ts';
import { inputsHash } from './lib/inputs-hash.ts';
import type { BuildLog } from './lib/progress.ts';
import type { ImageRecipe } from './lib/recipe.ts';
import { nodeRecipe } from './node/recipe.ts';
import { pythonRecipe } from './python/recipe.ts';

export type { BuildLog };
export { INPUTS_LABEL };
export { STANDARD_TOOLS, TOOLS_DIR, TOOLS_DIR_LABEL, TOOLS_LABEL } from './lib/tools.ts';
export { NPM_CLI } from './node/recipe.ts';
export { PYTHON_COMMAND } from './python/recipe.ts';

export type Runtime = 'node' | 'python';

const RECIPES: Readonly<Record<Runtime, ImageRecipe>> = { node: nodeRecipe, python: pythonRecipe };

export const RUNTIMES: readonly Runtime[] = ['node', 'python'];

/** Default home of the debootstrap trees and downloads: `.cache/images` at the repository root. */
export const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../.cache/images', import.meta.url));

/** Full sha256 of the image's inputs (the tag carries its first 12 hex digits). */
export function imageInputsHash(runtime: Runtime): Promise<string> {
  return inputsHash(RECIPES[runtime]);
}

/** The tag the sandbox for `runtime` runs, e.g. `sandbox-node:3f2a9c01b7de`. */
export function imageTag(runtime: Runtime): Promise<string> {
  return recipeTag(RECIPES[runtime]);
}

/** Whether the expected image for `runtime` is in the engine. */
export async function imagePresent(runtime: Runtime, docker: Docker = new Docker()): Promise<boolean> {
  return imageExists(docker, await imageTag(runtime));
}

export interface EnsureImageOptions {
  /** Progress lines of a build; nothing is logged when the image exists. */
  log?: BuildLog;
  docker?: Docker;
  cacheDir?: string;
}

const inFlight = new Map<Runtime, Promise<{ tag: string; built: boolean }>>();

/**
 * Makes sure the image for `runtime` exists, building it offline if not
 * (needs root: debootstrap and chroot). Concurrent callers share one build.
 */
export function ensureImage(runtime: Runtime, options: EnsureImageOptions = {}): Promise<{ tag: string; built: boolean }> {
  const running = inFlight.get(runtime);
  if (running) return running;
  const build = buildImage(RECIPES[runtime], {
    docker: options.docker ?? new Docker(),
    log: options.log ?? (() => {}),
    cacheDir: options.cacheDir ?? DEFAULT_CACHE_DIR,
  }).finally(() => inFlight.delete(runtime));
  inFlight.set(runtime, build);
  return build;
}
