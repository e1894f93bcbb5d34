/**
 * The operator's upstream proxy (EGRESS_UPSTREAM_PROXY): allowed traffic
 * leaves through it, so a deployment can sit behind a corporate proxy or
 * leave from one fixed address. The decision is still made here, before
 * anything leaves; the upstream proxy only carries what was allowed.
 *
 * Plain HTTP goes to it in absolute form (the path exactly as checked, the
 * Host the destination's); HTTPS goes through a CONNECT tunnel to the
 * destination, inside which the proxy speaks TLS to the destination itself
 * and verifies its certificate as usual. The tunnel is opened with node:http
 * rather than proxy-chain: proxy-chain's chaining is a proxy server of its
 * own (it re-parses each URL it forwards) or a local listening port per
 * target (`createTunnel`), while all that is needed here is one socket to one
 * destination, made when the request is already decided.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { splitHostPort } from './canonical-host.ts';
import { EgressError } from './errors.ts';

export interface UpstreamProxy {
  /** As the operator wrote it (a name is resolved by the system, like any configured address). */
  host: string;
  port: number;
  /** `Basic …`, when the URL carried credentials. */
  authorization?: string;
  /** `http://host:port`: safe to log, never the credentials. */
  display: string;
}

/** A CONNECT to the upstream proxy that gets no answer in this long fails the request (502). */
const CONNECT_TIMEOUT_MS = 30_000;

/** Parses `http://[user:pass@]host:port`; anything else is an EgressError naming what is wrong. */
export function parseUpstreamProxy(value: string): UpstreamProxy {
  const fail = (why: string) => new EgressError('ERR_EGRESS_UPSTREAM_PROXY', `upstream proxy ${JSON.stringify(redact(value))} ${why}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail('is not a URL (expected http://[user:pass@]host:port)');
  }
  if (url.protocol !== 'http:') throw fail('must be an http:// URL (the proxy itself is spoken to in plain HTTP)');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') throw fail('must have no path, query or fragment');
  const hp = splitHostPort(url.host, 80);
  if (hp === null || hp.host === '') throw fail('has no usable host');
  const host = hp.host.startsWith('[') ? hp.host.slice(1, -1) : hp.host;
  const display = `http://${url.host}`;
  if (url.username === '' && url.password === '') return { host, port: hp.port, display };
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return { host, port: hp.port, display, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

function redact(value: string): string {
  return value.replace(/\/\/[^@/]*@/u, '//***@');
}

/** Headers every request to the upstream proxy carries. */
export function proxyHeaders(proxy: UpstreamProxy): string[] {
  return proxy.authorization === undefined ? [] : ['Proxy-Authorization', proxy.authorization];
}

type Created = (err: Error | null, stream: Duplex) => void;

/**
 * Opens a CONNECT tunnel to `authority` (`host:port`) through the upstream
 * proxy and starts TLS to the destination inside it with `tlsOptions`
 * (servername, trust, identity check: those of a direct connection).
 */
export function connectThrough(proxy: UpstreamProxy, authority: string, tlsOptions: tls.ConnectionOptions, created: Created): void {
  let settled = false;
  const settle = (err: Error | null, stream?: Duplex) => {
    if (settled) return;
    settled = true;
    if (err !== null) created(err, undefined as unknown as Duplex);
    else if (stream !== undefined) created(null, stream);
  };
  const req = http.request({
    host: proxy.host,
    port: proxy.port,
    method: 'CONNECT',
    path: authority,
    headers: ['Host', authority, ...proxyHeaders(proxy)],
    setHost: false,
    agent: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  req.once('connect', (res, socket, head) => {
    if (res.statusCode !== 200) {
      socket.destroy();
      settle(Object.assign(new Error(`upstream proxy ${proxy.display} answered CONNECT ${authority} with ${res.statusCode ?? 0}`), { code: 'EUPSTREAMPROXY' }));
      return;
    }
    if (head.length > 0) socket.unshift(head);
    settle(null, tls.connect({ ...tlsOptions, socket }));
  });
  req.once('timeout', () => req.destroy(Object.assign(new Error(`upstream proxy ${proxy.display} did not answer CONNECT in time`), { code: 'ETIMEDOUT' })));
  req.once('error', (err) => settle(err));
  req.end();
}

/** The TLS options of a direct upstream connection, as the request options carry them. */
function tlsOptionsOf(options: https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext' | 'ALPNProtocols'>): tls.ConnectionOptions {
  return {
    ...(options.servername === undefined ? {} : { servername: options.servername }),
    ...(options.secureContext === undefined ? {} : { secureContext: options.secureContext }),
    ...(options.ALPNProtocols === undefined ? {} : { ALPNProtocols: options.ALPNProtocols }),
    ...(options.checkServerIdentity === undefined ? {} : { checkServerIdentity: options.checkServerIdentity }),
  };
}

/** The CONNECT authority of a request's destination: its options' host and port, IPv6 bracketed. */
function authorityOf(options: http.ClientRequestArgs): string {
  const host = options.host ?? '';
  return `${host.includes(':') ? `[${host}]` : host}:${String(options.port ?? 443)}`;
}

/**
 * Makes an https request's connection through the upstream proxy: give it
 * as `createConnection` with `host`/`port` set to the destination (not an
 * address: the upstream proxy resolves the name).
 */
export function tunnelledConnection(proxy: UpstreamProxy) {
  return (options: http.ClientRequestArgs, created: Created): undefined => {
    connectThrough(proxy, authorityOf(options), tlsOptionsOf(options), created);
    return undefined;
  };
}

/**
 * Pools TLS connections made through the upstream proxy. Its pool key is the
 * destination's name and port (plus the TLS options), so a connection is
 * only ever reused for the destination it was tunnelled to.
 */
export class TunnellingAgent extends https.Agent {
  readonly #connect: ReturnType<typeof tunnelledConnection>;

  constructor(proxy: UpstreamProxy, options: https.AgentOptions) {
    super(options);
    this.#connect = tunnelledConnection(proxy);
  }

  override createConnection(options: http.ClientRequestArgs, callback?: Created): Duplex | null | undefined {
    if (callback === undefined) throw new TypeError('TunnellingAgent connects asynchronously');
    return this.#connect(options, callback);
  }
}
