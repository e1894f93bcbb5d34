/**
 * The proxy the bench measures, in a child process of its own
 * (bench/proxy-server.ts), with a loopback upstream in this process: how it
 * is started, asked for its CPU and GC time, and stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startUpstream, type Upstream } from '../test/fixtures/upstream.ts';
import type { ProxyServerConfig, ProxyServerReady } from './proxy-server.ts';

/** The one host the bench policy allows, and the path every request asks for. */
export const HOST = 'bench.test';
export const PATH = '/v1/items/42';
/** `BENCH_PROXY_SERVER=<path>` runs another checkout's proxy-server.ts (a baseline build) against the same client and upstream. */
export const PROXY_SERVER = process.env.BENCH_PROXY_SERVER ?? fileURLToPath(new URL('./proxy-server.ts', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;

/** Said beside the proxy figures in the table and the JSON. */
export const PROXY_TOPOLOGY =
  "the proxy runs in its own process, as it does in the server's, apart from the bench's client and upstream; " +
  'sharing their event loop would bill it for their TLS and HTTP work too';

export interface ProxyCpuUsage extends NodeJS.CpuUsage {
  gcMs?: number;
}

export interface ProxyWorld {
  upstream: Upstream;
  socketPath: string;
  /** A session of the same proxy with one secret bound to the bench host, and its placeholder. */
  secretSocketPath: string;
  placeholder: string;
  /** The proxy's CA, which the tunnelled client trusts. */
  caCertPem: string;
  /** The proxy process's own CPU time so far (µs), from process.cpuUsage() there, and its GC time so far (ms; absent from a baseline build that does not report it). */
  proxyCpu(): Promise<ProxyCpuUsage>;
  close(): Promise<void>;
}

/**
 * `BENCH_PROXY_CPU_PROF=<dir>` has the proxy process write a V8 CPU profile
 * there when it exits.
 */
function profileFlags(): string[] {
  const dir = process.env.BENCH_PROXY_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startProxyWorld(): Promise<ProxyWorld> {
  const upstream = await startUpstream([HOST]);
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-proxy-'));
  const config: ProxyServerConfig = {
    dataDir,
    socketPath: join(dataDir, 'proxy.sock'),
    secretSocketPath: join(dataDir, 'secret', 'proxy.sock'),
    host: HOST,
    hostMap: Object.fromEntries(upstream.hostMap([HOST])),
    upstreamCa: upstream.caPem,
  };
  // The same tsx loader this bench runs under; stdin stays open for as long as the proxy should live.
  const child = spawn(process.execPath, [...process.execArgv, ...profileFlags(), PROXY_SERVER, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // A proxy that died is reported by the next question put to it, not by a write error here.
  child.stdin.on('error', () => undefined);
  // Whatever ends this process (a thrown error included) ends the proxy with it.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  const stop = async () => {
    child.stdin.end();
    const timer = setTimeout(killChild, EXIT_TIMEOUT_MS);
    await exited(child);
    clearTimeout(timer);
    process.off('exit', killChild);
  };

  const lines = createInterface({ input: child.stdout });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = (timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const fail = (message: string) => {
        // A late answer must not be taken as the reply to a later question.
        const at = waiting.indexOf(take);
        if (at >= 0) waiting.splice(at, 1);
        clearTimeout(timer);
        child.off('exit', onExit);
        reject(new Error(message));
      };
      const onExit = () => fail(`bench proxy exited (code ${child.exitCode}, signal ${child.signalCode})`);
      const timer = setTimeout(() => fail(`bench proxy did not answer within ${timeoutMs} ms`), timeoutMs);
      const take = (line: string) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(line);
      };
      if (child.exitCode !== null || child.signalCode !== null) return onExit();
      child.once('exit', onExit);
      waiting.push(take);
    });

  let ready: ProxyServerReady;
  try {
    ready = JSON.parse(await nextLine(READY_TIMEOUT_MS)) as ProxyServerReady;
  } catch (err) {
    await stop();
    await upstream.close();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    upstream,
    socketPath: ready.socketPath,
    secretSocketPath: ready.secretSocketPath,
    placeholder: ready.placeholder,
    caCertPem: ready.caCertPem,
    async proxyCpu() {
      const answer = nextLine(5_000);
      child.stdin.write('cpu\n');
      return JSON.parse(await answer) as ProxyCpuUsage;
    },
    async close() {
      await stop();
      await upstream.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

