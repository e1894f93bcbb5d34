/**
 * Counts kept beside the raw decisions so the administrator queries read a
 * few thousand rows instead of scanning every decision:
 *
 * - `audit_decision_counts`: decisions per subject × span × host × method ×
 *   decision × reason (the egress summary);
 * - `audit_request_counts`: decisions per subject × span × host × port ×
 *   method × path × blocked, with the last time each was seen (suggestions).
 *
 * Each decision is counted twice: in its hour and in its (UTC) day. A
 * window reads whole days, then whole hours at its ends, then the raw rows
 * of the partial hours at its very edges.
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

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** The spans counted, finest first; each is a whole number of the one before. */
export const SPANS = [HOUR_MS, DAY_MS] as const;
export type Span = (typeof SPANS)[number];
export const bucketOf = (at: number, span: Span = HOUR_MS): number => Math.floor(at / span) * span;
const bucketOfAt = (span: Span): string => `(d.at / ${span}) * ${span}`;

/** Taken shared by writers and exclusively by migrations and retention (PostgreSQL; SQLite has one writer). */
export const AGGREGATE_LOCK_KEY = 7411520;

type Dialect = SqlDriver['dialect'];

const DECISION_KEY_COLUMNS = ['subject_null', 'subject', 'span', 'bucket', 'host', 'method', 'allowed', 'would_block', 'reason_null', 'reason'] as const;
const REQUEST_KEY_COLUMNS = ['subject', 'span', 'bucket', 'host', 'port', 'method', 'path', 'blocked'] as const;
export const DECISION_COUNT_COLUMNS = [...DECISION_KEY_COLUMNS, 'n'] as const;
export const REQUEST_COUNT_COLUMNS = [...REQUEST_KEY_COLUMNS, 'n', 'last_at'] as const;

/**
 * The unique keys. PostgreSQL limits a b-tree entry to about 2.7 kB, and a
 * host, a path or a reason (which quotes the path) can be longer: it keys
 * those by their md5. SQLite has no such limit and keys the text itself,
 * so its tables can be clustered on the key (WITHOUT ROWID).
 */
const decisionKey = (dialect: Dialect): string =>
  dialect === 'postgres'
    ? '(subject_null, subject, span, bucket, md5(host), method, allowed, would_block, reason_null, md5(reason))'
    : `(${DECISION_KEY_COLUMNS.join(', ')})`;
const requestKey = (dialect: Dialect): string =>
  dialect === 'postgres' ? '(subject, span, bucket, md5(host), port, method, md5(path), blocked)' : `(${REQUEST_KEY_COLUMNS.join(', ')})`;

/** The tables, their keys and the backfill from the rows already stored (a migration). */
export function aggregateSchema(dialect: Dialect): string[] {
  const clustered = (key: string) => (dialect === 'sqlite' ? `, PRIMARY KEY ${key}) WITHOUT ROWID` : ')');
  const uniqueIndex = (table: string, key: string) => (dialect === 'postgres' ? [`CREATE UNIQUE INDEX ${table}_key ON ${table} ${key}`] : []);
  return [
    `CREATE TABLE audit_decision_counts (
      subject_null INTEGER NOT NULL,
      subject TEXT NOT NULL,
      span BIGINT NOT NULL,
      bucket BIGINT NOT NULL,
      host TEXT NOT NULL,
      method TEXT NOT NULL,
      allowed INTEGER NOT NULL,
      would_block INTEGER NOT NULL,
      reason_null INTEGER NOT NULL,
      reason TEXT NOT NULL,
      n BIGINT NOT NULL${clustered(decisionKey(dialect))}`,
    ...uniqueIndex('audit_decision_counts', decisionKey(dialect)),
    'CREATE INDEX audit_decision_counts_bucket ON audit_decision_counts (span, bucket)',
    `CREATE TABLE audit_request_counts (
      subject TEXT NOT NULL,
      span BIGINT NOT NULL,
      bucket BIGINT NOT NULL,
      host TEXT NOT NULL,
      port INTEGER NOT NULL,
      method TEXT NOT NULL,
      path TEXT NOT NULL,
      blocked INTEGER NOT NULL,
      n BIGINT NOT NULL,
      last_at BIGINT NOT NULL${clustered(requestKey(dialect))}`,
    ...uniqueIndex('audit_request_counts', requestKey(dialect)),
    // No index on (span, bucket): every read names a subject (the key's prefix), and retention's hourly delete can scan.
    ...recountHours(''),
    ...rollUpDays(''),
  ];
}

/** Counts the hours of the decisions `where` selects (on `d.at`) from the raw rows. */
function recountHours(where: string): string[] {
  return [
    `INSERT INTO audit_decision_counts (${DECISION_COUNT_COLUMNS.join(', ')})
     SELECT CASE WHEN e.subject IS NULL THEN 1 ELSE 0 END, COALESCE(e.subject, ''), ${HOUR_MS}, ${bucketOfAt(HOUR_MS)}, d.host, d.method, d.allowed, d.would_block,
            CASE WHEN d.reason IS NULL THEN 1 ELSE 0 END, COALESCE(d.reason, ''), COUNT(*)
     FROM audit_decisions d LEFT JOIN audit_executions e ON e.id = d.execution_id
     ${where === '' ? '' : `WHERE ${where}`}
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10`,
    `INSERT INTO audit_request_counts (${REQUEST_COUNT_COLUMNS.join(', ')})
     SELECT e.subject, ${HOUR_MS}, ${bucketOfAt(HOUR_MS)}, d.host, d.port, d.method, d.path, CASE WHEN d.allowed = 0 OR d.would_block = 1 THEN 1 ELSE 0 END,
            COUNT(*), MAX(d.at)
     FROM audit_decisions d JOIN audit_executions e ON e.id = d.execution_id
     WHERE e.subject IS NOT NULL${where === '' ? '' : ` AND ${where}`}
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8`,
  ];
}

/** Sums the hours `where` selects (on `bucket`) into their days: a day is the sum of its hours. */
function rollUpDays(where: string): string[] {
  const day = `(bucket / ${DAY_MS}) * ${DAY_MS}`;
  const hours = `span = ${HOUR_MS}${where === '' ? '' : ` AND ${where}`}`;
  return [
    `INSERT INTO audit_decision_counts (${DECISION_COUNT_COLUMNS.join(', ')})
     SELECT subject_null, subject, ${DAY_MS}, ${day}, host, method, allowed, would_block, reason_null, reason, SUM(n)
     FROM audit_decision_counts WHERE ${hours}
     GROUP BY subject_null, subject, ${day}, host, method, allowed, would_block, reason_null, reason`,
    `INSERT INTO audit_request_counts (${REQUEST_COUNT_COLUMNS.join(', ')})
     SELECT subject, ${DAY_MS}, ${day}, host, port, method, path, blocked, SUM(n), MAX(last_at)
     FROM audit_request_counts WHERE ${hours}
     GROUP BY subject, ${day}, host, port, method, path, blocked`,
  ];
}

/** Drops the counts of whole buckets before `cutoff` (every decision in them is gone). */
export async function dropBucketsBefore(tx: SqlRunner, cutoff: number): Promise<void> {
  for (const span of SPANS) {
    for (const table of ['audit_decision_counts', 'audit_request_counts']) {
      await tx.query(`DELETE FROM ${table} WHERE span = ? AND bucket < ?`, [span, bucketOf(cutoff, span)]);
    }
  }
}

/** Recounts the given hours from the raw rows, then the days that hold them from their hours (after retention). */
export async function rebuildHours(tx: SqlRunner, hours: Iterable<number>): Promise<void> {
  const days = new Set<number>();
  for (const hour of hours) {
    for (const table of ['audit_decision_counts', 'audit_request_counts']) await tx.query(`DELETE FROM ${table} WHERE span = ? AND bucket = ?`, [HOUR_MS, hour]);
    for (const statement of recountHours(`d.at >= ${hour} AND d.at < ${hour + HOUR_MS}`)) await tx.query(statement);
    days.add(bucketOf(hour, DAY_MS));
  }
  for (const day of days) {
    for (const table of ['audit_decision_counts', 'audit_request_counts']) await tx.query(`DELETE FROM ${table} WHERE span = ? AND bucket = ?`, [DAY_MS, day]);
    for (const statement of rollUpDays(`bucket >= ${day} AND bucket < ${day + DAY_MS}`)) await tx.query(statement);
  }
}

/** The hours holding decisions that will outlive their execution when executions started before `cutoff` go. */
export async function hoursOrphanedBy(tx: SqlRunner, cutoff: number): Promise<number[]> {
  const rows = await tx.query(
    `SELECT DISTINCT ${bucketOfAt(HOUR_MS)} AS bucket FROM audit_executions e JOIN audit_decisions d ON d.execution_id = e.id WHERE e.started_at < ? AND d.at >= ?`,
    [cutoff, cutoff],
  );
  return rows.map((row) => Number(row.bucket));
}

/** What the aggregates need of a decision. */
export type CountedDecision = Pick<DecisionRecord, 'host' | 'port' | 'method' | 'path' | 'allowed' | 'wouldBlock' | 'reason'> & { hour: number };

const flag = (b: boolean): number => (b ? 1 : 0);

/** Changes to the aggregates one batch makes, summed per key, applied with one upsert per table. */
export class AggregateDeltas {
  readonly #decisions = new Map<string, { key: SqlValue[]; n: number }>();
  readonly #requests = new Map<string, { key: SqlValue[]; n: number; lastAt: number }>();
  #lowestUncountedDay: number | null = null;

  /** `n` decisions whose execution has `subject` (null: no subject, or no execution yet). */
  add(subject: string | null, d: CountedDecision, n: number, lastAt: number): void {
    for (const span of SPANS) {
      const bucket = bucketOf(d.hour, span);
      this.#addDecisions(subject, span, bucket, d, n);
      if (subject === null) continue;
      const key: SqlValue[] = [subject, span, bucket, d.host, d.port, d.method, d.path, flag(!d.allowed || d.wouldBlock)];
      const id = JSON.stringify(key);
      const entry = this.#requests.get(id);
      if (entry === undefined) this.#requests.set(id, { key, n, lastAt });
      else {
        entry.n += n;
        entry.lastAt = Math.max(entry.lastAt, lastAt);
      }
    }
  }

  /** `n` decisions counted under no subject before their execution (with `subject`) was written. */
  move(subject: string, d: CountedDecision, n: number, lastAt: number): void {
    for (const span of SPANS) this.#addDecisions(null, span, bucketOf(d.hour, span), d, -n);
    const day = bucketOf(d.hour, DAY_MS);
    this.#lowestUncountedDay = Math.min(this.#lowestUncountedDay ?? day, day);
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
    // Moved decisions leave rows at zero under no subject; the subject, span and bucket prefix of the key finds them.
    if (this.#lowestUncountedDay !== null) {
      for (const span of SPANS) {
        await tx.query("DELETE FROM audit_decision_counts WHERE subject_null = 1 AND subject = '' AND span = ? AND bucket >= ? AND n = 0", [span, this.#lowestUncountedDay]);
      }
    }
  }

  #addDecisions(subject: string | null, span: Span, bucket: number, d: CountedDecision, n: number): void {
    const key: SqlValue[] = [flag(subject === null), subject ?? '', span, bucket, d.host, d.method, flag(d.allowed), flag(d.wouldBlock), flag(d.reason === null), d.reason ?? ''];
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
      `SELECT d.execution_id, ${bucketOfAt(HOUR_MS)} AS hour, d.host, d.port, d.method, d.path, d.allowed, d.would_block, d.reason, COUNT(*) AS n, MAX(d.at) AS last_at
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
          hour: Number(row.hour), host: String(row.host), port: Number(row.port), method: String(row.method), path: String(row.path),
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
 * A window [since, until) as whole days and whole hours read from the
 * aggregates and the partial hours at its edges read from the raw rows, so
 * answers are exact for any instant. An absent bound is open.
 */
export interface WindowPlan {
  buckets: Array<{ span: Span; from?: number; to?: number }>;
  edges: Array<[number, number]>;
}

export function planWindow(since: number | undefined, until: number | undefined): WindowPlan {
  const plan: WindowPlan = { buckets: [], edges: [] };
  const cover = (from: number | undefined, to: number | undefined, spans: readonly Span[]): void => {
    if (from !== undefined && to !== undefined && from >= to) return;
    const [span, ...finer] = spans;
    if (span === undefined) {
      if (from !== undefined && to !== undefined) plan.edges.push([from, to]);
      return;
    }
    const first = from === undefined ? undefined : Math.ceil(from / span) * span;
    const last = to === undefined ? undefined : bucketOf(to, span);
    if (first !== undefined && last !== undefined && first >= last) {
      cover(from, to, finer);
      return;
    }
    plan.buckets.push({ span, ...(first === undefined ? {} : { from: first }), ...(last === undefined ? {} : { to: last }) });
    if (from !== undefined && first !== undefined) cover(from, first, finer);
    if (to !== undefined && last !== undefined) cover(last, to, finer);
  };
  cover(since, until, [...SPANS].reverse());
  return plan;
}
