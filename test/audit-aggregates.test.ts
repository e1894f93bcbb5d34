/**
 * The audit store's aggregate counts (what the summary and suggestion
 * queries read) against a recount from the raw rows, done here in plain
 * code: after batches that bring decisions before, with and after their
 * execution, after retention, and after the migration's backfill. Also the
 * answers of the queries over windows that do and do not fall on the hour.
 * Once on SQLite, once on a real PostgreSQL server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore, DAY_MS, HOUR_MS, PostgresDriver, SqliteDriver } from '../server/audit/index.ts';
import type { DecisionRecord, ExecutionRecord, SqlDriver } from '../server/audit/index.ts';
import { startPostgres, type PostgresServer } from './support/postgres.ts';

let postgres: PostgresServer;
let dir: string;
let databases = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'audit-aggregates-'));
  postgres = await startPostgres();
});

afterAll(async () => {
  await postgres?.[Symbol.asyncDispose]();
  await rm(dir, { recursive: true, force: true });
});

/** A database of its own for each store, so a recount covers exactly what the test wrote. */
async function freshPostgres(): Promise<SqlDriver> {
  const name = `aggregates_${++databases}`;
  const admin = new PostgresDriver(postgres.url, () => undefined);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.close();
  const url = new URL(postgres.url);
  url.pathname = `/${name}`;
  return new PostgresDriver(url.toString(), () => undefined);
}

const drivers: Array<[string, () => Promise<SqlDriver>]> = [
  ['SQLite', () => Promise.resolve(new SqliteDriver(join(dir, `audit-${++databases}.sqlite`)))],
  ['PostgreSQL', freshPostgres],
];

const HOUR = HOUR_MS;
/** An instant an hour before midnight (UTC), and hours and minutes after it: the data crosses a day. */
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % DAY_MS) + DAY_MS - HOUR;
const at = (hours: number, minutes = 0): number => T0 + hours * HOUR + minutes * 60_000;

function execution(id: string, subject: string | null, startedAt: number): ExecutionRecord {
  return {
    id, subject, policySource: 'jwt', policyHash: 'a'.repeat(64), policyVersion: null, language: 'javascript', tier: null, outcome: 'ok', exitCode: 0,
    signal: null, errorCode: null, durationMs: 40, queuedMs: 0, allowedRequests: 0, blockedRequests: 0, wouldBlockRequests: 0, codeSha256: 'c'.repeat(64),
    codeBytes: 12, code: null, startedAt, finishedAt: startedAt + 50,
  };
}

const LONG_PATH = `/v1/search/${'x'.repeat(3_000)}`;
const blockedBy = (host: string) => ({ allowed: false, reason: `Domain ${host} is not in allowed list`, statusCode: 403 });

function decision(executionId: string, when: number, overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    executionId, at: when, method: 'GET', scheme: 'https', host: 'api.stripe.com', port: 443, path: '/v1/products', allowed: true, wouldBlock: false,
    reason: null, rule: 'allowedDomains[0]', statusCode: 200, secrets: [], durationMs: 5, ...overrides,
  };
}

/** A mix: ids in paths, blocked and would-block, a second method and port, a path (and a reason) longer than a PostgreSQL index entry. */
function decisionsOf(executionId: string, from: number, count: number): DecisionRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const when = from + i * 7 * 60_000;
    switch (i % 5) {
      case 0: return decision(executionId, when, { path: `/v1/products/prod_${i % 3}` });
      case 1: return decision(executionId, when, { method: 'POST', path: '/v1/charges' });
      case 2: return decision(executionId, when, { host: 'evil.example', path: '/', ...blockedBy('evil.example') });
      case 3: return decision(executionId, when, { host: 'learn.example', port: 8443, ...blockedBy('learn.example'), allowed: true, wouldBlock: true, statusCode: 200 });
      default: return decision(executionId, when, { path: LONG_PATH, ...blockedBy(`api.stripe.com${LONG_PATH}`) });
    }
  });
}

const SPANS = [HOUR_MS, DAY_MS];
const bucket = (t: number, span: number): number => Math.floor(t / span) * span;

interface Joined {
  subject: string | null;
  at: number;
  host: string;
  port: number;
  method: string;
  path: string;
  allowed: boolean;
  wouldBlock: boolean;
  reason: string | null;
}

async function joinedRows(db: SqlDriver): Promise<Joined[]> {
  const rows = await db.query('SELECT d.*, e.subject AS subject FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id');
  return rows.map((r) => ({
    subject: typeof r.subject === 'string' ? r.subject : null, at: Number(r.at), host: String(r.host), port: Number(r.port), method: String(r.method),
    path: String(r.path), allowed: Number(r.allowed) === 1, wouldBlock: Number(r.would_block) === 1, reason: typeof r.reason === 'string' ? r.reason : null,
  }));
}

function tally<K>(rows: readonly K[], key: (row: K) => unknown[], lastAt?: (row: K) => number): string[] {
  const counts = new Map<string, { n: number; last: number }>();
  for (const row of rows) {
    const id = JSON.stringify(key(row));
    const entry = counts.get(id) ?? { n: 0, last: 0 };
    entry.n += 1;
    entry.last = Math.max(entry.last, lastAt?.(row) ?? 0);
    counts.set(id, entry);
  }
  return [...counts].map(([id, { n, last }]) => JSON.stringify([...(JSON.parse(id) as unknown[]), n, ...(lastAt === undefined ? [] : [last])])).sort();
}

/** The aggregates as a recount of the raw rows gives them. */
async function recount(db: SqlDriver): Promise<{ decisions: string[]; requests: string[] }> {
  const rows = await joinedRows(db);
  return {
    decisions: SPANS.flatMap((span) => tally(rows, (r) => [r.subject, span, bucket(r.at, span), r.host, r.method, r.allowed, r.wouldBlock, r.reason])).sort(),
    requests: SPANS.flatMap((span) =>
      tally(rows.filter((r) => r.subject !== null), (r) => [r.subject, span, bucket(r.at, span), r.host, r.port, r.method, r.path, !r.allowed || r.wouldBlock], (r) => r.at),
    ).sort(),
  };
}

/** The aggregates as stored (every row, zeros included: there must be none). */
async function stored(db: SqlDriver): Promise<{ decisions: string[]; requests: string[] }> {
  const decisions = await db.query('SELECT * FROM audit_decision_counts');
  const requests = await db.query('SELECT * FROM audit_request_counts');
  return {
    decisions: decisions.map((r) => JSON.stringify([
      Number(r.subject_null) === 1 ? null : r.subject, Number(r.span), Number(r.bucket), r.host, r.method, Number(r.allowed) === 1, Number(r.would_block) === 1,
      Number(r.reason_null) === 1 ? null : r.reason, Number(r.n),
    ])).sort(),
    requests: requests.map((r) => JSON.stringify([
      r.subject, Number(r.span), Number(r.bucket), r.host, Number(r.port), r.method, r.path, Number(r.blocked) === 1, Number(r.n), Number(r.last_at),
    ])).sort(),
  };
}

async function expectConsistent(db: SqlDriver): Promise<void> {
  const expected = await recount(db);
  expect(expected.decisions.length).toBeGreaterThan(0);
  expect(await stored(db)).toEqual(expected);
}

/** Raw rows written as a store before the aggregates (schema version 1) wrote them. */
async function writeRaw(db: SqlDriver, executions: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void> {
  for (const e of executions) {
    await db.query(
      `INSERT INTO audit_executions (id, subject, policy_source, policy_hash, language, outcome, allowed_requests, blocked_requests, would_block_requests,
        code_sha256, code_bytes, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?)`,
      [e.id, e.subject, e.policySource, e.policyHash, e.language, e.outcome, e.codeSha256, e.codeBytes, e.startedAt, e.finishedAt],
    );
  }
  for (const d of decisions) {
    await db.query(
      `INSERT INTO audit_decisions (execution_id, at, method, scheme, host, port, path, allowed, would_block, reason, rule, status_code, duration_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [d.executionId, d.at, d.method, d.scheme, d.host, d.port, d.path, d.allowed ? 1 : 0, d.wouldBlock ? 1 : 0, d.reason, d.rule, d.statusCode, d.durationMs],
    );
  }
}

/** What the summary and the suggestion scan must answer for a window, computed from the raw rows. */
async function expectedAnswers(db: SqlDriver, subject: string, since?: number, until?: number) {
  const rows = (await joinedRows(db)).filter((r) => (since === undefined || r.at >= since) && (until === undefined || r.at < until));
  const kind = (r: Joined) => (r.wouldBlock ? 'wouldBlock' : r.allowed ? 'allowed' : 'blocked');
  const summary = tally(rows, (r) => [r.subject, r.host, r.method, kind(r), r.reason]);
  const mine = rows.filter((r) => r.subject === subject);
  const requests = tally(mine, (r) => [r.method, r.host, r.port, r.path, !r.allowed || r.wouldBlock], (r) => r.at);
  return { summary, requests };
}

async function actualAnswers(store: AuditStore, subject: string, since?: number, until?: number) {
  const window = { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) };
  const summary = (await store.summary(window)).map((r) => JSON.stringify([r.subject, r.host, r.method, r.decision, r.reason, r.count])).sort();
  const requests = (await store.observedRequests({ subject, ...window, limit: 10_000 }))
    .map((r) => JSON.stringify([r.method, r.host, r.port, r.path, r.blocked, r.count, r.lastAt])).sort();
  return { summary, requests };
}

describe.each(drivers)('the audit aggregates on %s', (_name, openDriver) => {
  let db: SqlDriver;
  let store: AuditStore;

  beforeAll(async () => {
    db = await openDriver();
    store = new AuditStore(db);
    await store.migrate();
  });

  afterAll(async () => {
    await store?.close();
  });

  it('equal a recount after batches that bring decisions before, with and after their execution', async () => {
    // Decisions of a running execution (not written yet) over two hours, and of one whose record never comes.
    await store.write([], [...decisionsOf('x', at(0, 5), 12), ...decisionsOf('orphan', at(0, 30), 5)]);
    await expectConsistent(db);
    // The execution arrives with more of its decisions; one with no subject, with its own.
    await store.write([execution('x', 'alice', at(0, 1)), execution('anonymous', null, at(1))], [...decisionsOf('x', at(1, 40), 6), ...decisionsOf('anonymous', at(1, 2), 5)]);
    await expectConsistent(db);
    // A late decision, the same execution written again (ignored), and a whole execution in one batch.
    await store.write(
      [execution('x', 'mallory', at(0, 1)), execution('y', 'bob', at(2))],
      [decision('x', at(2, 59), { method: 'DELETE', path: '/v1/products/prod_1' }), ...decisionsOf('y', at(2, 10), 10)],
    );
    await expectConsistent(db);
    const summary = await store.summary({ subject: 'alice' });
    expect(summary.reduce((sum, r) => sum + r.count, 0)).toBe(19);
  });

  it('answer the summary and the suggestion scan exactly, whether a window falls on the hour or not', async () => {
    const windows: Array<[number | undefined, number | undefined]> = [
      [undefined, undefined], [at(0), undefined], [at(0, 20), undefined], [undefined, at(1, 50)], [at(0, 20), at(2, 30)],
      [at(1), at(2)], [at(1, 10), at(1, 50)], [at(1, 10), at(1, 10)], [at(5), undefined],
      // Whole days (the data crosses midnight at at(1)), with whole hours and partial hours beside them.
      [at(1), at(25)], [at(-23), at(25)], [at(0, 20), at(27, 5)], [at(-30, 30), undefined], [undefined, at(49)],
    ];
    for (const [since, until] of windows) {
      expect(await actualAnswers(store, 'alice', since, until), `window ${since} – ${until}`).toEqual(await expectedAnswers(db, 'alice', since, until));
    }
  });

  it('stay equal to a recount after retention, when a cutoff splits an hour and leaves decisions of an execution it deletes', async () => {
    // z started before the cutoff and made requests after it: those outlive it and fall under no subject.
    await store.write([execution('z', 'carol', at(3, 50))], [...decisionsOf('z', at(3, 52), 8)]);
    const cutoff = at(4, 5);
    await store.deleteBefore(cutoff);
    await expectConsistent(db);
    const left = await store.summary({});
    expect(left.filter((r) => r.subject === 'carol')).toEqual([]);
    expect(left.filter((r) => r.subject === null).reduce((sum, r) => sum + r.count, 0)).toBeGreaterThan(0);
    expect(await actualAnswers(store, 'carol')).toEqual(await expectedAnswers(db, 'carol'));
    expect(await stored(db)).toEqual(await recount(db));
  });
});

describe.each(drivers)('the aggregates migration on %s', (_name, openDriver) => {
  it('backfills the counts of rows stored before it, and later batches keep them', async () => {
    const db = await openDriver();
    const store = new AuditStore(db);
    try {
      expect(await store.migrate(1)).toEqual([1]);
      await writeRaw(db, [execution('old-1', 'dave', at(0)), execution('old-2', null, at(0, 30))], [
        ...decisionsOf('old-1', at(0, 2), 15), ...decisionsOf('old-2', at(0, 31), 5), ...decisionsOf('in-flight', at(1, 3), 7),
      ]);
      expect(await store.migrate()).toEqual([2]);
      await expectConsistent(db);
      expect(await actualAnswers(store, 'dave', at(0, 20))).toEqual(await expectedAnswers(db, 'dave', at(0, 20)));
      // The execution whose decisions were backfilled under no subject arrives.
      await store.write([execution('in-flight', 'dave', at(1))], decisionsOf('in-flight', at(2), 3));
      await expectConsistent(db);
      expect(await actualAnswers(store, 'dave')).toEqual(await expectedAnswers(db, 'dave'));
    } finally {
      await store.close();
    }
  });
});
