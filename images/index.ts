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
import { RUNTIMES, SANDBOX_RUNTIMES, type Runtime } from './runtimes.ts';

export type { BuildLog };
export { INPUTS_LABEL };
export { STANDARD_TOOLS, TOOLS_DIR, TOOLS_DIR_LABEL, TOOLS_LABEL } from './lib/tools.ts';
export { NPM_CLI } from './node/recipe.ts';
export { PYTHON_COMMAND } from './python/recipe.ts';

export { LANGUAGES, RUNTIMES, runtimeForLanguage, SANDBOX_RUNTIMES } from './runtimes.ts';
export type { Runtime, RuntimeDefinition } from './runtimes.ts';

/** Default home of the debootstrap trees and downloads: `.cache/images` at the repository root. */
export const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../.cache/images', import.meta.url));

/** Full sha256 of the image's inputs (the tag carries its first 12 hex digits). */
export function imageInputsHash(runtime: Runtime): Promise<string> {
  return inputsHash(SANDBOX_RUNTIMES[runtime].recipe);
}

/** The tag the sandbox for `runtime` runs, e.g. `sandbox-node:3f2a9c01b7de`. */
export function imageTag(runtime: Runtime): Promise<string> {
  return recipeTag(SANDBOX_RUNTIMES[runtime].recipe);
}

/** The tag of every runtime's image: what the executor runs. */
export async function imageTags(): Promise<Record<Runtime, string>> {
  const tags = await Promise.all(RUNTIMES.map(async (runtime) => [runtime, await imageTag(runtime)] as const));
  return Object.fromEntries(tags) as Record<Runtime, string>;
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
  const build = buildImage(SANDBOX_RUNTIMES[runtime].recipe, {
    docker: options.docker ?? new Docker(),
    log: options.log ?? (() => {}),
    cacheDir: options.cacheDir ?? DEFAULT_CACHE_DIR,
  }).finally(() => inFlight.delete(runtime));
  inFlight.set(runtime, build);
  return build;
}
