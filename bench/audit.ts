/**
 * The audit store's figures: warm /execute while 10,000 decisions are being
 * written, beside the same run with the store off; and the administrator
 * queries over 100,000 stored decisions on SQLite and on PostgreSQL, each
 * beside a baseline measured in the same run: the raw-table query it
 * replaced (before the hourly aggregates), or a plain count of the
 * decisions for the queries that did not change. Run alone with
 * `npx tsx bench/audit.ts` for the queries only (`--load` adds
 * the warm /execute figure).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suggestPolicy } from '../policies/index.ts';
import { AuditStore, PostgresDriver, SqliteDriver, type DecisionRecord, type ExecutionRecord, type SqlDriver } from '../server/audit/index.ts';
import { startPostgres, type PostgresServer } from '../test/support/postgres.ts';
import { startBenchService, warmLatency } from './execute.ts';
import { printTable, writeStandaloneResult } from './report.ts';
import { summarise, type Summary } from './stats.ts';

const SUBJECTS = 10;
const EXECUTIONS = 1_000;
const DECISIONS_PER_EXECUTION = 100;
/** One execution every ten minutes: the 100,000 decisions span a week, as a retention window holds them. */
const EXECUTION_EVERY_MS = 10 * 60 * 1000;
const EXECUTIONS_PER_BATCH = 10;
const QUERY_RUNS = 20;
const DAY_MS = 24 * 60 * 60 * 1000;
export const QUERY_TARGET_MS = 100;
export const DECISIONS_UNDER_LOAD = 10_000;
const START = 1_700_000_000_000;
/** "Now" for the windowed queries: the last decision, a few minutes past an hour (as the route's default window starts). */
const NOW = START + (EXECUTIONS - 1) * EXECUTION_EVERY_MS + DECISIONS_PER_EXECUTION * 100;

function execution(i: number): ExecutionRecord {
  return {
    id: `bench-${i}`, subject: `user-${i % SUBJECTS}`, policySource: 'jwt', policyHash: 'a'.repeat(64), policyVersion: null, language: 'node', tier: null,
    outcome: i % 7 === 0 ? 'nonzero_exit' : 'ok', exitCode: 0, signal: null, errorCode: null, durationMs: 40, queuedMs: 0, allowedRequests: 90,
    blockedRequests: 10, wouldBlockRequests: 0, codeSha256: 'c'.repeat(64), codeBytes: 100, code: null,
    startedAt: START + i * EXECUTION_EVERY_MS, finishedAt: START + i * EXECUTION_EVERY_MS + 40,
  };
}

function decision(executionId: string, i: number, at: number): DecisionRecord {
  const blocked = i % 10 === 0;
  return {
    executionId, at, method: i % 3 === 0 ? 'POST' : 'GET', scheme: 'https', host: blocked ? 'api.github.com' : `api-${i % 5}.example.com`, port: 443,
    path: `/v1/items/${i}`, allowed: !blocked, wouldBlock: false, reason: blocked ? 'Domain api.github.com is not in allowed list' : null,
    rule: blocked ? 'allowedDomains' : 'allowedDomains[0]', statusCode: blocked ? 403 : 200, secrets: [], durationMs: 3,
  };
}

async function timed(fn: () => Promise<unknown>, runs = QUERY_RUNS): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return summarise(samples);
}

/** The summary as it was read before the aggregates: every decision joined to its execution. */
function rawSummary(db: SqlDriver, filter: { subject?: string; since?: number }): Promise<unknown> {
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (filter.subject !== undefined) {
    where.push('e.subject = ?');
    params.push(filter.subject);
  }
  if (filter.since !== undefined) {
    where.push('d.at >= ?');
    params.push(filter.since);
  }
  return db.query(
    `SELECT e.subject AS subject, d.host AS host, d.method AS method, d.allowed AS allowed, d.would_block AS would_block, d.reason AS reason, COUNT(*) AS n
     FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id
     ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
     GROUP BY e.subject, d.host, d.method, d.allowed, d.would_block, d.reason
     ORDER BY n DESC, host, method LIMIT 1000`,
    params,
  );
}

/** The suggestion scan as it was: a subject's newest 10,000 decisions, row by row. */
async function rawSuggestionScan(db: SqlDriver, subject: string, since: number): Promise<Array<{ method: string; host: string; port: number; path: string; blocked: boolean }>> {
  const rows = await db.query(
    'SELECT d.* FROM audit_decisions d JOIN audit_executions e ON e.id = d.execution_id WHERE e.subject = ? AND d.at >= ? ORDER BY d.at DESC, d.id DESC LIMIT ?',
    [subject, since, 10_000],
  );
  return rows.map((r) => ({ method: String(r.method), host: String(r.host), port: Number(r.port), path: String(r.path), blocked: Number(r.allowed) === 0 || Number(r.would_block) === 1 }));
}

export interface QueryFigure {
  name: string;
  value: Summary;
  baseline: { name: string; value: Summary };
}

export interface DriverQueryResult {
  driver: SqlDriver['dialect'];
  decisions: number;
  /** One batch of 10 executions and their 1,000 decisions, with the aggregates kept, beside the raw rows alone. */
  writeBatch: QueryFigure;
  queries: QueryFigure[];
}

export interface AuditQueryResult {
  targetMs: number;
  drivers: DriverQueryResult[];
  /** Why a driver was not measured (PostgreSQL not installed and no root to install it). */
  skipped: string[];
}

async function seed(store: AuditStore, rawOnly: SqlDriver | null): Promise<number[]> {
  const samples: number[] = [];
  for (let e = 0; e < EXECUTIONS; e += EXECUTIONS_PER_BATCH) {
    const runs = Array.from({ length: EXECUTIONS_PER_BATCH }, (_, k) => execution(e + k));
    const decisions = runs.flatMap((run) => Array.from({ length: DECISIONS_PER_EXECUTION }, (_, i) => decision(run.id, i, run.startedAt + i * 100)));
    const start = performance.now();
    if (rawOnly === null) await store.write(runs, decisions);
    else await writeRawOnly(rawOnly, runs, decisions);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** What a write was before the aggregates: the two inserts, nothing else (schema version 1). */
async function writeRawOnly(db: SqlDriver, runs: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void> {
  await db.transaction(async (tx) => {
    const e = runs.map((r) => [r.id, r.subject, r.policySource, r.policyHash, r.language, r.outcome, r.allowedRequests, r.blockedRequests, r.wouldBlockRequests, r.codeSha256, r.codeBytes, r.startedAt, r.finishedAt]);
    await tx.query(
      `INSERT INTO audit_executions (id, subject, policy_source, policy_hash, language, outcome, allowed_requests, blocked_requests, would_block_requests, code_sha256, code_bytes, started_at, finished_at)
       VALUES ${e.map((row) => `(${row.map(() => '?').join(', ')})`).join(', ')} ON CONFLICT (id) DO NOTHING`,
      e.flat(),
    );
    for (let i = 0; i < decisions.length; i += 200) {
      const d = decisions.slice(i, i + 200).map((r) => [r.executionId, r.at, r.method, r.scheme, r.host, r.port, r.path, r.allowed ? 1 : 0, r.wouldBlock ? 1 : 0, r.reason, r.rule, r.statusCode, r.durationMs]);
      await tx.query(
        `INSERT INTO audit_decisions (execution_id, at, method, scheme, host, port, path, allowed, would_block, reason, rule, status_code, duration_ms)
         VALUES ${d.map((row) => `(${row.map(() => '?').join(', ')})`).join(', ')}`,
        d.flat(),
      );
    }
  });
}

async function measureDriver(open: () => Promise<SqlDriver>, openRawOnly: () => Promise<SqlDriver>): Promise<DriverQueryResult> {
  const rawDb = await openRawOnly();
  let rawWrites: number[];
  try {
    await new AuditStore(rawDb).migrate(1);
    rawWrites = await seed(new AuditStore(rawDb), rawDb);
  } finally {
    await rawDb.close();
  }
  const db = await open();
  const store = new AuditStore(db);
  try {
    await store.migrate();
    const writes = await seed(store, null);
    const count = (): Promise<unknown> => db.query('SELECT COUNT(*) AS n FROM audit_decisions');
    const plainCount = { name: 'COUNT(*) of the decisions', value: await timed(count) };
    const day = NOW - DAY_MS;
    const week = NOW - 7 * DAY_MS;
    const subject = 'user-3';
    const suggest = (observed: Parameters<typeof suggestPolicy>[1]) => suggestPolicy({ allowedDomains: [] }, observed);
    const figure = async (name: string, fn: () => Promise<unknown>, baseline: QueryFigure['baseline'] | [string, () => Promise<unknown>]): Promise<QueryFigure> => ({
      name,
      value: await timed(fn),
      baseline: Array.isArray(baseline) ? { name: baseline[0], value: await timed(baseline[1]) } : baseline,
    });
    const queries = [
      await figure('executions of a subject, blocked only (page of 50)', () => store.listExecutions({ subject, blockedOnly: true, limit: 50 }), plainCount),
      await figure('one execution with its 100 decisions', () => store.getExecution('bench-503'), plainCount),
      await figure('summary of a subject, all time', () => store.summary({ subject }), ['raw join', () => rawSummary(db, { subject })]),
      await figure('summary of everyone, all time', () => store.summary({}), ['raw join', () => rawSummary(db, {})]),
      await figure('summary of everyone, last 24 h (not on the hour)', () => store.summary({ since: day }), ['raw join', () => rawSummary(db, { since: day })]),
      await figure('suggestion scan of a subject, last 7 days (not on the hour)', () => store.observedRequests({ subject, since: week, limit: 10_000 }), [
        'newest 10,000 raw decisions', () => rawSuggestionScan(db, subject, week),
      ]),
      await figure('suggestion, scan + suggestPolicy', async () => suggest(await store.observedRequests({ subject, since: week, limit: 10_000 })), [
        'raw scan + suggestPolicy', async () => suggest(await rawSuggestionScan(db, subject, week)),
      ]),
    ];
    return {
      driver: db.dialect,
      decisions: EXECUTIONS * DECISIONS_PER_EXECUTION,
      writeBatch: { name: `write a batch (${EXECUTIONS_PER_BATCH} executions, ${EXECUTIONS_PER_BATCH * DECISIONS_PER_EXECUTION} decisions)`, value: summarise(writes), baseline: { name: 'raw rows only', value: summarise(rawWrites) } },
      queries,
    };
  } finally {
    await store.close();
  }
}

async function freshPostgresDatabase(server: PostgresServer, name: string): Promise<SqlDriver> {
  const admin = new PostgresDriver(server.url, () => undefined);
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.close();
  }
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  return new PostgresDriver(url.toString(), () => undefined);
}

export async function auditQueries(log: (message: string) => void = () => undefined): Promise<AuditQueryResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-audit-'));
  const result: AuditQueryResult = { targetMs: QUERY_TARGET_MS, drivers: [], skipped: [] };
  try {
    log('audit queries on SQLite');
    result.drivers.push(await measureDriver(
      () => Promise.resolve(new SqliteDriver(join(dir, 'audit.sqlite'))),
      () => Promise.resolve(new SqliteDriver(join(dir, 'raw.sqlite'))),
    ));
    let postgres: PostgresServer | null = null;
    try {
      postgres = await startPostgres();
    } catch (error) {
      result.skipped.push(`PostgreSQL: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
    if (postgres !== null) {
      const server = postgres;
      try {
        log('audit queries on PostgreSQL');
        result.drivers.push(await measureDriver(() => freshPostgresDatabase(server, 'bench_audit'), () => freshPostgresDatabase(server, 'bench_raw')));
      } finally {
        await server[Symbol.asyncDispose]();
      }
    }
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface AuditLoadResult {
  storeOff: Summary;
  storeOn: Summary;
  decisionsWritten: number;
  dropped: number;
}

/** Warm hello worlds with the store off, then on while DECISIONS_UNDER_LOAD decisions stream into its writer. */
export async function auditUnderLoad(n: number): Promise<AuditLoadResult> {
  const off = await startBenchService({ EXEC_POOL_SIZE: '2', AUDIT_STORE: 'off' });
  let storeOff: Summary;
  try {
    await off.pool.whenFull();
    storeOff = (await warmLatency(off, n)).latency;
  } finally {
    await off.stop();
  }
  const on = await startBenchService({ EXEC_POOL_SIZE: '2', AUDIT_STORE: 'on' });
  try {
    await on.pool.whenFull();
    const writer = on.audit!.writer;
    let sent = 0;
    // 10,000 decisions spread over the run: a steady stream, as a busy proxy makes.
    const pump = setInterval(() => {
      for (let i = 0; i < 100 && sent < DECISIONS_UNDER_LOAD; i += 1, sent += 1) writer.decision(decision(`load-${Math.floor(sent / 100)}`, sent, Date.now()));
    }, 20);
    const storeOn = (await warmLatency(on, n)).latency;
    clearInterval(pump);
    for (; sent < DECISIONS_UNDER_LOAD; sent += 1) writer.decision(decision('load-rest', sent, Date.now()));
    await writer.flush();
    const status = writer.status();
    return { storeOff, storeOn, decisionsWritten: status.written.decision, dropped: status.dropped.decision };
  } finally {
    await on.stop();
  }
}

const ms = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99}`;
const ratio = (a: number, b: number) => (b > 0 ? `${Number((a / b).toPrecision(2))}×` : '');

/** Rows for one driver's queries: measure, value, baseline, ratio and whether p95 meets the target. */
export function auditQueryRows(queries: AuditQueryResult): Array<[string, string, string, string]> {
  const rows: Array<[string, string, string, string]> = [];
  for (const d of queries.drivers) {
    const w = d.writeBatch;
    rows.push([`audit ${d.driver}: ${w.name}`, ms(w.value), `${w.baseline.name} ${w.baseline.value.p50}`, ratio(w.value.p50, w.baseline.value.p50)]);
    for (const q of d.queries) {
      const met = q.value.p95 < queries.targetMs ? 'met' : 'MISSED';
      rows.push([`audit ${d.driver}, ${d.decisions} decisions: ${q.name}`, ms(q.value), `${q.baseline.name} ${q.baseline.value.p50}`, `${ratio(q.value.p50, q.baseline.value.p50)}, p95 < ${queries.targetMs} ms ${met}`]);
    }
  }
  for (const skipped of queries.skipped) rows.push([`audit queries skipped: ${skipped}`, '', '', '']);
  return rows;
}

export function auditRows(load: AuditLoadResult, queries: AuditQueryResult): Array<[string, string, string, string]> {
  return [
    [`/execute hello, warm, audit store on (${load.decisionsWritten} decisions written, ${load.dropped} dropped)`, ms(load.storeOn), `store off ${load.storeOff.p50}`, load.storeOff.p50 > 0 ? `${(load.storeOn.p50 / load.storeOff.p50).toFixed(2)}×` : ''],
    ...auditQueryRows(queries),
  ];
}

/** `--load` adds warm /execute with the store off and on (needs the engine and the sandbox images). */
async function main(): Promise<void> {
  const startedAt = new Date();
  const loadAverage = os.loadavg();
  const log = (message: string) => process.stderr.write(`bench: ${message}\n`);
  let load: AuditLoadResult | undefined;
  if (process.argv.includes('--load')) {
    log('warm /execute with the audit store off, then on while decisions are written');
    load = await auditUnderLoad(30);
  }
  const result = await auditQueries(log);
  printTable(
    ['measure', 'value (ms: p50 / p95 / p99)', 'baseline (ms p50)', `ratio, target (p95 < ${QUERY_TARGET_MS} ms)`],
    load === undefined ? auditQueryRows(result) : auditRows(load, result),
  );
  process.stdout.write(`load average at start ${loadAverage.map((l) => l.toFixed(2)).join(' ')}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  await writeStandaloneResult('audit', 'audit', startedAt, { loadAverage: { start: loadAverage, end: os.loadavg() }, ...(load === undefined ? {} : { load }), queries: result });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
