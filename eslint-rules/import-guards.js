/**
 * Import guards (DESIGN §2), one place for both the repository's lint and the
 * test that proves they bite:
 *
 * - no import cycles (import-x/no-cycle). It follows value imports only: a
 *   cycle made of `import type` alone costs nothing at run time; `npx madge
 *   --circular --extensions ts .` also reports those.
 * - other folders enter a folder through its front door, `index.ts`
 *   (import-x/no-restricted-paths). server/ has none: it is the top layer and
 *   no production folder imports it. Tests (`*.test.ts`, test/, bench/) may
 *   reach inner files, since some must (a service's config loader, an image
 *   recipe's helpers).
 */
import { createNodeResolver, importX } from 'eslint-plugin-import-x';

/** Folders with a front door. */
export const FRONT_DOOR_FOLDERS = ['policies', 'egress-proxy', 'executor', 'images', 'service-kit'];
/** Folders of the product, whose files the front-door rule applies to. */
export const PRODUCTION_FOLDERS = [...FRONT_DOOR_FOLDERS, 'server'];

/**
 * @param {{ root: string, frontDoorFolders?: string[], productionFolders?: string[] }} options
 * @returns {import('eslint').Linter.Config[]}
 */
export function importGuards({ root, frontDoorFolders = FRONT_DOOR_FOLDERS, productionFolders = PRODUCTION_FOLDERS }) {
  return [
    {
      files: ['**/*.ts'],
      plugins: { 'import-x': importX },
      settings: {
        // Without these, import-x treats .ts files as foreign and follows none of their imports.
        'import-x/extensions': ['.ts', '.js'],
        'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
        'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
      },
      rules: { 'import-x/no-cycle': 'error' },
    },
    {
      files: productionFolders.map((folder) => `${folder}/**/*.ts`),
      ignores: ['**/*.test.ts'],
      rules: {
        'import-x/no-restricted-paths': ['error', {
          basePath: root,
          zones: frontDoorFolders.map((folder) => ({
            target: productionFolders.filter((other) => other !== folder),
            from: folder,
            except: ['./index.ts'],
            message: `Other folders import ${folder}/ through its front door, ${folder}/index.ts.`,
          })),
        }],
      },
    },
  ];
}
