import tseslint from 'typescript-eslint';
import { importGuards } from './eslint-rules/import-guards.js';

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'console/dist/**', '.cache/**', 'coverage/**', 'bench/results/**', 'images/*/agent/**', 'bin/**', 'scripts/**/*.mjs', 'egress-proxy/metadata-worker.mjs', 'scripts/**/*.sh', 'eslint.config.js', 'eslint-rules/**/*.js', 'eslint-rules/**/*.d.ts'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Imports point one way (DESIGN.md §2): lower layers never reach up.
      'no-restricted-imports': 'off',
    },
  },
  // No import cycles; other folders enter a folder through its index.ts.
  ...importGuards({ root: import.meta.dirname }),
  {
    files: ['policies/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/egress-proxy/**', '**/executor/**', '**/server/**', '**/service-kit/**', 'express', 'dockerode'], message: 'policies/ is pure: it imports nothing of ours.' },
      ] }],
    },
  },
  {
    files: ['egress-proxy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/executor/**', '**/server/**', 'express', 'dockerode'], message: 'egress-proxy/ may import only policies/ and service-kit/.' },
      ] }],
    },
  },
  {
    files: ['executor/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/egress-proxy/**', '**/server/**', '**/service-kit/**', 'express'], message: 'executor/ may import only policies/ types.' },
      ] }],
    },
  },
  {
    // The bottom layer every service entry point stands on (the API and the proxy service): env loading and runMain.
    files: ['service-kit/**/*.ts'],
    ignores: ['service-kit/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/policies/**', '**/egress-proxy/**', '**/executor/**', '**/server/**', '**/images/**', 'express', 'dockerode'], message: 'service-kit/ imports nothing of ours.' },
      ] }],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Response bodies under test are JSON of whatever shape the service sent.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
