/**
 * A private PostgreSQL server for a test file (scripts/postgres.sh): its own
 * cluster in a temp folder, reached over a Unix socket there. Stoppable and
 * restartable mid-test, to play an outage.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = new URL('../../scripts/postgres.sh', import.meta.url).pathname;

export interface PostgresServer {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sandbox-pg-'));
  const start = async (): Promise<string> => (await run('bash', [SCRIPT, 'start', dir], { timeout: 300_000 })).stdout.trim();
  const stop = async (): Promise<void> => {
    await run('bash', [SCRIPT, 'stop', dir], { timeout: 60_000 });
  };
  const url = await start();
  return {
    url,
    stop,
    async start() {
      await start();
    },
    async [Symbol.asyncDispose]() {
      await stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
