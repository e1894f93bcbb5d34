import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, withSbin } from '../lib/exec.ts';
import type { ImageRecipe } from '../lib/recipe.ts';
import { copyDirFromTree, copyFromTree, makeDirs, placeLink, sharedLibraries } from '../lib/rootfs.ts';
import { STANDARD_TOOL_PACKAGES, STANDARD_TOOLS, stageTools, toolsLabel } from '../lib/tools.ts';

const AGENT_DIR = fileURLToPath(new URL('./agent/', import.meta.url));
const AGENT_FILES = ['agent.py', 'prelude.py'];
const AGENT_PATH = '/opt/agent';

const PYTHON = '/usr/bin/python3.11';
const STDLIB = '/usr/lib/python3.11';
const DYNLOAD = `${STDLIB}/lib-dynload`;
/** Debian's packaged modules: pip, requests (with urllib3, idna, certifi), setuptools. */
const DIST_PACKAGES = '/usr/lib/python3/dist-packages';
/** The command the image runs; a link, so the interpreter finds its prefix through it. */
export const PYTHON_COMMAND = '/usr/local/bin/python3';

/**
 * Left out of the copy: byte code (recompiled below for the image's own
 * times), Debian's sitecustomize (a link into /etc the image does not
 * carry), and the PEP 668 marker, which exists to protect a system apt
 * manages; here the root is read-only and installs go to a target under /tmp.
 */
function skipped(relativePath: string): boolean {
  const name = posix.basename(relativePath);
  return name === '__pycache__' || relativePath === 'sitecustomize.py' || relativePath === 'EXTERNALLY-MANAGED';
}

/**
 * The Python sandbox: Debian bookworm's python3 with its standard library,
 * pip and requests, the shared libraries they load, the agent, and the
 * standard tools (hidden per container unless the policy allows them). No
 * shell and no coreutils outside the tools: nothing to execute but python.
 */
export const pythonRecipe: ImageRecipe = {
  repository: 'sandbox-python',
  debian: {
    suite: 'bookworm',
    variant: 'minbase',
    packages: ['ca-certificates', 'python3', 'python3-pip', 'python3-requests', ...STANDARD_TOOL_PACKAGES],
  },
  user: { name: 'sandbox', uid: 1000, gid: 1000 },
  inputFiles: [fileURLToPath(import.meta.url), ...AGENT_FILES.map((f) => join(AGENT_DIR, f))],
  inputs: { python: PYTHON },
  changes: [
    'USER 1000:1000',
    'WORKDIR /tmp',
    'ENV PATH=/usr/local/bin',
    // -I: the agent ignores PYTHON* variables and user site; -S: it needs no site packages.
    `ENTRYPOINT ["${PYTHON_COMMAND}","-I","-S","${AGENT_PATH}/agent.py"]`,
    'LABEL sandbox.image.runtime=python',
    toolsLabel(STANDARD_TOOLS),
  ],

  async populate({ tree, stage, step }) {
    await step('python and its libraries', async () => {
      await copyFromTree(tree, stage, PYTHON);
      await chmod(join(stage, PYTHON), 0o755);
      await placeLink(tree, stage, PYTHON_COMMAND, PYTHON);
      await placeLink(tree, stage, '/usr/local/bin/python', PYTHON);
      await copyDirFromTree(tree, stage, STDLIB, skipped);
      await copyDirFromTree(tree, stage, DIST_PACKAGES, skipped);
    });
    await step('shared libraries', async () => {
      const modules = (await readdir(join(tree, DYNLOAD))).filter((n) => n.endsWith('.so')).map((n) => `${DYNLOAD}/${n}`);
      const libraries = new Set<string>();
      for (const program of [PYTHON, ...modules]) for (const library of await sharedLibraries(tree, join(tree, program))) libraries.add(library);
      for (const library of libraries) await copyFromTree(tree, stage, library);
    });
    // Every agent file must be listed in AGENT_FILES (and so in the hash); refuse strays.
    const present = (await readdir(AGENT_DIR)).filter((n) => n !== '__pycache__').sort();
    if (present.join() !== [...AGENT_FILES].sort().join()) throw new Error(`images/python/agent holds ${present.join(', ')}; AGENT_FILES lists ${AGENT_FILES.join(', ')}`);
    await makeDirs(stage, [{ path: AGENT_PATH, mode: 0o755 }]);
    await mkdir(join(stage, AGENT_PATH), { recursive: true });
    for (const file of AGENT_FILES) {
      await copyFile(join(AGENT_DIR, file), join(stage, AGENT_PATH, file));
      await chmod(join(stage, AGENT_PATH, file), 0o644);
    }
    // The image's files all carry one fixed time, so byte code checked
    // against source times would be stale on every start and recompiled in
    // memory (the root is read-only); hash-stamped, unchecked byte code is
    // compiled once, here, by the image's own interpreter.
    await step('byte code', () =>
      run('chroot', [stage, PYTHON, '-I', '-m', 'compileall', '-q', '--invalidation-mode', 'unchecked-hash', STDLIB, DIST_PACKAGES], {
        env: withSbin({ PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }),
      }),
    );
    await step('tools', () => stageTools(tree, stage, STANDARD_TOOLS));
  },
};

