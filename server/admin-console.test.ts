import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminConsoleRouter } from './admin-console.ts';
import { adminRouter } from './admin.ts';
import { errorHandler } from './errors.ts';

async function serve(directory: string): Promise<{ url: string; server: Server }> {
  const app = express();
  app.use(adminConsoleRouter({ directory }));
  app.use(adminRouter({ adminToken: 'secret-admin-token', policies: { stats: () => ({ size: 0, hits: 0, misses: 0, failures: 0 }) as any, clear: () => undefined } }));
  app.use(errorHandler);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('adminConsoleRouter', () => {
  let dir: string;
  let built: { url: string; server: Server };
  let unbuilt: { url: string; server: Server };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'console-dist-'));
    await mkdir(join(dir, 'dist', 'assets'), { recursive: true });
    await writeFile(join(dir, 'dist', 'index.html'), '<!doctype html><script type="module" src="/admin/ui/assets/app-1.js"></script>');
    await writeFile(join(dir, 'dist', 'assets', 'app-1.js'), 'console.log(1)');
    await writeFile(join(dir, 'dist', '.source-hash'), 'abc');
    built = await serve(join(dir, 'dist'));
    unbuilt = await serve(join(dir, 'missing'));
  });
  afterAll(async () => {
    built.server.close();
    unbuilt.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the page without a token, fresh, under a CSP that allows only this origin', async () => {
    const response = await fetch(`${built.url}/admin/ui/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/u);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'.*script-src 'self'.*style-src 'self'.*connect-src 'self'.*frame-ancestors 'none'/u);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.text()).toContain('/admin/ui/assets/app-1.js');
  });

  it('serves hashed assets as immutable', async () => {
    const response = await fetch(`${built.url}/admin/ui/assets/app-1.js`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toContain('immutable');
  });

  it('redirects /admin/ui to /admin/ui/ on the same origin', async () => {
    const response = await fetch(`${built.url}/admin/ui`, { redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/admin/ui/');
  });

  it('answers 404 for anything else under /admin/ui, dotfiles and escapes included, while the API still wants its token', async () => {
    for (const path of ['/admin/ui/nope.js', '/admin/ui/.source-hash', '/admin/ui/..%2f..%2fpackage.json']) {
      expect((await fetch(`${built.url}${path}`)).status, path).toBe(404);
    }
    expect((await fetch(`${built.url}/admin/policy-cache`)).status).toBe(401);
  });

  it('says how to build the console when it is not built', async () => {
    const response = await fetch(`${unbuilt.url}/admin/ui/`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ code: 'CONSOLE_NOT_BUILT', error: expect.stringContaining('npm run build:console') });
  });
});
