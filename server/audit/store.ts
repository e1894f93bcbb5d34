/**
 * The audit trail over any SqlDriver: batched writes, the administrator
 * queries, and retention. One implementation for SQLite and PostgreSQL.
 */
import {
  AGGREGATE_LOCK_KEY, AggregateDeltas, bucketOf, chunks, countEarlierDecisions, dropBucketsBefore, hoursOrphanedBy, planWindow, rebuildHours,
} from './aggregates.ts';
import { migrate } from './migrations.ts';
import type {
  DecisionKind, DecisionRecord, ExecutionFilter, ExecutionPage, ExecutionRecord, ObservedRequestCount, ObservedRequestFilter, SummaryFilter, SummaryRow,
} from './records.ts';
import type { Row, SqlDriver, SqlRunner, SqlValue } from './sql.ts';

const EXECUTION_COLUMNS = [
  'id', 'subject', 'policy_source', 'policy_hash', 'policy_version', 'language', 'tier', 'outcome', 'exit_code', 'signal', 'error_code',
  'duration_ms', 'queued_ms', 'allowed_requests', 'blocked_requests', 'would_block_requests', 'code_sha256', 'code_bytes', 'code',
  'started_at', 'finished_at',
] as const;
const DECISION_COLUMNS = [
  'execution_id', 'at', 'method', 'scheme', 'host', 'port', 'path', 'allowed', 'would_block', 'reason', 'rule', 'status_code', 'secrets', 'duration_ms',
] as const;
/** Rows per INSERT: well under both databases' limits on bound parameters. */
const ROWS_PER_INSERT = 200;

const executionValues = (e: ExecutionRecord): SqlValue[] => [
  e.id, e.subject, e.policySource, e.policyHash, e.policyVersion, e.language, e.tier, e.outcome, e.exitCode, e.signal, e.errorCode,
  e.durationMs, e.queuedMs, e.allowedRequests, e.blockedRequests, e.wouldBlockRequests, e.codeSha256, e.codeBytes, e.code,
  e.startedAt, e.finishedAt,
];
const decisionValues = (d: DecisionRecord): SqlValue[] => [
  d.executionId, d.at, d.method, d.scheme, d.host, d.port, d.path, d.allowed ? 1 : 0, d.wouldBlock ? 1 : 0, d.reason, d.rule, d.statusCode,
  d.secrets.length === 0 ? null : d.secrets.join(','), d.durationMs,
];

const text = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : null);
const int = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function executionFrom(row: Row): ExecutionRecord {
  return {
    id: String(row.id),
    subject: text(row.subject),
    policySource: String(row.policy_source),
    policyHash: String(row.policy_hash),
    policyVersion: text(row.policy_version),
    language: String(row.language),
    tier: text(row.tier),
    outcome: String(row.outcome),
    exitCode: int(row.exit_code),
    signal: text(row.signal),
    errorCode: text(row.error_code),
    durationMs: int(row.duration_ms),
    queuedMs: int(row.queued_ms),
    allowedRequests: Number(row.allowed_requests),
    blockedRequests: Number(row.blocked_requests),
    wouldBlockRequests: Number(row.would_block_requests),
    codeSha256: String(row.code_sha256),
    codeBytes: Number(row.code_bytes),
    code: text(row.code),
    startedAt: Number(row.started_at),
    finishedAt: Number(row.finished_at),
  };
}

function decisionFrom(row: Row): DecisionRecord {
  const secrets = text(row.secrets);
  return {
    executionId: String(row.execution_id),
    at: Number(row.at),
    method: String(row.method),
    scheme: String(row.scheme),
    host: String(row.host),
    port: Number(row.port),
    path: String(row.path),
    allowed: Number(row.allowed) === 1,
    wouldBlock: Number(row.would_block) === 1,
    reason: text(row.reason),
    rule: text(row.rule),
    statusCode: Number(row.status_code),
    secrets: secrets === null ? [] : secrets.split(','),
    durationMs: Number(row.duration_ms),
  };
}

async function insertRows(tx: SqlRunner, table: string, columns: readonly string[], rows: SqlValue[][], suffix = ''): Promise<Row[]> {
  const returned: Row[] = [];
  for (const chunk of chunks(rows, ROWS_PER_INSERT)) {
    const tuple = `(${columns.map(() => '?').join(', ')})`;
    returned.push(...(await tx.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${chunk.map(() => tuple).join(', ')}${suffix}`, chunk.flat())));
  }
  return returned;
}

/** The subjects of the executions named, as stored (absent: not written yet). */
async function subjectsOf(tx: SqlRunner, ids: readonly string[]): Promise<Map<string, string | null>> {
  const subjects = new Map<string, string | null>();
  for (const chunk of chunks(ids, ROWS_PER_INSERT)) {
    const rows = await tx.query(`SELECT id, subject FROM audit_executions WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk);
    for (const row of rows) subjects.set(String(row.id), text(row.subject));
  }
  return subjects;
}

/** `column >= ? AND column < ?` for the bounds given, with their parameters. */
function range(column: string, from: number | undefined, to: number | undefined): { sql: string[]; params: SqlValue[] } {
  const sql: string[] = [];
  const params: SqlValue[] = [];
  if (from !== undefined) {
    sql.push(`${column} >= ?`);
    params.push(from);
  }
  if (to !== undefined) {
    sql.push(`${column} < ?`);
    params.push(to);
  }
  return { sql, params };
}

/**
 * A query over a window as a UNION ALL: the aggregate table over the whole
 * days and hours inside it, the raw rows over the partial hours at its edges. Each
 * part is given its conditions and parameters; the caller groups the union.
 */
function windowUnion(
  filter: { since?: number | undefined; until?: number | undefined },
  aggregate: (where: string[], params: SqlValue[]) => { sql: string; params: SqlValue[] },
  raw: (where: string[], params: SqlValue[]) => { sql: string; params: SqlValue[] },
): { sql: string; params: SqlValue[] } {
  const plan = planWindow(filter.since, filter.until);
  const parts: Array<{ sql: string; params: SqlValue[] }> = [];
  for (const { span, from, to } of plan.buckets) {
    const buckets = range('bucket', from, to);
    parts.push(aggregate(['span = ?', ...buckets.sql], [span, ...buckets.params]));
  }
  for (const [from, to] of plan.edges) parts.push(raw(['d.at >= ?', 'd.at < ?'], [from, to]));
  // An empty window still needs a well-formed (empty) union.
  if (parts.length === 0) parts.push(raw(['1 = 0'], []));
  return { sql: parts.map((p) => p.sql).join('\n UNION ALL\n'), params: parts.flatMap((p) => p.params) };
}

const where = (conditions: readonly string[]): string => (conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`);

/** Cursor: the last row's (started_at, id), opaque to clients. */
const encodeCursor = (e: ExecutionRecord): string => Buffer.from(JSON.stringify([e.startedAt, e.id])).toString('base64url');
export function decodeCursor(cursor: string): [number, string] | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'number' && typeof value[1] === 'string') return [value[0], value[1]];
  } catch {
    // Not one of ours.
  }
  return null;
}

export class AuditStore {
  readonly #db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  get description(): string {
    return `${this.#db.dialect} ${this.#db.description}`;
  }

  /** Applies pending migrations (up to `upTo`, for tests of a migration); returns the versions applied. */
  migrate(upTo?: number): Promise<number[]> {
    return migrate(this.#db, upTo);
  }

  /**
   * Writes one batch in one transaction, the aggregate counts with it: all of
   * it or none. An execution written twice keeps its first record.
   */
  async write(executions: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void> {
    if (executions.length === 0 && decisions.length === 0) return;
    const dialect = this.#db.dialect;
    await this.#db.transaction(async (tx) => {
      if (dialect === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock_shared(${AGGREGATE_LOCK_KEY})`);
      const inserted = await insertRows(tx, 'audit_executions', EXECUTION_COLUMNS, executions.map(executionValues), ' ON CONFLICT (id) DO NOTHING RETURNING id, subject');
      const deltas = new AggregateDeltas();
      // Decisions stored before their execution was were counted under no subject; they move to it now, before this batch's own are inserted.
      const withSubject = new Map<string, string>();
      for (const row of inserted) if (typeof row.subject === 'string') withSubject.set(String(row.id), row.subject);
      await countEarlierDecisions(tx, withSubject, deltas, ROWS_PER_INSERT);
      await insertRows(tx, 'audit_decisions', DECISION_COLUMNS, decisions.map(decisionValues));
      const subjects = await subjectsOf(tx, [...new Set(decisions.map((d) => d.executionId))]);
      for (const d of decisions) deltas.add(subjects.get(d.executionId) ?? null, { ...d, hour: bucketOf(d.at) }, 1, d.at);
      await deltas.apply(tx, dialect, ROWS_PER_INSERT);
    });
  }

  async listExecutions(filter: ExecutionFilter): Promise<ExecutionPage> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.subject !== undefined) {
      where.push('subject = ?');
      params.push(filter.subject);
    }
    if (filter.outcome !== undefined) {
      where.push('outcome = ?');
      params.push(filter.outcome);
    }
    if (filter.since !== undefined) {
      where.push('started_at >= ?');
      params.push(filter.since);
    }
    if (filter.until !== undefined) {
      where.push('started_at < ?');
      params.push(filter.until);
    }
    if (filter.blockedOnly === true) where.push('(blocked_requests > 0 OR would_block_requests > 0)');
    const cursor = filter.cursor === undefined ? null : decodeCursor(filter.cursor);
    if (cursor !== null) {
      where.push('(started_at < ? OR (started_at = ? AND id < ?))');
      params.push(cursor[0], cursor[0], cursor[1]);
    }
    const rows = await this.#db.query(
      `SELECT * FROM audit_executions ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY started_at DESC, id DESC LIMIT ?`,
      [...params, filter.limit + 1],
    );
    const executions = rows.slice(0, filter.limit).map(executionFrom);
    const last = executions.at(-1);
    return { executions, nextCursor: rows.length > filter.limit && last !== undefined ? encodeCursor(last) : null };
  }

  async getExecution(id: string): Promise<{ execution: ExecutionRecord; decisions: DecisionRecord[] } | null> {
    const [row] = await this.#db.query('SELECT * FROM audit_executions WHERE id = ?', [id]);
    if (row === undefined) return null;
    const decisions = await this.#db.query('SELECT * FROM audit_decisions WHERE execution_id = ? ORDER BY at, id', [id]);
    return { execution: executionFrom(row), decisions: decisions.map(decisionFrom) };
  }

  /** Decision counts by subject, host, method, decision and reason, largest first. */
  async summary(filter: SummaryFilter, limit = 1_000): Promise<SummaryRow[]> {
    const subject = filter.subject;
    const union = windowUnion(
      filter,
      (hours, params) => ({
        sql: `SELECT CASE WHEN subject_null = 1 THEN NULL ELSE subject END AS subject, host, method, allowed, would_block,
                CASE WHEN reason_null = 1 THEN NULL ELSE reason END AS reason, n
              FROM audit_decision_counts ${where([...(subject === undefined ? [] : ['subject_null = 0', 'subject = ?']), ...hours])}`,
        params: [...(subject === undefined ? [] : [subject]), ...params],
      }),
      (edge, params) => ({
        sql: `SELECT e.subject AS subject, d.host AS host, d.method AS method, d.allowed AS allowed, d.would_block AS would_block, d.reason AS reason, 1 AS n
              FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id ${where([...edge, ...(subject === undefined ? [] : ['e.subject = ?'])])}`,
        params: [...params, ...(subject === undefined ? [] : [subject])],
      }),
    );
    const rows = await this.#db.query(
      `SELECT subject, host, method, allowed, would_block, reason, SUM(n) AS total FROM (${union.sql}) t
       GROUP BY subject, host, method, allowed, would_block, reason HAVING SUM(n) > 0
       ORDER BY total DESC, host, method, allowed, would_block, subject, reason LIMIT ?`,
      [...union.params, limit],
    );
    return rows.map((row) => {
      const decision: DecisionKind = Number(row.would_block) === 1 ? 'wouldBlock' : Number(row.allowed) === 1 ? 'allowed' : 'blocked';
      return { subject: text(row.subject), host: String(row.host), method: String(row.method), decision, reason: text(row.reason), count: Number(row.total) };
    });
  }

  /** The distinct requests a subject's code made in a window, the most recently seen first (what suggestions are made from). */
  async observedRequests(filter: ObservedRequestFilter): Promise<ObservedRequestCount[]> {
    const union = windowUnion(
      filter,
      (hours, params) => ({
        sql: `SELECT host, port, method, path, blocked, n, last_at FROM audit_request_counts ${where(['subject = ?', ...hours])}`,
        params: [filter.subject, ...params],
      }),
      (edge, params) => ({
        sql: `SELECT d.host AS host, d.port AS port, d.method AS method, d.path AS path, CASE WHEN d.allowed = 0 OR d.would_block = 1 THEN 1 ELSE 0 END AS blocked,
                1 AS n, d.at AS last_at
              FROM audit_decisions d JOIN audit_executions e ON e.id = d.execution_id ${where([...edge, 'e.subject = ?'])}`,
        params: [...params, filter.subject],
      }),
    );
    const rows = await this.#db.query(
      `SELECT host, port, method, path, blocked, SUM(n) AS total, MAX(last_at) AS last_seen FROM (${union.sql}) t
       GROUP BY host, port, method, path, blocked
       ORDER BY last_seen DESC, host, port, method, path, blocked LIMIT ?`,
      [...union.params, filter.limit],
    );
    return rows.map((row) => ({
      method: String(row.method), host: String(row.host), port: Number(row.port), path: String(row.path), blocked: Number(row.blocked) === 1,
      count: Number(row.total), lastAt: Number(row.last_seen),
    }));
  }

  /** Deletes what is older than `cutoff` (ms since the epoch); returns how many rows went. */
  async deleteBefore(cutoff: number): Promise<{ executions: number; decisions: number }> {
    const dialect = this.#db.dialect;
    return this.#db.transaction(async (tx) => {
      if (dialect === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${AGGREGATE_LOCK_KEY})`);
      // Hours to recount: the cutoff's (it may split it, and its day loses the hours before it), and those holding decisions whose execution goes (they fall under no subject).
      const recount = new Set([...(await hoursOrphanedBy(tx, cutoff)), bucketOf(cutoff)]);
      const decisions = await tx.query('DELETE FROM audit_decisions WHERE at < ? RETURNING id', [cutoff]);
      const executions = await tx.query('DELETE FROM audit_executions WHERE started_at < ? RETURNING id', [cutoff]);
      await dropBucketsBefore(tx, cutoff);
      await rebuildHours(tx, recount);
      return { executions: executions.length, decisions: decisions.length };
    });
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
