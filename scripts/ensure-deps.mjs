// Installs dependencies when node_modules is missing or older than the lockfile,
// so `npm start` and `npm test` work on a fresh clone.
import { existsSync, statSync } from 'node:fs';
import { execSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync('package-lock.json').mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error('[setup] installing npm dependencies…');
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}
