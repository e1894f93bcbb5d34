/**
 * The standalone egress proxy service (egress-proxy/main.ts) as a child
 * process, as compose runs it: its own environment, its own process, no
 * Docker access needed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;

export interface EgressServiceProcess {
  url: string;
  /** Every JSON log line the service wrote. */
  logLines: Array<Record<string, unknown>>;
  /** SIGTERM, then waits for the exit; returns the exit code. */
  stop(): Promise<number | null>;
}

/** A port free right now on loopback, for a server that must be named before it starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export async function startEgressServiceProcess(env: Record<string, string>): Promise<EgressServiceProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'egress-proxy/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', EGRESS_CONTROL_HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logLines: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`egress proxy service did not start: ${stderr}`)), STARTUP_TIMEOUT_MS);
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        logLines.push(parsed);
        if (parsed.msg === 'listening' && typeof parsed.url === 'string') {
          clearTimeout(timer);
          resolve(parsed.url);
        }
      }
    });
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new Error(`egress proxy service exited with ${code}: ${stderr}`));
    });
  });

  return {
    url,
    logLines,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}
