/**
 * The egress proxy on its own, driven from this process through a session's
 * Unix socket exactly as the in-sandbox forwarder would, against the same
 * loopback upstream reached directly. Keep-alive on both sides: the figure
 * is the proxy's cost per request, not connection set-up.
 *
 * The proxy runs in a child process (bench/proxy-server.ts) while the client
 * and the upstream stay here: in production the proxy shares the API
 * server's process, but its clients are sandboxes and its upstreams remote,
 * so neither competes with it for its event loop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { startUpstream, type Upstream } from '../test/fixtures/upstream.ts';
import type { ProxyServerConfig, ProxyServerReady } from './proxy-server.ts';
import { closedLoop, type LoadResult } from './stats.ts';

const HOST = 'bench.test';
const PATH = '/v1/items/42';
const PROXY_SERVER = fileURLToPath(new URL('./proxy-server.ts', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 10_000;

/** Said beside the proxy figures in the table and the JSON. */
export const PROXY_TOPOLOGY =
  "the proxy runs in its own process, as it does in the server's, apart from the bench's client and upstream; " +
  'sharing their event loop would bill it for their TLS and HTTP work too';

export interface ProxyWorld {
  upstream: Upstream;
  socketPath: string;
  /** A session of the same proxy with one secret bound to the bench host, and its placeholder. */
  secretSocketPath: string;
  placeholder: string;
  /** The proxy's CA, which the tunnelled client trusts. */
  caCertPem: string;
  /** The proxy process's own CPU time so far (µs), from process.cpuUsage() there. */
  proxyCpu(): Promise<NodeJS.CpuUsage>;
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

function exited(child: ChildProcess): Promise<void> {
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
      return JSON.parse(await answer) as NodeJS.CpuUsage;
    },
    async close() {
      await stop();
      await upstream.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

type Send = () => Promise<boolean>;

function send(request: () => http.ClientRequest): Send {
  return () =>
    new Promise<boolean>((resolve) => {
      const req = request();
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
        res.on('error', () => resolve(false));
      });
      req.on('error', () => resolve(false));
      req.end();
    });
}

/** An https.Agent whose connections are CONNECT tunnels through the proxy's Unix socket. */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly socketPath: string,
    private readonly ca: string,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex | undefined {
    const raw = net.connect({ path: this.socketPath });
    const authority = `${options.host ?? HOST}:${options.port ?? 443}`;
    raw.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      raw.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) {
        raw.destroy();
        callback?.(new Error(`CONNECT refused: ${head.split('\r\n')[0]}`), raw);
        return;
      }
      const secure = tls.connect({ socket: raw, servername: HOST, ca: this.ca, ALPNProtocols: ['http/1.1'] });
      secure.once('secureConnect', () => callback?.(null, secure));
      secure.once('error', (err) => callback?.(err, secure));
    };
    raw.on('data', onData);
    raw.once('error', (err) => callback?.(err, raw));
    return undefined;
  }
}

export interface ProxyCase {
  scheme: 'http' | 'https';
  concurrency: number;
  direct: LoadResult;
  proxied: LoadResult;
  /** The proxy process's CPU time over the proxied run: per request, and as a share of one core. */
  proxyCpu: { userMs: number; systemMs: number; perRequestUs: number; coreShare: number };
}

function senders(world: ProxyWorld, scheme: 'http' | 'https', concurrency: number): { direct: Send; proxied: Send; destroy: () => void } {
  const agentOptions = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency };
  const headers = { host: HOST };
  if (scheme === 'http') {
    const directAgent = new http.Agent(agentOptions);
    const proxyAgent = new http.Agent(agentOptions);
    return {
      direct: send(() => http.request({ host: '127.0.0.1', port: world.upstream.httpPort, path: PATH, headers, agent: directAgent })),
      proxied: send(() => http.request({ socketPath: world.socketPath, path: `http://${HOST}${PATH}`, headers, agent: proxyAgent })),
      destroy: () => {
        directAgent.destroy();
        proxyAgent.destroy();
      },
    };
  }
  const directAgent = new https.Agent({ ...agentOptions, ca: world.upstream.caPem });
  const tunnelAgent = new TunnelAgent(world.socketPath, world.caCertPem, agentOptions);
  return {
    direct: send(() => https.request({ host: '127.0.0.1', port: world.upstream.httpsPort, servername: HOST, path: PATH, headers, agent: directAgent })),
    proxied: send(() => https.request({ host: HOST, port: 443, path: PATH, headers, agent: tunnelAgent })),
    destroy: () => {
      directAgent.destroy();
      tunnelAgent.destroy();
    },
  };
}

/** Direct, then through the proxy, each after a short warm-up that opens the kept-alive connections. */
export async function proxyCase(world: ProxyWorld, scheme: 'http' | 'https', concurrency: number, durationMs: number): Promise<ProxyCase> {
  const s = senders(world, scheme, concurrency);
  try {
    await closedLoop(concurrency, 300, s.direct);
    world.upstream.reset();
    const direct = await closedLoop(concurrency, durationMs, s.direct);
    await closedLoop(concurrency, 300, s.proxied);
    world.upstream.reset();
    const before = await world.proxyCpu();
    const proxied = await closedLoop(concurrency, durationMs, s.proxied);
    const after = await world.proxyCpu();
    world.upstream.reset();
    const user = after.user - before.user;
    const system = after.system - before.system;
    const proxyCpu = {
      userMs: Math.round(user / 100) / 10,
      systemMs: Math.round(system / 100) / 10,
      perRequestUs: proxied.completed > 0 ? Math.round((user + system) / proxied.completed) : 0,
      coreShare: Math.round(((user + system) / 1000 / Math.max(1, proxied.durationMs)) * 100) / 100,
    };
    return { scheme, concurrency, direct, proxied, proxyCpu };
  } finally {
    s.destroy();
  }
}

export interface ConnectCost {
  count: number;
  /** Proxy CPU per CONNECT to a host the policy refuses, answered 403 on the CONNECT (no TLS, no leaf). */
  refusedUs: number;
  /** Same run, the baseline: proxy CPU per allowed CONNECT whose leaf is cached (accepted, then hung up). */
  allowedUs: number;
}

/** One CONNECT on its own connection; resolves with the status once the answer's head is in. */
function connectOnce(socketPath: string, authority: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'CONNECT', path: authority, headers: { host: authority }, agent: false });
    req.on('connect', (res: http.IncomingMessage, socket: net.Socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * What a CONNECT costs the proxy before any request: `count` CONNECTs to
 * distinct hosts the policy refuses (past the per-session budget of readable
 * refusals, each is answered 403 without TLS), then as many to the allowed
 * host, whose leaf is cached after the first. Sequential, so the figure is
 * CPU per CONNECT, not queueing.
 */
export async function connectCost(world: ProxyWorld, count: number): Promise<ConnectCost> {
  // Spend the readable-refusal budget and warm the allowed host's leaf first.
  for (let i = 0; i < 8; i++) await connectOnce(world.socketPath, `warm-${i}.refused.test:443`);
  await connectOnce(world.socketPath, `${HOST}:443`);
  const cpuOf = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => b.user - a.user + (b.system - a.system);
  const before = await world.proxyCpu();
  for (let i = 0; i < count; i++) {
    const status = await connectOnce(world.socketPath, `flood-${i}.refused.test:443`);
    if (status !== 403) throw new Error(`a refused CONNECT was answered ${status}`);
  }
  const mid = await world.proxyCpu();
  for (let i = 0; i < count; i++) {
    const status = await connectOnce(world.socketPath, `${HOST}:443`);
    if (status !== 200) throw new Error(`an allowed CONNECT was answered ${status}`);
  }
  const after = await world.proxyCpu();
  return { count, refusedUs: Math.round(cpuOf(before, mid) / count), allowedUs: Math.round(cpuOf(mid, after) / count) };
}

export interface SecretCase {
  concurrency: number;
  /** The same HTTPS request through a session without secrets. */
  plain: LoadResult;
  /** Through a session with a secret, carrying its placeholder in `Authorization`: substituted, the response scrubbed. */
  substituted: LoadResult;
}

/** A substituted HTTPS request against the same request without a secret, same proxy, same run. */
export async function secretCase(world: ProxyWorld, concurrency: number, durationMs: number): Promise<SecretCase> {
  const agentOptions = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency };
  const plainAgent = new TunnelAgent(world.socketPath, world.caCertPem, agentOptions);
  const secretAgent = new TunnelAgent(world.secretSocketPath, world.caCertPem, agentOptions);
  const plain = send(() => https.request({ host: HOST, port: 443, path: PATH, headers: { host: HOST, authorization: 'Bearer sk_test_not_a_secret_of_this_session' }, agent: plainAgent }));
  const substituted = send(() => https.request({ host: HOST, port: 443, path: PATH, headers: { host: HOST, authorization: `Bearer ${world.placeholder}` }, agent: secretAgent }));
  try {
    await closedLoop(concurrency, 300, plain);
    await closedLoop(concurrency, 300, substituted);
    world.upstream.reset();
    const plainRun = await closedLoop(concurrency, durationMs, plain);
    world.upstream.reset();
    const substitutedRun = await closedLoop(concurrency, durationMs, substituted);
    world.upstream.reset();
    return { concurrency, plain: plainRun, substituted: substitutedRun };
  } finally {
    plainAgent.destroy();
    secretAgent.destroy();
  }
}
