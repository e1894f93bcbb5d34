import type { SandboxUser } from './base-files.ts';

/** What a recipe's `populate` gets to work with. */
export interface StageContext {
  /** The debootstrap tree to take files from (read it, never change it). */
  tree: string;
  /** The image's root file system being assembled. */
  stage: string;
  /** Where downloads may be cached between builds. */
  cacheDir: string;
  step: <T>(name: string, work: () => Promise<T>) => Promise<T>;
}

/** Everything that defines one sandbox image. */
export interface ImageRecipe {
  /** Image repository; the tag is a hash of the inputs. */
  repository: string;
  debian: { suite: string; variant: string; packages: readonly string[] };
  user: SandboxUser;
  /** Files (absolute paths) whose content is part of the image, e.g. the agent and the recipe itself. */
  inputFiles: readonly string[];
  /** Other values the image depends on, spelled out so they show in the hash input. */
  inputs: Readonly<Record<string, string>>;
  /** Dockerfile-style instructions applied when importing the root file system. */
  changes: readonly string[];
  /** Adds the runtime-specific files (interpreter, libraries, agent) to the stage. */
  populate: (ctx: StageContext) => Promise<void>;
}
