/**
 * The keep-alive a connection inside a tunnel announces, and that the proxy
 * honours it: a client that trusts the announcement must never have its next
 * request cut off with the connection, and a program that made one request
 * must not be kept alive by its tunnel. And when a client does open a new
 * tunnel, it resumes its TLS session rather than paying a full handshake.
 */
import { promises as fs } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalHost } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { connectTunnel, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { eventually } from '../test/support/eventually.ts';
import { EgressProxy } from './index.ts';
import type { EgressSession } from './index.ts';
import { CLOSE_GRACE_MS } from './tunnel-keep-alive.ts';

const HOST = 'api.stripe.com';
let up: Upstream;
let dataDir: string;
let proxy: EgressProxy<null>;
let seq = 0;

beforeAll(async () => {
  up = await startUpstream();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tunnel-keep-alive-test-'));
  proxy = await EgressProxy.create<null>({
    decide: (req) => ({ allowed: true, reason: 'allow all', rule: 'test', host: canonicalHost(req.host) }),
    dataDir,
    hostMap: up.hostMap([HOST]),
    upstreamCa: up.caPem,
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
  });
});

afterAll(async () => {
  await proxy.close();
  await up.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

async function open(): Promise<EgressSession<null>> {
  seq += 1;
  return proxy.openSession({ executionId: `keep-alive-${seq}`, socketPath: path.join(dataDir, `s${seq}`, 'proxy.sock'), context: null });
}

async function tunnel(s: EgressSession<null>): Promise<tls.TLSSocket> {
  const t = await connectTunnel(s.socketPath, `${HOST}:443`);
  return tlsOverTunnel(t.socket, HOST, proxy.caCertPem);
}

/** One request on the connection and its whole response (the upstream always sends Content-Length): status line and Keep-Alive. */
function exchange(tl: tls.TLSSocket, target: string): Promise<{ status: string; keepAlive: string | undefined }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: *(\d+)/iu.exec(text);
      if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) {
        tl.off('data', onData);
        tl.off('close', onClose);
        resolve({ status: text.split('\r\n')[0] ?? '', keepAlive: /keep-alive: *([^\r]*)/iu.exec(text)?.[1] });
      }
    };
    const onClose = () => reject(new Error(`the proxy closed the connection before answering ${target}`));
    if (tl.destroyed) {
      onClose();
      return;
    }
    tl.on('data', onData);
    tl.once('close', onClose);
    tl.write(`GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  });
}

const announcedMs = (keepAlive: string | undefined) => Number(/timeout=(\d+)/u.exec(keepAlive ?? '')?.[1] ?? Number.NaN) * 1000;

/** A Node https.Agent shaped like the global one, whose connections are tunnels through the session. */
function tunnellingAgent(s: EgressSession<null>): { agent: https.Agent; tunnels: tls.TLSSocket[] } {
  const tunnels: tls.TLSSocket[] = [];
  const agent = new https.Agent({ keepAlive: true, timeout: 5_000 });
  agent.createConnection = ((_options: unknown, callback: (err: Error | null, socket?: Duplex) => void) => {
    tunnel(s).then(
      (tl) => {
        tunnels.push(tl);
        callback(null, tl);
      },
      (err: Error) => callback(err),
    );
    return undefined;
  });
  return { agent, tunnels };
}

function get(agent: https.Agent, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: HOST, path: target, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.headers['keep-alive'])));
      })
      .on('error', reject);
  });
}

describe('keep-alive inside a tunnel', () => {
  it('keeps an idle connection open until the keep-alive it announced has passed', async () => {
    const s = await open();
    const tl = await tunnel(s);
    try {
      const first = await exchange(tl, '/v1/first');
      expect(first.status).toBe('HTTP/1.1 200 OK');
      const timeoutMs = announcedMs(first.keepAlive);
      expect(timeoutMs).toBeGreaterThan(0);
      // A client that trusted the announcement to the letter sends its next request just before it runs out.
      await new Promise((resolve) => setTimeout(resolve, timeoutMs - 100));
      expect((await exchange(tl, '/v1/second')).status).toBe('HTTP/1.1 200 OK');
      expect(up.requests.map((r) => r.path).slice(-2)).toEqual(['/v1/first', '/v1/second']);
    } finally {
      tl.destroy();
      await s.close();
    }
  });

  it('closes an idle connection itself once the announced keep-alive and its grace have passed', async () => {
    const s = await open();
    const tl = await tunnel(s);
    try {
      const closed = new Promise<number>((resolve) => tl.once('close', () => resolve(performance.now())));
      const answered = await exchange(tl, '/v1/only');
      const answeredAt = performance.now();
      expect(await closed).toBeGreaterThanOrEqual(answeredAt + announcedMs(answered.keepAlive));
    } finally {
      tl.destroy();
      await s.close();
    }
  }, 10_000 + CLOSE_GRACE_MS);

  it('tells a client making one request to close the connection after it, so the program is not kept alive', async () => {
    const s = await open();
    const { agent, tunnels } = tunnellingAgent(s);
    try {
      expect(await get(agent, '/v1/alone')).toBe('timeout=1');
      expect(await eventually(() => tunnels[0]?.destroyed === true || Object.keys(agent.freeSockets).length > 0)).toBe(true);
      expect(Object.keys(agent.freeSockets)).toEqual([]);
    } finally {
      agent.destroy();
      await s.close();
    }
  });

  it('lets a client making requests back to back reuse the connection instead of opening a tunnel per request', async () => {
    const s = await open();
    const { agent, tunnels } = tunnellingAgent(s);
    try {
      const hints = [];
      for (let i = 0; i < 4; i++) hints.push(await get(agent, `/v1/next-${i}`));
      // The first arrived alone; the rest followed one another, so their connection was kept for the next.
      expect(hints).toEqual(['timeout=1', 'timeout=2', 'timeout=2', 'timeout=2']);
      expect(tunnels).toHaveLength(2);
    } finally {
      agent.destroy();
      await s.close();
    }
  });

  it('announces the longer keep-alive to a request while another is in flight', async () => {
    const s = await open();
    const { agent, tunnels } = tunnellingAgent(s);
    try {
      const hints = await Promise.all([get(agent, '/v1/a'), get(agent, '/v1/b')]);
      expect(hints).toContain('timeout=2');
      expect(tunnels).toHaveLength(2);
    } finally {
      agent.destroy();
      await s.close();
    }
  });
});

describe('a new tunnel to a host already reached', () => {
  it('resumes the TLS session the last one left, instead of a full handshake', async () => {
    const s = await open();
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const t = await connectTunnel(s.socketPath, `${HOST}:443`);
        const tl = tls.connect({ socket: t.socket, servername: HOST, ca: proxy.caCertPem, ALPNProtocols: ['http/1.1'], ...(session === undefined ? {} : { session }) });
        // TLS 1.3 sends its tickets after the handshake: the first one is taken once a response has come back.
        tl.on('session', (ticket: Buffer) => {
          session ??= ticket;
        });
        await new Promise<void>((resolve, reject) => {
          tl.once('secureConnect', () => resolve());
          tl.once('error', reject);
        });
        expect((await exchange(tl, `/v1/tunnel-${i}`)).status).toBe('HTTP/1.1 200 OK');
        reused.push(tl.isSessionReused());
        tl.destroy();
      }
      expect(reused).toEqual([false, true, true]);
    } finally {
      await s.close();
    }
  });
});
