/**
 * The egress proxy on its own, driven from this process through a session's
 * Unix socket exactly as the in-sandbox forwarder would, against the same
 * loopback upstream reached directly. Keep-alive on both sides: the figure
 * is the proxy's cost per request, not connection set-up.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Writable, type Duplex } from 'node:stream';
import { EgressProxy, type EgressSession } from '../egress-proxy/index.ts';
import { canonicalHost, createDecider, policyFromApi } from '../policies/index.ts';
import { createLogger } from '../server/logger.ts';
import { startUpstream, type Upstream } from '../test/fixtures/upstream.ts';
import { closedLoop, type LoadResult } from './stats.ts';

const HOST = 'bench.test';
const PATH = '/v1/items/42';

export interface ProxyWorld {
  upstream: Upstream;
  proxy: EgressProxy<null>;
  session: EgressSession<null>;
  socketPath: string;
  close(): Promise<void>;
}

export async function startProxyWorld(): Promise<ProxyWorld> {
  const upstream = await startUpstream([HOST]);
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-proxy-'));
  // Path rules too, so every request goes through the glob matcher as a real policy's would.
  const decide = createDecider(policyFromApi({ allowedDomains: [HOST], apiPathRules: { [HOST]: [{ path: '/v1/*', allow: true, method: 'GET' }] } }));
  // The decision log line per request is part of the real cost; its output goes nowhere.
  const logger = createLogger('info', new Writable({ write: (_chunk, _enc, done) => done() }));
  const proxy = await EgressProxy.create<null>({
    decide: (request) => decide(request),
    canonicalHost,
    dataDir,
    hostMap: upstream.hostMap([HOST]),
    upstreamCa: upstream.caPem,
    logger,
  });
  const socketPath = join(dataDir, 'proxy.sock');
  // The network log stops growing at its cap (1000), as in production.
  const session = await proxy.openSession({ executionId: 'bench', socketPath, context: null });
  return {
    upstream,
    proxy,
    session,
    socketPath,
    async close() {
      await session.close();
      await proxy.close();
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
  const tunnelAgent = new TunnelAgent(world.socketPath, world.proxy.caCertPem, agentOptions);
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
    const proxied = await closedLoop(concurrency, durationMs, s.proxied);
    world.upstream.reset();
    return { scheme, concurrency, direct, proxied };
  } finally {
    s.destroy();
  }
}
