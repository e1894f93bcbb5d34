/**
 * Counts kept beside the raw decisions so the administrator queries read a
 * few thousand rows instead of scanning every decision:
 *
 * - `audit_decision_counts`: decisions per subject × hour × host × method ×
 *   decision × reason (the egress summary);
 * - `audit_request_counts`: decisions per subject × hour × host × port ×
 *   method × path × blocked, with the last time each was seen (suggestions).
 *
 * Each is exactly what a recount of the raw rows would give: `subject` is
 * the subject of the decision's execution, as the queries join it. That
 * execution record usually arrives after its decisions (it is written when
 * the run ends), so a decision is first counted under no subject and moved
 * to its subject when the execution is written. The writer keeps the
 * counts in the transaction that inserts the rows; retention rebuilds the
 * hours it touches. Nullable key columns are stored as a flag and '' so
 * they can be part of a unique key on both databases.
 */
import type { DecisionRecord } from './records.ts';
import type { SqlDriver, SqlRunner, SqlValue } from './sql.ts';

/** One hour: windows that do not start or end on the hour read their edges from the raw rows. */
export const BUCKET_MS = 3_600_000;
export const bucketOf = (at: number): number => Math.floor(at / BUCKET_MS) * BUCKET_MS;
const BUCKET_OF_AT = `(d.at / ${BUCKET_MS}) * ${BUCKET_MS}`;

/** Taken shared by writers and exclusively by migrations and retention (PostgreSQL; SQLite has one writer). */
export const AGGREGATE_LOCK_KEY = 7411520;

type Dialect = SqlDriver['dialect'];

export const DECISION_COUNT_COLUMNS = ['subject_null', 'subject', 'bucket', 'host', 'method', 'allowed', 'would_block', 'reason_null', 'reason', 'n'] as const;
export const REQUEST_COUNT_COLUMNS = ['subject', 'bucket', 'host', 'port', 'method', 'path', 'blocked', 'n', 'last_at'] as const;

/**
 * The unique keys. PostgreSQL limits a b-tree entry to about 2.7 kB, and a
 * host, a path or a reason (which quotes the path) can be longer: it keys
 * those by their md5. SQLite has no such limit and keys the text itself,
 * so its tables can be clustered on the key (WITHOUT ROWID).
 */
const decisionKey = (dialect: Dialect): string =>
  dialect === 'postgres'
    ? '(subject_null, subject, bucket, md5(host), method, allowed, would_block, reason_null, md5(reason))'
    : '(subject_null, subject, bucket, host, method, allowed, would_block, reason_null, reason)';
const requestKey = (dialect: Dialect): string =>
  dialect === 'postgres' ? '(subject, bucket, md5(host), port, method, md5(path), blocked)' : '(subject, bucket, host, port, method, path, blocked)';

/** The tables, their keys and the backfill from the rows already stored (a migration). */
export function aggregateSchema(dialect: Dialect): string[] {
  const clustered = (key: string) => (dialect === 'sqlite' ? `, PRIMARY KEY ${key}) WITHOUT ROWID` : ')');
  const uniqueIndex = (table: string, key: string) => (dialect === 'postgres' ? [`CREATE UNIQUE INDEX ${table}_key ON ${table} ${key}`] : []);
  return [
    `CREATE TABLE audit_decision_counts (
      subject_null INTEGER NOT NULL,
      subject TEXT NOT NULL,
      bucket BIGINT NOT NULL,
      host TEXT NOT NULL,
      method TEXT NOT NULL,
      allowed INTEGER NOT NULL,
      would_block INTEGER NOT NULL,
      reason_null INTEGER NOT NULL,
      reason TEXT NOT NULL,
      n BIGINT NOT NULL${clustered(decisionKey(dialect))}`,
    ...uniqueIndex('audit_decision_counts', decisionKey(dialect)),
    'CREATE INDEX audit_decision_counts_bucket ON audit_decision_counts (bucket)',
    `CREATE TABLE audit_request_counts (
      subject TEXT NOT NULL,
      bucket BIGINT NOT NULL,
      host TEXT NOT NULL,
      port INTEGER NOT NULL,
      method TEXT NOT NULL,
      path TEXT NOT NULL,
      blocked INTEGER NOT NULL,
      n BIGINT NOT NULL,
      last_at BIGINT NOT NULL${clustered(requestKey(dialect))}`,
    ...uniqueIndex('audit_request_counts', requestKey(dialect)),
    'CREATE INDEX audit_request_counts_bucket ON audit_request_counts (bucket)',
    ...recountStatements(''),
  ];
}

/** Recounts the aggregates of the decisions `where` selects (on `d.at`) from the raw rows. */
function recountStatements(where: string): string[] {
  return [
    `INSERT INTO audit_decision_counts (${DECISION_COUNT_COLUMNS.join(', ')})
     SELECT CASE WHEN e.subject IS NULL THEN 1 ELSE 0 END, COALESCE(e.subject, ''), ${BUCKET_OF_AT}, d.host, d.method, d.allowed, d.would_block,
            CASE WHEN d.reason IS NULL THEN 1 ELSE 0 END, COALESCE(d.reason, ''), COUNT(*)
     FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id
     ${where === '' ? '' : `WHERE ${where}`}
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9`,
    `INSERT INTO audit_request_counts (${REQUEST_COUNT_COLUMNS.join(', ')})
     SELECT e.subject, ${BUCKET_OF_AT}, d.host, d.port, d.method, d.path, CASE WHEN d.allowed = 0 OR d.would_block = 1 THEN 1 ELSE 0 END, COUNT(*), MAX(d.at)
     FROM audit_decisions d JOIN audit_executions e ON e.id = d.execution_id
     WHERE e.subject IS NOT NULL${where === '' ? '' : ` AND ${where}`}
     GROUP BY 1, 2, 3, 4, 5, 6, 7`,
  ];
}

/** Drops the counts of whole hours before `bucket` (every decision in them is gone). */
export async function dropBucketsBefore(tx: SqlRunner, bucket: number): Promise<void> {
  await tx.query('DELETE FROM audit_decision_counts WHERE bucket < ?', [bucket]);
  await tx.query('DELETE FROM audit_request_counts WHERE bucket < ?', [bucket]);
}

/** Recounts the given hours from the raw rows (after retention deleted some of them, or their executions). */
export async function rebuildBuckets(tx: SqlRunner, buckets: Iterable<number>): Promise<void> {
  for (const bucket of buckets) {
    await tx.query('DELETE FROM audit_decision_counts WHERE bucket = ?', [bucket]);
    await tx.query('DELETE FROM audit_request_counts WHERE bucket = ?', [bucket]);
    for (const statement of recountStatements(`d.at >= ${bucket} AND d.at < ${bucket + BUCKET_MS}`)) await tx.query(statement);
  }
}

/** The hours holding decisions that will outlive their execution when executions started before `cutoff` go. */
export async function bucketsOrphanedBy(tx: SqlRunner, cutoff: number): Promise<number[]> {
  const rows = await tx.query(
    `SELECT DISTINCT ${BUCKET_OF_AT} AS bucket FROM audit_executions e JOIN audit_decisions d ON d.execution_id = e.id WHERE e.started_at < ? AND d.at >= ?`,
    [cutoff, cutoff],
  );
  return rows.map((row) => Number(row.bucket));
}

/** What the aggregates need of a decision. */
export type CountedDecision = Pick<DecisionRecord, 'host' | 'port' | 'method' | 'path' | 'allowed' | 'wouldBlock' | 'reason'> & { bucket: number };

const flag = (b: boolean): number => (b ? 1 : 0);

/** Changes to the aggregates one batch makes, summed per key, applied with one upsert per table. */
export class AggregateDeltas {
  readonly #decisions = new Map<string, { key: SqlValue[]; n: number }>();
  readonly #requests = new Map<string, { key: SqlValue[]; n: number; lastAt: number }>();
  #lowestUncountedBucket: number | null = null;

  /** `n` decisions whose execution has `subject` (null: no subject, or no execution yet). */
  add(subject: string | null, d: CountedDecision, n: number, lastAt: number): void {
    this.#addDecisions(subject, d, n);
    if (subject === null) return;
    const key: SqlValue[] = [subject, d.bucket, d.host, d.port, d.method, d.path, flag(!d.allowed || d.wouldBlock)];
    const id = JSON.stringify(key);
    const entry = this.#requests.get(id);
    if (entry === undefined) this.#requests.set(id, { key, n, lastAt });
    else {
      entry.n += n;
      entry.lastAt = Math.max(entry.lastAt, lastAt);
    }
  }

  /** `n` decisions counted under no subject before their execution (with `subject`) was written. */
  move(subject: string, d: CountedDecision, n: number, lastAt: number): void {
    this.#addDecisions(null, d, -n);
    this.#lowestUncountedBucket = Math.min(this.#lowestUncountedBucket ?? d.bucket, d.bucket);
    this.add(subject, d, n, lastAt);
  }

  async apply(tx: SqlRunner, dialect: Dialect, rowsPerInsert: number): Promise<void> {
    const decisions = [...this.#decisions.values()].filter((e) => e.n !== 0).map((e) => [...e.key, e.n]);
    const requests = [...this.#requests.values()].map((e) => [...e.key, e.n, e.lastAt]);
    const greatest = dialect === 'postgres' ? 'GREATEST' : 'MAX';
    for (const chunk of chunks(decisions, rowsPerInsert)) {
      await tx.query(
        `INSERT INTO audit_decision_counts (${DECISION_COUNT_COLUMNS.join(', ')}) VALUES ${tuples(chunk)}
         ON CONFLICT ${decisionKey(dialect)} DO UPDATE SET n = audit_decision_counts.n + excluded.n`,
        chunk.flat(),
      );
    }
    for (const chunk of chunks(requests, rowsPerInsert)) {
      await tx.query(
        `INSERT INTO audit_request_counts (${REQUEST_COUNT_COLUMNS.join(', ')}) VALUES ${tuples(chunk)}
         ON CONFLICT ${requestKey(dialect)} DO UPDATE SET n = audit_request_counts.n + excluded.n,
           last_at = ${greatest}(audit_request_counts.last_at, excluded.last_at)`,
        chunk.flat(),
      );
    }
    // Moved decisions leave rows at zero under no subject; the subject-and-hour prefix of the key finds them.
    if (this.#lowestUncountedBucket !== null) {
      await tx.query("DELETE FROM audit_decision_counts WHERE subject_null = 1 AND subject = '' AND bucket >= ? AND n = 0", [this.#lowestUncountedBucket]);
    }
  }

  #addDecisions(subject: string | null, d: CountedDecision, n: number): void {
    const key: SqlValue[] = [flag(subject === null), subject ?? '', d.bucket, d.host, d.method, flag(d.allowed), flag(d.wouldBlock), flag(d.reason === null), d.reason ?? ''];
    const id = JSON.stringify(key);
    const entry = this.#decisions.get(id);
    if (entry === undefined) this.#decisions.set(id, { key, n });
    else entry.n += n;
  }
}

/**
 * Decisions already stored for executions being written now, grouped as the
 * aggregates key them: they were counted under no subject and move to the
 * execution's. Run before the batch's own decisions are inserted.
 */
export async function countEarlierDecisions(tx: SqlRunner, executions: ReadonlyMap<string, string>, deltas: AggregateDeltas, idsPerQuery: number): Promise<void> {
  for (const ids of chunks([...executions.keys()], idsPerQuery)) {
    const rows = await tx.query(
      `SELECT d.execution_id, ${BUCKET_OF_AT} AS bucket, d.host, d.port, d.method, d.path, d.allowed, d.would_block, d.reason, COUNT(*) AS n, MAX(d.at) AS last_at
       FROM audit_decisions d WHERE d.execution_id IN (${ids.map(() => '?').join(', ')})
       GROUP BY d.execution_id, 2, d.host, d.port, d.method, d.path, d.allowed, d.would_block, d.reason`,
      ids,
    );
    for (const row of rows) {
      const subject = executions.get(String(row.execution_id));
      if (subject === undefined) continue;
      deltas.move(
        subject,
        {
          bucket: Number(row.bucket), host: String(row.host), port: Number(row.port), method: String(row.method), path: String(row.path),
          allowed: Number(row.allowed) === 1, wouldBlock: Number(row.would_block) === 1, reason: typeof row.reason === 'string' ? row.reason : null,
        },
        Number(row.n),
        Number(row.last_at),
      );
    }
  }
}

export function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

const tuples = (rows: readonly SqlValue[][]): string => rows.map((row) => `(${row.map(() => '?').join(', ')})`).join(', ');

/**
 * A window [since, until) as whole hours read from the aggregates and the
 * partial hours at its edges read from the raw rows, so answers are exact
 * for any instant. `hours` is null when no whole hour lies inside.
 */
export interface WindowPlan {
  hours: { from?: number; to?: number } | null;
  edges: Array<[number, number]>;
}

export function planWindow(since: number | undefined, until: number | undefined): WindowPlan {
  const from = since === undefined ? undefined : Math.ceil(since / BUCKET_MS) * BUCKET_MS;
  const to = until === undefined ? undefined : bucketOf(until);
  if (since !== undefined && until !== undefined && from !== undefined && to !== undefined && from >= to) {
    return { hours: null, edges: since < until ? [[since, until]] : [] };
  }
  const edges: Array<[number, number]> = [];
  if (since !== undefined && from !== undefined && since < from) edges.push([since, from]);
  if (until !== undefined && to !== undefined && to < until) edges.push([to, until]);
  return { hours: { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) }, edges };
}
