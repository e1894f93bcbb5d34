/**
 * The audit trail over any SqlDriver: batched writes, the administrator
 * queries, and retention. One implementation for SQLite and PostgreSQL.
 */
import { migrate } from './migrations.ts';
import type {
  DecisionFilter, DecisionKind, DecisionRecord, ExecutionFilter, ExecutionPage, ExecutionRecord, SummaryFilter, SummaryRow,
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

async function insertRows(tx: SqlRunner, table: string, columns: readonly string[], rows: SqlValue[][], conflict = ''): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const chunk = rows.slice(i, i + ROWS_PER_INSERT);
    const tuple = `(${columns.map(() => '?').join(', ')})`;
    await tx.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${chunk.map(() => tuple).join(', ')}${conflict}`, chunk.flat());
  }
}

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

  /** Applies pending migrations; returns the versions applied. */
  migrate(): Promise<number[]> {
    return migrate(this.#db);
  }

  /** Writes one batch in one transaction: all of it or none. An execution written twice keeps its first record. */
  async write(executions: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void> {
    if (executions.length === 0 && decisions.length === 0) return;
    await this.#db.transaction(async (tx) => {
      await insertRows(tx, 'audit_executions', EXECUTION_COLUMNS, executions.map(executionValues), ' ON CONFLICT (id) DO NOTHING');
      await insertRows(tx, 'audit_decisions', DECISION_COLUMNS, decisions.map(decisionValues));
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
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.subject !== undefined) {
      where.push('e.subject = ?');
      params.push(filter.subject);
    }
    if (filter.since !== undefined) {
      where.push('d.at >= ?');
      params.push(filter.since);
    }
    if (filter.until !== undefined) {
      where.push('d.at < ?');
      params.push(filter.until);
    }
    const rows = await this.#db.query(
      `SELECT e.subject AS subject, d.host AS host, d.method AS method, d.allowed AS allowed, d.would_block AS would_block, d.reason AS reason, COUNT(*) AS n
       FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id
       ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
       GROUP BY e.subject, d.host, d.method, d.allowed, d.would_block, d.reason
       ORDER BY n DESC, host, method LIMIT ?`,
      [...params, limit],
    );
    return rows.map((row) => {
      const decision: DecisionKind = Number(row.would_block) === 1 ? 'wouldBlock' : Number(row.allowed) === 1 ? 'allowed' : 'blocked';
      return { subject: text(row.subject), host: String(row.host), method: String(row.method), decision, reason: text(row.reason), count: Number(row.n) };
    });
  }

  /** A subject's decisions in a window, newest first (what suggestions are made from). */
  async decisionsOf(filter: DecisionFilter): Promise<DecisionRecord[]> {
    const params: SqlValue[] = [filter.subject];
    let window = '';
    if (filter.since !== undefined) {
      window += ' AND d.at >= ?';
      params.push(filter.since);
    }
    if (filter.until !== undefined) {
      window += ' AND d.at < ?';
      params.push(filter.until);
    }
    const rows = await this.#db.query(
      `SELECT d.* FROM audit_decisions d JOIN audit_executions e ON e.id = d.execution_id WHERE e.subject = ?${window} ORDER BY d.at DESC, d.id DESC LIMIT ?`,
      [...params, filter.limit],
    );
    return rows.map(decisionFrom);
  }

  /** Deletes what is older than `cutoff` (ms since the epoch); returns how many rows went. */
  async deleteBefore(cutoff: number): Promise<{ executions: number; decisions: number }> {
    return this.#db.transaction(async (tx) => {
      const decisions = await tx.query('DELETE FROM audit_decisions WHERE at < ? RETURNING id', [cutoff]);
      const executions = await tx.query('DELETE FROM audit_executions WHERE started_at < ? RETURNING id', [cutoff]);
      return { executions: executions.length, decisions: decisions.length };
    });
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}
