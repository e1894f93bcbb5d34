import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteDriver } from './sqlite-driver.ts';

describe('SqliteDriver', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const fileIn = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sqlite-driver-'));
    dirs.push(dir);
    return join(dir, 'audit.sqlite');
  };

  it('opens a file whose lock was left by a process that is gone (a crash)', async () => {
    const file = fileIn();
    const first = new SqliteDriver(file);
    await first.query('CREATE TABLE t (x INTEGER)');
    await first.query('INSERT INTO t VALUES (1)');
    await first.close();
    // What a SIGKILLed holder leaves: the lock directory and its own pid as owner.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    mkdirSync(`${file}.lock`);
    writeFileSync(`${file}.owner`, `${gone}\n`);

    const second = new SqliteDriver(file);
    expect(await second.query('SELECT x FROM t')).toEqual([{ x: 1 }]);
    await second.close();
  });

  it('leaves a lock held by a live process alone, so SQLite refuses the second opener', () => {
    const file = fileIn();
    mkdirSync(`${file}.lock`);
    // This test's parent is alive for as long as the test runs.
    writeFileSync(`${file}.owner`, `${process.ppid}\n`);
    expect(() => new SqliteDriver(file)).toThrow(/locked/u);
  });
});
