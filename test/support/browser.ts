/**
 * A headless browser for the console's tests: Debian's chromium, driven by
 * playwright-core (which never downloads a browser of its own). `npm test`
 * installs chromium (scripts/chromium.sh); without it a local run skips
 * loudly, and under CI the missing browser is a failure.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI === 'true') throw new Error(`chromium required under CI at ${CHROMIUM_PATH}: \`npm test\` installs it (scripts/chromium.sh install)`);
  console.warn(`\n*** ${CHROMIUM_PATH} missing: SKIPPING browser tests (run \`bash scripts/chromium.sh install\`) ***\n`);
  return false;
}

export interface TestBrowser extends AsyncDisposable {
  context: BrowserContext;
}

/** A fresh profile each time: nothing from an earlier run (cache, storage) can make a test pass. */
export async function launchBrowser(viewport = { width: 1280, height: 800 }): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return {
    context,
    async [Symbol.asyncDispose]() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
