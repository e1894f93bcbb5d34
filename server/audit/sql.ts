/**
 * The little the audit store needs of a database: statements with `?`
 * placeholders and a transaction. SQLite and PostgreSQL each implement it,
 * so the store's SQL (and its test suite) is one for both.
 */
export type SqlValue = string | number | null;
export type Row = Record<string, unknown>;

export interface SqlRunner {
  query(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
}

export interface SqlDriver extends SqlRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where it stores, for logs (a file, or the server without credentials). */
  readonly description: string;
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
