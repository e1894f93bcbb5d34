import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageRecipe } from './recipe.ts';

const LIB_DIR = fileURLToPath(new URL('.', import.meta.url));
const IMAGES_DIR = fileURLToPath(new URL('..', import.meta.url));

/**
 * Hash of everything an image is made from: the recipe's values and files
 * plus the build code itself. It names the image tag, so a changed agent or
 * build step yields a new tag and an unchanged one is never rebuilt. The apt
 * mirror is left out on purpose: any mirror of the suite gives the same image.
 */
export async function inputsHash(recipe: ImageRecipe): Promise<string> {
  const libFiles = (await readdir(LIB_DIR)).filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts')).map((n) => join(LIB_DIR, n));
  const files = [...new Set([...recipe.inputFiles, ...libFiles])].sort();
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ repository: recipe.repository, debian: recipe.debian, user: recipe.user, inputs: recipe.inputs, changes: recipe.changes }));
  for (const file of files) {
    const content = await readFile(file);
    // Paths relative to images/ so the hash does not depend on where the repository is checked out.
    hash.update(`\0${relative(IMAGES_DIR, file)}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}
