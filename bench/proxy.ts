/**
 * The egress proxy on its own, driven from this process through a session's
 * Unix socket exactly as the in-sandbox forwarder would, against the same
 * loopback upstream reached directly. Keep-alive on both sides: the figure
 * is the proxy's cost per request, not connection set-up.
 *
 * The proxy runs in a child process (bench/proxy-world.ts starts it from
 * bench/proxy-server.ts) while the client and the upstream stay here: in
 * production the proxy shares the API server's process, but its clients are
 * sandboxes and its upstreams remote, so neither competes with it for its
 * event loop.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { loadavg } from 'node:os';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import type { Duplex } from 'node:stream';
import { exitLinger, exitRows, type ExitCase } from './proxy-exit.ts';
import { HOST, PATH, PROXY_SERVER, PROXY_TOPOLOGY, startProxyWorld, type ProxyWorld } from './proxy-world.ts';
import { printTable, writeStandaloneResult, type Row } from './report.ts';
import { closedLoop, type LoadResult } from './stats.ts';

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
  /** CONNECTs this agent has sent: how often it dialled and shook hands anew instead of reusing a tunnel. */
  tunnelsOpened = 0;

  constructor(
    private readonly socketPath: string,
    private readonly ca: string,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex | undefined {
    this.tunnelsOpened += 1;
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
  /** The proxy process's CPU time over the proxied run: per request, and as a share of one core; and of it, GC pauses per request (null when the proxy does not report them). */
  proxyCpu: { userMs: number; systemMs: number; perRequestUs: number; coreShare: number; gcPerRequestUs: number | null };
  /** Connections opened during the measured runs: by the client to the proxy (CONNECTs for https), and by the proxy to the upstream. */
  connections: { directToUpstream: number; clientToProxy: number; proxyToUpstream: number };
  /** 1-minute load average before and after the case: the machine is shared. */
  loadAverage: { before: number; after: number };
}

interface Senders {
  direct: Send;
  proxied: Send;
  /** Connections the proxied client has opened so far. */
  proxiedConnections(): number;
  destroy(): void;
}

/** Counts the connections an http.Agent creates. */
function countingAgent(agent: http.Agent): { agent: http.Agent; count: () => number } {
  let opened = 0;
  const create = agent.createConnection.bind(agent);
  agent.createConnection = ((...args: Parameters<typeof create>) => {
    opened += 1;
    return create(...args);
  });
  return { agent, count: () => opened };
}

function senders(world: ProxyWorld, scheme: 'http' | 'https', concurrency: number): Senders {
  const agentOptions = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency };
  const headers = { host: HOST };
  if (scheme === 'http') {
    const directAgent = new http.Agent(agentOptions);
    const counted = countingAgent(new http.Agent(agentOptions));
    const proxyAgent = counted.agent;
    return {
      direct: send(() => http.request({ host: '127.0.0.1', port: world.upstream.httpPort, path: PATH, headers, agent: directAgent })),
      proxied: send(() => http.request({ socketPath: world.socketPath, path: `http://${HOST}${PATH}`, headers, agent: proxyAgent })),
      proxiedConnections: counted.count,
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
    proxiedConnections: () => tunnelAgent.tunnelsOpened,
    destroy: () => {
      directAgent.destroy();
      tunnelAgent.destroy();
    },
  };
}

/** Direct, then through the proxy, each after a short warm-up that opens the kept-alive connections. */
export async function proxyCase(world: ProxyWorld, scheme: 'http' | 'https', concurrency: number, durationMs: number): Promise<ProxyCase> {
  const s = senders(world, scheme, concurrency);
  const upstreamDials = () => world.upstream.connections[scheme];
  const loadBefore = loadavg()[0] ?? 0;
  try {
    await closedLoop(concurrency, 300, s.direct);
    world.upstream.reset();
    const directDialsBefore = upstreamDials();
    const direct = await closedLoop(concurrency, durationMs, s.direct);
    const directToUpstream = upstreamDials() - directDialsBefore;
    await closedLoop(concurrency, 300, s.proxied);
    world.upstream.reset();
    const clientBefore = s.proxiedConnections();
    const upstreamBefore = upstreamDials();
    const before = await world.proxyCpu();
    const proxied = await closedLoop(concurrency, durationMs, s.proxied);
    const after = await world.proxyCpu();
    const connections = { directToUpstream, clientToProxy: s.proxiedConnections() - clientBefore, proxyToUpstream: upstreamDials() - upstreamBefore };
    world.upstream.reset();
    const user = after.user - before.user;
    const system = after.system - before.system;
    const proxyCpu = {
      userMs: Math.round(user / 100) / 10,
      systemMs: Math.round(system / 100) / 10,
      perRequestUs: proxied.completed > 0 ? Math.round((user + system) / proxied.completed) : 0,
      coreShare: Math.round(((user + system) / 1000 / Math.max(1, proxied.durationMs)) * 100) / 100,
      gcPerRequestUs: after.gcMs === undefined || before.gcMs === undefined || proxied.completed === 0 ? null : Math.round(((after.gcMs - before.gcMs) * 1000) / proxied.completed),
    };
    const loadAverage = { before: round2(loadBefore), after: round2(loadavg()[0] ?? 0) };
    return { scheme, concurrency, direct, proxied, proxyCpu, connections, loadAverage };
  } finally {
    s.destroy();
  }
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** ", of which GC n µs" when the proxy reported its GC time. */
export const gcOf = (p: ProxyCase): string => (p.proxyCpu.gcPerRequestUs === null ? '' : `, of which GC ${p.proxyCpu.gcPerRequestUs} µs`);

/** Table rows for proxy cases: measure, value, same-run baseline, difference. */
export function proxyRows(cases: readonly ProxyCase[]): Row[] {
  const rows: Row[] = [];
  for (const p of cases) {
    const name = `${p.scheme.toUpperCase()} via proxy, c=${p.concurrency}`;
    const load = `load ${p.loadAverage.before}→${p.loadAverage.after}`;
    rows.push([`${name}: req/s`, `${p.proxied.perSecond}/s (${p.proxied.failed} failed)`, `direct ${p.direct.perSecond}/s`, `${Math.round((p.proxied.perSecond / p.direct.perSecond) * 100)}%`, load]);
    rows.push([
      `${name}: p50 / p99 ms`,
      `${p.proxied.latency.p50} / ${p.proxied.latency.p99}`,
      `direct ${p.direct.latency.p50} / ${p.direct.latency.p99}`,
      `+${(p.proxied.latency.p50 - p.direct.latency.p50).toFixed(2)} ms p50`,
      '',
    ]);
    rows.push([`${name}: proxy CPU`, `${p.proxyCpu.perRequestUs} µs/request${gcOf(p)}`, `${Math.round(p.proxyCpu.coreShare * 100)}% of a core`, '', '']);
    rows.push([
      `${name}: connections opened`,
      `client→proxy ${p.connections.clientToProxy}, proxy→upstream ${p.connections.proxyToUpstream}`,
      `direct ${p.connections.directToUpstream}`,
      `${p.proxied.completed} requests`,
      '',
    ]);
  }
  return rows;
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

/** Seconds each standalone case runs: `BENCH_PROXY_SECONDS`, 3 by default. */
function caseMs(): number {
  const seconds = Number(process.env.BENCH_PROXY_SECONDS ?? '3');
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 3000;
}

const ALL_CASES = [['http', 1], ['http', 32], ['https', 1], ['https', 32]] as const;

/** `BENCH_PROXY_CASES=https:32,http:1` runs only those (for a profile of one case); all four by default. */
function selectedCases(): ReadonlyArray<readonly ['http' | 'https', number]> {
  const wanted = process.env.BENCH_PROXY_CASES?.split(',').map((c) => c.trim());
  return wanted === undefined ? ALL_CASES : ALL_CASES.filter(([scheme, concurrency]) => wanted.includes(`${scheme}:${concurrency}`));
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const durationMs = caseMs();
  const world = await startProxyWorld();
  const cases: ProxyCase[] = [];
  let connect: ConnectCost;
  let exits: ExitCase[];
  const sandboxNode = process.env.BENCH_SANDBOX_NODE;
  try {
    for (const [scheme, concurrency] of selectedCases()) cases.push(await proxyCase(world, scheme, concurrency, durationMs));
    connect = await connectCost(world, 300);
    // NODE_USE_ENV_PROXY needs node 24: only with the sandbox's node given.
    exits = sandboxNode === undefined ? [] : await exitLinger(world, sandboxNode, [1, 6]);
  } finally {
    await world.close();
  }
  const rows = proxyRows(cases);
  rows.push([`refused CONNECT (403, no TLS), ${connect.count} sequential: proxy CPU`, `${connect.refusedUs} µs/CONNECT`, `allowed, leaf cached ${connect.allowedUs} µs`, '', '']);
  if (sandboxNode !== undefined) rows.push(...exitRows(exits, sandboxNode));
  process.stdout.write(`${PROXY_TOPOLOGY}\n`);
  printTable(['measure', 'value', 'same-run baseline', 'difference', 'machine'], rows);
  await writeStandaloneResult('proxy', 'proxy', startedAt, {
    topology: PROXY_TOPOLOGY,
    proxyServer: PROXY_SERVER,
    durationMs,
    cases,
    connectCost: connect,
    exitLinger: { node: sandboxNode, cases: exits },
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
