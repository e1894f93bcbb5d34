/**
 * Schema migrations, applied in order at start-up, each in its own
 * transaction and recorded in `audit_migrations`. Append only: a released
 * migration is never edited, a change is a new entry. The SQL is shared by
 * SQLite and PostgreSQL except where a dialect differs (generated ids,
 * the keys of the aggregate tables).
 */
import { AGGREGATE_LOCK_KEY, aggregateSchema } from './aggregates.ts';
import type { SqlDriver, SqlRunner } from './sql.ts';

interface Migration {
  version: number;
  name: string;
  statements: (dialect: SqlDriver['dialect']) => string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'executions and decisions',
    statements: (dialect) => [
      `CREATE TABLE audit_executions (
        id TEXT PRIMARY KEY,
        subject TEXT,
        policy_source TEXT NOT NULL,
        policy_hash TEXT NOT NULL,
        policy_version TEXT,
        language TEXT NOT NULL,
        tier TEXT,
        outcome TEXT NOT NULL,
        exit_code INTEGER,
        signal TEXT,
        error_code TEXT,
        duration_ms INTEGER,
        queued_ms INTEGER,
        allowed_requests INTEGER NOT NULL,
        blocked_requests INTEGER NOT NULL,
        would_block_requests INTEGER NOT NULL,
        code_sha256 TEXT NOT NULL,
        code_bytes INTEGER NOT NULL,
        code TEXT,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL
      )`,
      'CREATE INDEX audit_executions_subject_started ON audit_executions (subject, started_at)',
      'CREATE INDEX audit_executions_started ON audit_executions (started_at)',
      `CREATE TABLE audit_decisions (
        id ${dialect === 'postgres' ? 'BIGSERIAL PRIMARY KEY' : 'INTEGER PRIMARY KEY AUTOINCREMENT'},
        execution_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        method TEXT NOT NULL,
        scheme TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        path TEXT NOT NULL,
        allowed INTEGER NOT NULL,
        would_block INTEGER NOT NULL,
        reason TEXT,
        rule TEXT,
        status_code INTEGER NOT NULL,
        secrets TEXT,
        duration_ms INTEGER NOT NULL
      )`,
      'CREATE INDEX audit_decisions_execution ON audit_decisions (execution_id)',
      'CREATE INDEX audit_decisions_at ON audit_decisions (at)',
    ],
  },
  {
    // The summary and suggestion queries read these instead of every decision; filled from the rows already stored.
    version: 2,
    name: 'decision and request counts per hour',
    statements: aggregateSchema,
  },
];

async function applied(db: SqlRunner): Promise<Set<number>> {
  const rows = await db.query('SELECT version FROM audit_migrations');
  return new Set(rows.map((row) => Number(row.version)));
}

/** Brings the schema up to date; returns the versions it applied. Safe to run from several instances at once. */
export async function migrate(driver: SqlDriver, upTo = Number.POSITIVE_INFINITY): Promise<number[]> {
  await driver.query('CREATE TABLE IF NOT EXISTS audit_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  const done: number[] = [];
  for (const migration of MIGRATIONS.filter((m) => m.version <= upTo)) {
    const ran = await driver.transaction(async (tx) => {
      // Instances starting together take turns (the loser sees the migration applied), and writers wait for a backfill.
      if (driver.dialect === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${AGGREGATE_LOCK_KEY})`);
      if ((await applied(tx)).has(migration.version)) return false;
      for (const statement of migration.statements(driver.dialect)) await tx.query(statement);
      await tx.query('INSERT INTO audit_migrations (version, name, applied_at) VALUES (?, ?, ?)', [migration.version, migration.name, Date.now()]);
      return true;
    });
    if (ran) done.push(migration.version);
  }
  return done;
}
