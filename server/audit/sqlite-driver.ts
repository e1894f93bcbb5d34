/**
 * SQLite through node-sqlite3-wasm: SQLite compiled to WebAssembly and
 * shipped inside the npm package, so installing needs no compiler, no Node
 * headers and no download beyond the registry. It persists to a real file.
 * WAL with exclusive locking: this process is the file's only user (the
 * CLI reads through the administrator API), and exclusive locking is what
 * lets WAL work without shared memory.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import sqlite from 'node-sqlite3-wasm';
import type { Row, SqlDriver, SqlRunner, SqlValue } from './sql.ts';

export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite';
  readonly description: string;
  readonly #db: sqlite.Database;

  constructor(file: string) {
    this.description = file;
    clearStaleLock(file);
    this.#db = new sqlite.Database(file);
    // Names the lock's holder, so a start after a crash can tell the lock is stale.
    writeFileSync(ownerFile(file), `${process.pid}\n`);
    this.#db.get('PRAGMA locking_mode=EXCLUSIVE');
    this.#db.get('PRAGMA journal_mode=WAL');
    this.#db.exec('PRAGMA synchronous=NORMAL');
  }

  /** The journal mode in force (for tests and the start-up log). */
  journalMode(): string {
    const mode = this.#db.get('PRAGMA journal_mode')?.journal_mode;
    return typeof mode === 'string' ? mode : '';
  }

  query(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    try {
      return Promise.resolve(this.#db.all(sql, [...params]) as Row[]);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  async transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T> {
    this.#db.exec('BEGIN');
    try {
      const result = await work(this);
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}

/**
 * The driver locks by creating `<file>.lock` (a directory) and removes it on
 * close. A process killed while holding it leaves it behind, and every later
 * open would answer "database is locked" for good. The lock is stale when the
 * process that took it (`<file>.owner`) is gone: then it is removed. A live
 * holder keeps its lock, and SQLite refuses the second opener as it should.
 */
function clearStaleLock(file: string): void {
  const lock = `${file}.lock`;
  if (!existsSync(lock)) return;
  const holder = lockHolder(file);
  if (holder !== null && (holder === process.pid || processAlive(holder))) return;
  rmSync(lock, { recursive: true, force: true });
}

function ownerFile(file: string): string {
  return `${file}.owner`;
}

function lockHolder(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(ownerFile(file), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
