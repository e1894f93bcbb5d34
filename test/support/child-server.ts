/**
 * The service as operators run it: `server/main.ts` in a child process with
 * its own DATA_DIR and an ephemeral port, so tests can signal it (SIGTERM,
 * SIGKILL) and start it again on the same state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED } from '../../executor/index.ts';
import { instanceIdFor } from '../../server/service.ts';
import { postJson, type JsonResponse } from './http.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ChildServer {
  url: string;
  process: ChildProcess;
  /** Every JSON log line so far. */
  logLines: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<JsonResponse>;
  /** SIGKILL if still running, and wait for the end. */
  kill(): Promise<void>;
}

/** Starts `server/main.ts` with `env` (DATA_DIR required) and resolves once it listens. */
export async function startChildServer(env: Record<string, string> & { DATA_DIR: string }, startTimeoutMs = 60_000): Promise<ChildServer> {
  // One process, the server itself, with tsx as a loader: the tsx command
  // would run the server in a child of its own, which a SIGKILL to the
  // command leaves running.
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', RATE_LIMIT_IP_MAX: '10000', RATE_LIMIT_SUBJECT_MAX: '10000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logLines: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${startTimeoutMs} ms:\n${stderr}`)), startTimeoutMs);
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${how}) before listening:\n${stderr}`));
    });
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      logLines.push(line);
      if (line.msg === 'listening' && typeof line.url === 'string') {
        clearTimeout(timer);
        resolve(line.url);
      }
    });
  });
  return {
    url,
    process: child,
    logLines,
    exited,
    post: (path, body, headers = {}) => postJson(`${url}${path}`, body, headers),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Containers of the server whose DATA_DIR this is, running or not. */
export function containersOf(dataDir: string): Promise<string[]> {
  return new DockerContainerClient().listLabelled({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(dataDir) });
}
