import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importGuards } from './import-guards.js';

/** A small tree shaped like the repository's: two folders with front doors, one cycle, one bypass. */
const FIXTURES: Record<string, string> = {
  'policies/index.ts': "export { matches } from './matcher.ts';\n",
  'policies/matcher.ts': 'export const matches = (host: string): boolean => host.length > 0;\n',
  'executor/front-door.ts': "import { matches } from '../policies/index.ts';\nexport const viaFrontDoor = matches('a');\n",
  'executor/bypass.ts': "import { matches } from '../policies/matcher.ts';\nexport const viaInnerFile = matches('a');\n",
  'executor/bypass.test.ts': "import { matches } from '../policies/matcher.ts';\nexport const fromATest = matches('a');\n",
  'egress-proxy/index.ts': "export { first } from './first.ts';\n",
  'egress-proxy/first.ts': "import { second } from './second.ts';\nexport const first = (): number => second() + 1;\n",
  'egress-proxy/second.ts': "import { first } from './first.ts';\nexport const second = (): number => (Math.random() > 2 ? first() : 0);\n",
};

let root: string;
let eslint: ESLint;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'import-guards-'));
  for (const [file, text] of Object.entries(FIXTURES)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...importGuards({ root })],
  });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function problemsOf(file: string): Promise<{ rule: string | null; message: string }[]> {
  const [result] = await eslint.lintFiles([file]);
  return (result?.messages ?? []).map((m) => ({ rule: m.ruleId, message: m.message }));
}

describe('import guards', () => {
  it('fail an import that bypasses another folder\'s index.ts', async () => {
    expect(await problemsOf('executor/bypass.ts')).toEqual([
      { rule: 'import-x/no-restricted-paths', message: expect.stringContaining('policies/index.ts') },
    ]);
  });

  it('pass the same import through the front door, or from a test', async () => {
    expect(await problemsOf('executor/front-door.ts')).toEqual([]);
    expect(await problemsOf('executor/bypass.test.ts')).toEqual([]);
  });

  it('fail both ends of an import cycle', async () => {
    expect(await problemsOf('egress-proxy/first.ts')).toEqual([{ rule: 'import-x/no-cycle', message: expect.any(String) }]);
    expect(await problemsOf('egress-proxy/second.ts')).toEqual([{ rule: 'import-x/no-cycle', message: expect.any(String) }]);
  });

  it('are on in the repository\'s own lint configuration', async () => {
    const repo = new ESLint({ cwd: path.resolve(import.meta.dirname, '..') });
    const config = (await repo.calculateConfigForFile('executor/executor.ts')) as { rules: Record<string, unknown> };
    expect(config.rules['import-x/no-cycle']).toEqual([2]);
    expect(config.rules['import-x/no-restricted-paths']).toEqual([2, expect.objectContaining({ zones: expect.any(Array) })]);
  });
});
