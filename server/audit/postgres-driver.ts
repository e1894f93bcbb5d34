/**
 * PostgreSQL through node-postgres, for several API instances sharing one
 * audit trail. Short connect and statement timeouts: a store that hangs
 * must surface as a failed batch (counted, retried), never as a stuck writer.
 */
import pg from 'pg';
import type { Row, SqlDriver, SqlRunner, SqlValue } from './sql.ts';

const CONNECT_TIMEOUT_MS = 3_000;
const STATEMENT_TIMEOUT_MS = 10_000;

/** `?` placeholders (the store's SQL) as PostgreSQL's `$n`. */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/gu, () => `$${++n}`);
}

export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres';
  readonly description: string;
  readonly #pool: pg.Pool;

  constructor(url: string, onError: (error: Error) => void) {
    const parsed = new URL(url);
    this.description = `postgres://${parsed.host}${parsed.pathname}${parsed.searchParams.has('host') ? ` (socket ${parsed.searchParams.get('host')})` : ''}`;
    this.#pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: STATEMENT_TIMEOUT_MS + 1_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection dropped by a restarting server: the next query reconnects.
    this.#pool.on('error', onError);
  }

  async query(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return (await this.#pool.query(numberedPlaceholders(sql), [...params])).rows as Row[];
  }

  async transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work({ query: async (sql, params = []) => (await client.query(numberedPlaceholders(sql), [...params])).rows as Row[] });
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
