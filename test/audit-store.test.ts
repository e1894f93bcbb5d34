/**
 * One suite for the audit store, run against SQLite and against a real
 * PostgreSQL server (a private cluster, started here): migrations, batched
 * writes, the administrator queries, pagination and retention.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore, PostgresDriver, SqliteDriver } from '../server/audit/index.ts';
import type { DecisionRecord, ExecutionRecord } from '../server/audit/index.ts';
import { startPostgres, type PostgresServer } from './support/postgres.ts';

let postgres: PostgresServer;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'audit-store-'));
  postgres = await startPostgres();
});

afterAll(async () => {
  await postgres?.[Symbol.asyncDispose]();
  await rm(dir, { recursive: true, force: true });
});

let nth = 0;
function execution(overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  nth += 1;
  return {
    id: `exec-${String(nth).padStart(4, '0')}`,
    subject: 'alice',
    policySource: 'jwt',
    policyHash: 'a'.repeat(64),
    policyVersion: null,
    language: 'javascript',
    tier: null,
    outcome: 'ok',
    exitCode: 0,
    signal: null,
    errorCode: null,
    durationMs: 40,
    queuedMs: 0,
    allowedRequests: 0,
    blockedRequests: 0,
    wouldBlockRequests: 0,
    codeSha256: 'c'.repeat(64),
    codeBytes: 12,
    code: null,
    startedAt: 1_000_000 + nth,
    finishedAt: 1_000_050 + nth,
    ...overrides,
  };
}

function decision(executionId: string, overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    executionId,
    at: 1_000_010,
    method: 'GET',
    scheme: 'https',
    host: 'api.stripe.com',
    port: 443,
    path: '/v1/products',
    allowed: true,
    wouldBlock: false,
    reason: null,
    rule: 'allowedDomains[0]',
    statusCode: 200,
    secrets: [],
    durationMs: 5,
    ...overrides,
  };
}

const stores: Array<[string, () => AuditStore]> = [
  ['SQLite', () => new AuditStore(new SqliteDriver(join(dir, `audit-${++nth}.sqlite`)))],
  ['PostgreSQL', () => new AuditStore(new PostgresDriver(postgres.url, () => undefined))],
];

describe.each(stores)('the audit store on %s', (_name, open) => {
  let store: AuditStore;

  beforeAll(async () => {
    store = open();
    await store.migrate();
  });

  afterAll(async () => {
    await store?.close();
  });

  it('applies its migrations once: a second start finds nothing to do', async () => {
    expect(await store.migrate()).toEqual([]);
  });

  it('writes a batch and reads an execution back with its decisions', async () => {
    const run = execution({ subject: 'bob', blockedRequests: 1, allowedRequests: 1, policyVersion: 'v3', code: 'console.log(1)' });
    await store.write([run], [
      decision(run.id, { at: 1_000_020, secrets: ['STRIPE_KEY'] }),
      decision(run.id, { at: 1_000_030, host: 'evil.example', path: '/', allowed: false, reason: 'Domain evil.example is not in allowed list', statusCode: 403, rule: 'allowedDomains' }),
    ]);
    const found = await store.getExecution(run.id);
    expect(found?.execution).toEqual(run);
    expect(found?.decisions.map((d) => [d.host, d.allowed, d.reason, d.secrets])).toEqual([
      ['api.stripe.com', true, null, ['STRIPE_KEY']],
      ['evil.example', false, 'Domain evil.example is not in allowed list', []],
    ]);
    expect(await store.getExecution('no-such-id')).toBeNull();
  });

  it('keeps the first record when an execution is written twice', async () => {
    const run = execution({ subject: 'carol' });
    await store.write([run], []);
    await store.write([{ ...run, outcome: 'error' }], []);
    expect((await store.getExecution(run.id))?.execution.outcome).toBe('ok');
  });

  it('filters by subject, outcome, time and blocked-only, and pages with a cursor', async () => {
    const subject = 'pager';
    const runs = Array.from({ length: 5 }, (_, i) => execution({ subject, startedAt: 2_000_000 + i, outcome: i === 4 ? 'timeout' : 'ok', blockedRequests: i === 1 ? 2 : 0 }));
    await store.write(runs, []);
    const first = await store.listExecutions({ subject, limit: 2 });
    expect(first.executions.map((e) => e.startedAt)).toEqual([2_000_004, 2_000_003]);
    expect(first.nextCursor).not.toBeNull();
    const second = await store.listExecutions({ subject, limit: 2, cursor: first.nextCursor! });
    expect(second.executions.map((e) => e.startedAt)).toEqual([2_000_002, 2_000_001]);
    const third = await store.listExecutions({ subject, limit: 2, cursor: second.nextCursor! });
    expect(third.executions.map((e) => e.startedAt)).toEqual([2_000_000]);
    expect(third.nextCursor).toBeNull();
    expect((await store.listExecutions({ subject, outcome: 'timeout', limit: 10 })).executions.map((e) => e.startedAt)).toEqual([2_000_004]);
    expect((await store.listExecutions({ subject, blockedOnly: true, limit: 10 })).executions.map((e) => e.startedAt)).toEqual([2_000_001]);
    expect((await store.listExecutions({ subject, since: 2_000_001, until: 2_000_003, limit: 10 })).executions.map((e) => e.startedAt)).toEqual([2_000_002, 2_000_001]);
  });

  it('counts decisions by subject, host, method, decision and reason', async () => {
    const run = execution({ subject: 'summary-user' });
    const blocked = { allowed: false, host: 'evil.example', reason: 'Domain evil.example is not in allowed list', statusCode: 403 };
    await store.write([run], [
      decision(run.id), decision(run.id), decision(run.id, blocked), decision(run.id, { ...blocked, allowed: true, wouldBlock: true, statusCode: 200 }),
    ]);
    const rows = await store.summary({ subject: 'summary-user' });
    expect(rows).toEqual(expect.arrayContaining([
      { subject: 'summary-user', host: 'api.stripe.com', method: 'GET', decision: 'allowed', reason: null, count: 2 },
      { subject: 'summary-user', host: 'evil.example', method: 'GET', decision: 'blocked', reason: blocked.reason, count: 1 },
      { subject: 'summary-user', host: 'evil.example', method: 'GET', decision: 'wouldBlock', reason: blocked.reason, count: 1 },
    ]));
    expect(rows).toHaveLength(3);
    const observed = await store.observedRequests({ subject: 'summary-user', limit: 10 });
    expect(observed.map(({ host, path, blocked, count }) => ({ host, path, blocked, count }))).toEqual(expect.arrayContaining([
      { host: 'api.stripe.com', path: '/v1/products', blocked: false, count: 2 },
      { host: 'evil.example', path: '/v1/products', blocked: true, count: 2 },
    ]));
    expect(observed).toHaveLength(2);
  });

  it('writes a large batch in one go', async () => {
    const run = execution({ subject: 'bulk' });
    await store.write([run], Array.from({ length: 1_200 }, (_, i) => decision(run.id, { path: `/v1/items/${i}` })));
    expect((await store.getExecution(run.id))?.decisions).toHaveLength(1_200);
  });

  it('deletes what is older than the retention cutoff, and nothing newer', async () => {
    const old = execution({ subject: 'retention', startedAt: 10, finishedAt: 20 });
    const recent = execution({ subject: 'retention', startedAt: 5_000_000, finishedAt: 5_000_010 });
    await store.write([old, recent], [decision(old.id, { at: 15 }), decision(recent.id, { at: 5_000_005 })]);
    const deleted = await store.deleteBefore(100);
    expect(deleted).toEqual({ executions: 1, decisions: 1 });
    expect(await store.getExecution(old.id)).toBeNull();
    expect((await store.getExecution(recent.id))?.decisions).toHaveLength(1);
  });
});

describe('SQLite specifics', () => {
  it('runs in WAL mode and keeps its data across reopening', async () => {
    const file = join(dir, 'reopen.sqlite');
    const driver = new SqliteDriver(file);
    expect(driver.journalMode()).toBe('wal');
    const store = new AuditStore(driver);
    await store.migrate();
    const run = execution();
    await store.write([run], []);
    await store.close();
    const again = new AuditStore(new SqliteDriver(file));
    expect(await again.migrate()).toEqual([]);
    expect((await again.getExecution(run.id))?.execution.id).toBe(run.id);
    await again.close();
  });
});
