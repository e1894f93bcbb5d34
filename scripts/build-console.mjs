// Builds the administrator's console (console/ → console/dist) for `npm start`
// and `npm test`, only when its sources changed since the last build: the
// build's stamp is a hash of every source file and of the lockfile.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const consoleDir = join(root, 'console');
const stampFile = join(consoleDir, 'dist', '.source-hash');

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

const hash = createHash('sha256');
for (const path of [...files(consoleDir), join(root, 'package-lock.json')].sort()) {
  hash.update(relative(root, path)).update('\0').update(readFileSync(path)).update('\0');
}
const digest = hash.digest('hex');

if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === digest && existsSync(join(consoleDir, 'dist', 'index.html'))) process.exit(0);

let build;
try {
  ({ build } = await import('vite'));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  // An install without dev dependencies can still run the API; /admin/ui/ then says the console is not built.
  console.error('[setup] warning: vite is not installed (dev dependencies omitted?), so the console at /admin/ui/ is not built');
  process.exit(0);
}
console.error('[setup] building the console…');
await build({ configFile: join(consoleDir, 'vite.config.ts') });
writeFileSync(stampFile, digest);
