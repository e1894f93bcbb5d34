/**
 * The runtime registry: every runtime a request may ask for, in one table.
 * An entry names the runtime, the `language` values that select it, the
 * recipe of its sandbox image, and the package ecosystem its image installs
 * from. The server derives the request schema, the image map, the warm pool
 * and the package check from it, so adding a runtime is one entry here (and
 * its recipe folder).
 *
 * It lives in images/ because the recipe is the one fact only images/ may
 * hold, and images/ imports nothing of ours: the ecosystem is spelled as
 * policies/ spells it, and the server fails to compile if the two drift.
 * The registry host of an ecosystem is the operator's (NPM_REGISTRY_HOST,
 * PYPI_HOSTS) and shared by every runtime of that ecosystem, so the server
 * looks it up by the entry's ecosystem.
 */
import type { ImageRecipe } from './lib/recipe.ts';
import { nodeRecipe } from './node/recipe.ts';
import { pythonRecipe } from './python/recipe.ts';

export interface RuntimeDefinition {
  /** What a request's `language` may say (compared case-insensitively); the first is the runtime's name for people. */
  languages: readonly string[];
  recipe: ImageRecipe;
  /** The registry its image installs packages from; absent when it cannot install any. */
  ecosystem?: 'npm' | 'pypi';
}

const TABLE = {
  node: { languages: ['javascript', 'js', 'node'], recipe: nodeRecipe, ecosystem: 'npm' },
  python: { languages: ['python', 'py'], recipe: pythonRecipe, ecosystem: 'pypi' },
} as const satisfies Record<string, RuntimeDefinition>;

export type Runtime = keyof typeof TABLE;

export const SANDBOX_RUNTIMES: Readonly<Record<Runtime, RuntimeDefinition>> = TABLE;

export const RUNTIMES = Object.keys(TABLE) as readonly Runtime[];

const BY_LANGUAGE: ReadonlyMap<string, Runtime> = new Map(
  RUNTIMES.flatMap((runtime) => SANDBOX_RUNTIMES[runtime].languages.map((language) => [language, runtime] as const)),
);

/** Every `language` value a request may use, in table order. */
export const LANGUAGES: readonly string[] = [...BY_LANGUAGE.keys()];

/** The runtime a request's `language` selects, or undefined when none does. */
export function runtimeForLanguage(language: string): Runtime | undefined {
  return BY_LANGUAGE.get(language.toLowerCase());
}
