/**
 * `sandbox-policy audit …` against the real administrator routes over a
 * real (SQLite) audit store: what the CLI prints is what the API answers.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditMain } from '../policies/audit-cli.ts';
import { main } from '../policies/cli.ts';
import { adminRouter } from '../server/admin.ts';
import { AuditStore, SqliteDriver } from '../server/audit/index.ts';
import { errorHandler } from '../server/errors.ts';

const ADMIN_TOKEN = 'cli-admin-token-0123456789';
let dir: string;
let store: AuditStore;
let server: Server;
let env: Record<string, string>;

const run = async (command: 'audit' | 'suggest', args: string[], token = ADMIN_TOKEN) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await auditMain(command, args, { out: (l) => out.push(l), err: (l) => err.push(l), env: { ...env, ADMIN_TOKEN: token } });
  return { code, out: out.join('\n'), err: err.join('\n') };
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'audit-cli-'));
  store = new AuditStore(new SqliteDriver(join(dir, 'audit.sqlite')));
  await store.migrate();
  const base = { policySource: 'jwt', policyHash: 'f'.repeat(64), policyVersion: null, language: 'node', tier: null, exitCode: 0, signal: null, errorCode: null, durationMs: 10, queuedMs: 0, codeSha256: 'c'.repeat(64), codeBytes: 3, code: null, wouldBlockRequests: 0 };
  await store.write(
    [
      { ...base, id: 'run-1', subject: 'alice', outcome: 'ok', allowedRequests: 1, blockedRequests: 0, startedAt: 1_000, finishedAt: 1_010 },
      { ...base, id: 'run-2', subject: 'alice', outcome: 'ok', allowedRequests: 0, blockedRequests: 1, startedAt: 2_000, finishedAt: 2_010 },
    ],
    [
      { executionId: 'run-1', at: 1_005, method: 'GET', scheme: 'https', host: 'api.stripe.com', port: 443, path: '/v1/products', allowed: true, wouldBlock: false, reason: null, rule: 'apiPathRules', statusCode: 200, secrets: [], durationMs: 3 },
      { executionId: 'run-2', at: 2_005, method: 'GET', scheme: 'https', host: 'api.github.com', port: 443, path: '/', allowed: false, wouldBlock: false, reason: 'Domain api.github.com is not in allowed list', rule: 'allowedDomains', statusCode: 403, secrets: [], durationMs: 1 },
    ],
  );
  const app = express();
  app.use(adminRouter({ adminToken: ADMIN_TOKEN, policies: { stats: () => ({ size: 0, hits: 0, misses: 0, fetches: 0, failures: 0 }), clear: () => undefined }, audit: store }));
  app.use(errorHandler);
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  env = { SANDBOX_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('sandbox-policy audit', () => {
  it('lists executions with filters and pages on with the cursor', async () => {
    const first = await run('audit', ['executions', '--subject', 'alice', '--limit', '1']);
    expect(first.code).toBe(0);
    const page = JSON.parse(first.out);
    expect(page.executions.map((e: { id: string }) => e.id)).toEqual(['run-2']);
    const second = JSON.parse((await run('audit', ['executions', '--subject', 'alice', '--limit', '1', '--cursor', page.nextCursor])).out);
    expect(second.executions.map((e: { id: string }) => e.id)).toEqual(['run-1']);
    const blocked = JSON.parse((await run('audit', ['executions', '--blocked'])).out);
    expect(blocked.executions.map((e: { id: string }) => e.id)).toEqual(['run-2']);
  });

  it('shows one execution with its decisions', async () => {
    const shown = JSON.parse((await run('audit', ['execution', 'run-2'])).out);
    expect(shown).toMatchObject({ id: 'run-2', startedAt: new Date(2_000).toISOString(), decisions: [{ host: 'api.github.com', allowed: false, reason: 'Domain api.github.com is not in allowed list' }] });
    const missing = await run('audit', ['execution', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('404');
  });

  it('prints the summary as a table', async () => {
    const { code, out } = await run('audit', ['summary', '--subject', 'alice']);
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^count\s+decision\s+subject\s+method\s+host\s+reason$/u);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/u))).toEqual(expect.arrayContaining([
      ['1', 'blocked', 'alice', 'GET', 'api.github.com', 'Domain api.github.com is not in allowed list'],
      ['1', 'allowed', 'alice', 'GET', 'api.stripe.com', '-'],
    ]));
  });

  it('suggests the policy change for a subject from what was observed', async () => {
    const { code, out } = await run('suggest', ['alice', '--since', '0', '--blocked-only']);
    expect(code).toBe(0);
    const suggestion = JSON.parse(out);
    expect(suggestion.diff.addedDomains).toEqual(['api.github.com']);
    expect(suggestion.diff.addedRules).toEqual([{ host: 'api.github.com', method: 'GET', path: '/', covers: ['GET /'] }]);
    expect(suggestion.lint.ok).toBe(true);
  });

  it('fails with the service\'s answer on a wrong token, and with usage on a bad command', async () => {
    const refused = await run('audit', ['executions'], 'wrong-token-0123456789');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('401');
    const err: string[] = [];
    expect(await main(['audit', 'everything'], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err.join('\n')).toContain('audit needs executions, execution or summary');
  });
});
