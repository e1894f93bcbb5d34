/**
 * The administrator's console in a real browser (Debian's chromium) against
 * the real service: the engine, the proxy and the audit store, with the
 * seed's four scenarios run through the API first. Each page is saved as a
 * screenshot under .data/screenshots/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, type TestBrowser } from './support/browser.ts';
import { dockerAvailable } from './support/docker.ts';
import { eventually } from './support/eventually.ts';
import { SEED_POLICY_HASH } from './support/seed-expectations.ts';
import { SEED_USER, startSeedWorld, type SeedWorld } from './support/seed-world.ts';
import { startTestService, type TestService } from './support/service.ts';

const ready = (await dockerAvailable()) && chromiumAvailable();
const ADMIN_TOKEN = 'console-admin-token-0123456789';
const SCREENSHOTS = fileURLToPath(new URL('../.data/screenshots/', import.meta.url));

const SCENARIOS = {
  stripeGet: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
  oktaDelete: 'const https = require("https"); https.request({ hostname: "dev-123.okta.com", path: "/api/v1/users/123", method: "DELETE" }, r => console.log(r.statusCode)).end();',
  githubGet: 'const https = require("https"); https.get("https://api.github.com/users/github", r => console.log(r.statusCode));',
};

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

describe.skipIf(!ready)('the administrator console', () => {
  let world: SeedWorld;
  let browser: TestBrowser;
  let page: Page;
  const ids: Record<string, string> = {};
  const requests: Array<{ url: string; authorization: string | undefined }> = [];
  const violations: string[] = [];

  beforeAll(async () => {
    // The service serves console/dist; build it when its sources changed (npm test does this in pretest too).
    execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build-console.mjs', import.meta.url))], { stdio: 'inherit' });
    mkdirSync(SCREENSHOTS, { recursive: true });
    world = await startSeedWorld({ ADMIN_TOKEN, AUDIT_FLUSH_MS: '20' });
    ids.hello = (await world.run({ code: 'console.log("Hello");' }, { token: null })).executionId;
    for (const [name, code] of Object.entries(SCENARIOS)) ids[name] = (await world.run({ code })).executionId;
    // The audit trail is written off the request path: wait until all four are stored.
    const stored = await eventually(async () => {
      const response = await fetch(`${world.service.url}/admin/executions`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const body = (await response.json()) as any;
      return body.data?.executions?.length === 4 && body.data.executions.every((e: any) => e.allowedRequests + e.blockedRequests > 0 || e.subject === null);
    }, { timeoutMs: 60_000 });
    expect(stored, 'the four executions in the audit store').toBe(true);

    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers().authorization }));
    page.on('console', (message) => {
      if (/Content Security Policy/iu.test(message.text())) violations.push(message.text());
    });
  });
  afterAll(async () => {
    await browser?.[Symbol.asyncDispose]();
    await world?.close();
  });

  it('serves the console under a strict Content-Security-Policy, same origin only', async () => {
    const response = await fetch(`${world.service.url}/admin/ui/`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/u);
    const html = await response.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/u); // no inline script
    expect(html).not.toMatch(/<style|style=/u); // no inline style
    expect(html).not.toMatch(/https?:\/\//u); // nothing from elsewhere
  });

  it('refuses a wrong token', async () => {
    await page.goto(`${world.service.url}/admin/ui/`);
    await page.getByLabel('Administrator token').fill('not-the-admin-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toBe('That token was refused.');
    expect(await page.getByRole('navigation', { name: 'Pages' }).count()).toBe(0);
    await screenshot(page, 'console-sign-in');
  });

  it('signs in from the keyboard and shows the overview', async () => {
    await page.getByLabel('Administrator token').fill('');
    await page.getByLabel('Administrator token').focus();
    await page.keyboard.type(ADMIN_TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await expect.poll(() => page.getByRole('heading', { name: 'Executions per minute' }).count()).toBe(1);
    await expect.poll(() => page.locator('.card', { hasText: 'Top blocked hosts' }).textContent()).toMatch(/api\.github\.com.*dev-123\.okta\.com|dev-123\.okta\.com.*api\.github\.com/su);
    await expect.poll(() => page.locator('.card', { hasText: 'Readiness' }).textContent()).toContain('docker: ok');
    await expect.poll(() => page.locator('.card', { hasText: 'Pool and queue' }).textContent()).toContain('Warm sandboxes');
    await screenshot(page, 'console-overview');
    expect(page.url()).not.toContain(ADMIN_TOKEN);
  });

  it('lists the four executions, the GitHub and Okta rows blocked with their reasons', async () => {
    // Keyboard only: Tab to the Executions link in the navigation and follow it.
    let onLink = false;
    for (let i = 0; i < 10 && !onLink; i += 1) {
      await page.keyboard.press('Tab');
      // Browser-side code as text: the test files are type-checked without the DOM library.
      onLink = (await page.evaluate('document.activeElement?.textContent')) === 'Executions';
    }
    expect(onLink).toBe(true);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Executions' }).waitFor();
    const row = (name: string) => page.locator(`tr[data-execution-id="${ids[name]}"]`);
    for (const name of Object.keys(ids)) await row(name).waitFor();
    expect(await page.locator('table.executions tbody tr').count()).toBe(4);

    await expect.poll(() => row('githubGet').textContent()).toContain('Domain api.github.com is not in allowed list');
    await expect.poll(() => row('oktaDelete').textContent()).toContain('Method DELETE not allowed for *.okta.com');
    for (const name of ['githubGet', 'oktaDelete']) {
      expect(await row(name).getAttribute('class')).toContain('blocked');
      expect(await row(name).textContent()).toContain('1 blocked');
      expect(await row(name).textContent()).toContain(SEED_USER);
    }
    for (const name of ['stripeGet', 'hello']) expect(await row(name).getAttribute('class')).not.toContain('blocked');
    expect(await row('hello').textContent()).toContain('(no token)');
    await screenshot(page, 'console-executions');

    // The blocked-only filter asks the API for exactly the two.
    await page.getByLabel('Blocked only').check();
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.locator('table.executions tbody tr').count()).toBe(2);
  });

  it('shows an execution\'s result fields, policy hash and network log with the blocked row marked', async () => {
    await page.locator(`tr[data-execution-id="${ids.oktaDelete}"] td:first-child a`).click();
    await page.getByRole('heading', { name: 'Network log' }).waitFor();
    expect(await page.locator('dl.fields').textContent()).toContain(SEED_POLICY_HASH);
    expect(await page.locator('dl.fields').textContent()).toContain(ids.oktaDelete);
    const entries = page.locator('table.timeline tbody tr');
    expect(await entries.count()).toBe(1);
    const entry = entries.first();
    expect(await entry.getAttribute('class')).toContain('blocked');
    const text = await entry.textContent();
    for (const expected of ['DELETE', 'https://dev-123.okta.com/api/v1/users/123', '403', 'blocked', 'Method DELETE not allowed for *.okta.com', 'apiPathRules["*.okta.com"][1]']) {
      expect(text).toContain(expected);
    }
    await screenshot(page, 'console-execution');

    await page.goto(`${world.service.url}/admin/ui/#/executions/${ids.stripeGet}`);
    await page.getByRole('heading', { name: 'Network log' }).waitFor();
    const allowed = page.locator('table.timeline tbody tr').first();
    expect(await allowed.textContent()).toContain('https://api.stripe.com/v1/products');
    expect(await allowed.getAttribute('class')).not.toContain('blocked');
  });

  it('groups a subject\'s blocked requests by host and reason, with the suggestion as a diff', async () => {
    await page.goto(`${world.service.url}/admin/ui/#/blocked?subject=${SEED_USER}`);
    await page.getByRole('heading', { name: 'By host and reason' }).waitFor();
    const groups = await page.locator('table.groups').textContent();
    expect(groups).toContain('api.github.com');
    expect(groups).toContain('Domain api.github.com is not in allowed list');
    expect(groups).toContain('dev-123.okta.com');
    expect(groups).toContain('Method DELETE not allowed for *.okta.com');
    expect(await page.locator('.chart rect.bar').count()).toBeGreaterThan(0);
    await page.getByRole('heading', { name: 'Suggested policy change' }).waitFor();
    expect(await page.getByLabel('Policy diff').textContent()).toContain('+ allowedDomains: "api.github.com"');
    expect(await page.getByLabel('Policy diff').textContent()).toContain('allows GET /users/github');
    // The okta DELETE is denied by a rule of the policy: the suggestion leaves it blocked.
    expect(await page.locator('section', { hasText: 'Left blocked on purpose' }).textContent()).toContain('DELETE');
    await screenshot(page, 'console-blocked');
  });

  it('explains DELETE https://dev-123.okta.com/api/v1/users/123 under the seed policy in the playground', async () => {
    await page.goto(`${world.service.url}/admin/ui/#/playground?subject=${SEED_USER}`);
    await expect.poll(() => page.getByLabel('Policy (JSON, policy API format)').inputValue()).toContain('*.okta.com');
    await expect.poll(() => page.getByTestId('lint').textContent()).toContain('valid policy');
    await page.getByLabel('Method').selectOption('DELETE');
    await page.getByLabel('URL').fill('https://dev-123.okta.com/api/v1/users/123');
    await page.getByRole('button', { name: 'Explain' }).click();
    await page.getByTestId('decision').waitFor();
    expect(await page.getByTestId('decision').locator('.badge').textContent()).toBe('blocked');
    expect(await page.getByTestId('reason').textContent()).toBe('Method DELETE not allowed for *.okta.com');
    expect(await page.getByTestId('rule').textContent()).toBe('apiPathRules["*.okta.com"][1]');
    await screenshot(page, 'console-playground');

    // Lint inline: a malformed entry is named as the administrator types.
    await page.getByLabel('Policy (JSON, policy API format)').fill('{"allowedDomains": ["api.*.com"]}');
    await expect.poll(() => page.getByTestId('lint').textContent()).toMatch(/allowedDomains\[0\]/u);
    await page.getByLabel('Policy (JSON, policy API format)').fill('{"allowedDomains": [');
    await expect.poll(() => page.getByTestId('lint').textContent()).toContain('Not JSON');
  });

  it('stays usable in a narrow window: the page never scrolls sideways', async () => {
    await page.setViewportSize({ width: 400, height: 800 });
    await page.goto(`${world.service.url}/admin/ui/#/executions`);
    await page.locator(`tr[data-execution-id="${ids.oktaDelete}"]`).waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
    expect(await page.getByRole('link', { name: 'Policy playground' }).isVisible()).toBe(true);
    await screenshot(page, 'console-executions-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('sent the token only in Authorization headers to /admin, never in a URL, and broke no CSP rule', () => {
    const origin = new URL(world.service.url).origin;
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) {
      expect(request.url).not.toContain(ADMIN_TOKEN);
      expect(new URL(request.url).origin).toBe(origin);
      const path = new URL(request.url).pathname;
      if (path.startsWith('/admin/') && !path.startsWith('/admin/ui/')) expect(request.authorization).toMatch(/^Bearer /u);
    }
    expect(violations).toEqual([]);
  });

  it('kept the token in memory only: no cookie, no storage, and a reload signs out', async () => {
    expect(await browser.context.cookies()).toEqual([]);
    expect(await page.evaluate('localStorage.length + sessionStorage.length')).toBe(0);
    await page.reload();
    await page.getByLabel('Administrator token').waitFor();
    expect(await page.getByRole('navigation', { name: 'Pages' }).count()).toBe(0);
  });
});

describe.skipIf(!ready)('the console without ADMIN_TOKEN', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_POOL_SIZE: '0' });
  });
  afterAll(async () => {
    await service?.close();
  });

  it('is not served at all', async () => {
    for (const path of ['/admin/ui/', '/admin/ui', '/admin/ui/index.html', '/admin/executions']) {
      expect((await fetch(`${service.url}${path}`, { redirect: 'manual' })).status, path).toBe(404);
    }
  });
});
