/**
 * Attacks on the egress proxy, performed by programs running in the sandbox
 * with raw `net`/`tls` sockets to the in-sandbox proxy port (127.0.0.1:3128),
 * so no client library tidies the request up first. The recording upstream
 * listens on loopback and the host map routes the seed hosts there: each
 * test asserts the forbidden request never reached it, that allowed ones
 * arrived exactly as checked, and what the network log says.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { NetworkLogEntry } from '../egress-proxy/index.ts';
import type { Upstream } from './fixtures/upstream.ts';
import { describeWithDocker } from './support/docker.ts';
import { SEED_USER, startSeedWorld, type SeedWorld } from './support/seed-world.ts';


/** GET only on /api/v1/users/* at okta, and okta's port 8443 opened. */
const PATHS_USER = 'paths-user';
/** Every host on every port the upstream listens on: only the address guard stands between it and loopback. */
const OPEN_USER = 'open-user';

const users = (upstream: Upstream): Record<string, unknown> => ({
  [PATHS_USER]: {
    allowedDomains: ['api.stripe.com', '*.okta.com', 'dev-123.okta.com:8443'],
    apiPathRules: {
      '*.okta.com': [
        { path: '/api/v1/users/*', allow: true, method: 'GET' },
        { path: '/*', allow: false, method: 'DELETE' },
      ],
    },
  },
  [OPEN_USER]: { allowedDomains: ['*', `*:${upstream.httpPort}`, `*:${upstream.httpsPort}`] },
});

/**
 * Runs in the sandbox before each attack program. `plain(raw)` writes raw
 * bytes to the proxy; `tunnel(authority, raw, sni?)` sends CONNECT, speaks TLS
 * (trusting only the proxy's CA) and writes raw bytes inside; both resolve
 * with a summary of every answer on the connection: status codes, the
 * X-Egress-Blocked values and the JSON reasons.
 */
const CLIENT = String.raw`
const net = require('node:net');
const tls = require('node:tls');
const CA = require('node:fs').readFileSync('/run/egress/ca.pem');
const PROXY = { host: '127.0.0.1', port: 3128 };

function summary(text) {
  return {
    statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])),
    blocked: [...text.matchAll(/x-egress-blocked: ([^\r]*)/gi)].map((m) => m[1]),
    reasons: [...text.matchAll(/"reason":"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse('"' + m[1] + '"')),
  };
}

// Everything the peer sends until it closes the connection (or 3 s pass).
function drain(socket) {
  return new Promise((resolve) => {
    let text = '';
    const done = () => { clearTimeout(timer); socket.destroy(); resolve(text); };
    const timer = setTimeout(done, 3000);
    socket.on('data', (c) => { text += c.toString('latin1'); });
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  });
}

function req(method, target, host, extra = '') {
  return method + ' ' + target + ' HTTP/1.1\r\nHost: ' + host + '\r\n' + extra + 'Connection: close\r\n\r\n';
}

async function plain(raw) {
  const socket = net.connect(PROXY);
  socket.write(raw);
  return summary(await drain(socket));
}

function connect(authority) {
  return new Promise((resolve) => {
    const socket = net.connect(PROXY);
    socket.write('CONNECT ' + authority + ' HTTP/1.1\r\nHost: ' + authority + '\r\n\r\n');
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      if (head.startsWith('HTTP/1.1 200 ')) resolve({ socket });
      else drain(socket).then((rest) => resolve({ refused: summary(head + rest) }));
    };
    socket.on('data', onData);
    socket.on('error', (e) => resolve({ refused: { error: e.code } }));
  });
}

// CONNECT alone: the refusal, or { opened: true } (then closed).
async function connectOnly(authority) {
  const c = await connect(authority);
  if (c.refused) return c.refused;
  c.socket.destroy();
  return { opened: true };
}

async function tunnel(authority, raw, sni) {
  const c = await connect(authority);
  if (c.refused) return { connect: c.refused };
  const servername = sni ?? authority.replace(/:\d+$/, '');
  const t = tls.connect({ socket: c.socket, servername, ca: CA, ALPNProtocols: ['http/1.1'] });
  const failed = await new Promise((resolve) => {
    t.once('secureConnect', () => resolve(null));
    t.once('error', (e) => resolve(e.code ?? e.message));
  });
  if (failed !== null) return { tls: failed };
  t.write(raw);
  return summary(await drain(t));
}

function report(attacks) {
  (async () => {
    const out = {};
    for (const [name, attack] of Object.entries(attacks)) out[name] = await attack();
    console.log(JSON.stringify(out));
  })().catch((e) => console.log(JSON.stringify({ crashed: String(e && e.stack) })));
}
`;

interface Answer {
  statuses?: number[];
  blocked?: string[];
  reasons?: string[];
  connect?: Answer;
  tls?: string;
  opened?: boolean;
}

interface Outcome {
  answers: Record<string, Answer>;
  log: NetworkLogEntry[];
  executionId: string;
}

/** What the program read when the proxy refused: one answer, its X-Egress-Blocked code, its JSON reason. */
const refused = (status: number, code: string, reason: unknown): Answer => ({ statuses: [status], blocked: [code], reasons: [reason as string] });
const OK: Answer = { statuses: [200], blocked: [], reasons: [] };
const blockedEntry = (method: string, url: string, hostname: string, statusCode: number, reason: unknown) =>
  expect.objectContaining({ method, url, hostname, statusCode, blocked: true, reason });
/** Our reason for a request llhttp refused; what follows it in parentheses is llhttp's wording, not ours to pin. */
const parserRefusal = (ours: 'Ambiguous message framing' | 'Malformed request'): unknown => expect.stringMatching(new RegExp(`^${ours} \\(`, 'u'));
const allowedEntry = (method: string, url: string, hostname: string) =>
  expect.objectContaining({ method, url, hostname, statusCode: 200, blocked: false });

/** The fixed fields of the service's per-decision log line (pino adds level, time and msg; the service its name). */
const DECISION_LINE_FIELDS = ['level', 'time', 'service', 'component', 'msg', 'executionId', 'method', 'url', 'host', 'port', 'allowed', 'reason', 'rule', 'statusCode', 'durationMs', 'wouldBlock'];

describeWithDocker('attacks on the egress proxy from inside the sandbox', () => {
  let world: SeedWorld;
  const tokens: Record<string, string> = {};

  /** Runs `attacks` (JS: an object literal of name → async () => answer) in the sandbox as `user`. */
  async function attack(user: string, attacks: string): Promise<Outcome> {
    const data = await world.run({ code: `${CLIENT}\nreport(${attacks});` }, { token: tokens[user] ?? world.token });
    expect(data.stderr).toBe('');
    const answers = JSON.parse(data.stdout) as Record<string, Answer>;
    expect(answers).not.toHaveProperty('crashed');
    return { answers, log: data.networkLog as NetworkLogEntry[], executionId: data.executionId as string };
  }

  /** What reached the upstream, one `scheme METHOD path host` line per request. */
  const received = () => world.upstream.requests.map((r) => `${r.scheme} ${r.method} ${r.path} ${r.headers.host ?? ''}`);

  beforeAll(async () => {
    world = await startSeedWorld({}, { users, httpsRoutes: ['dev-123.okta.com:8443'] });
    tokens[PATHS_USER] = await world.tokenFor(PATHS_USER);
    tokens[OPEN_USER] = await world.tokenFor(OPEN_USER);
  });
  afterAll(async () => {
    await world?.close();
  });
  beforeEach(() => {
    world.upstream.reset();
  });

  it('follows no destination but the CONNECT target inside a tunnel (Host, SNI, absolute-form)', async () => {
    const { answers, log } = await attack(
      SEED_USER,
      `{
        control: () => tunnel('api.stripe.com:443', req('GET', '/v1/products', 'api.stripe.com')),
        hostHeader: () => tunnel('api.stripe.com:443', req('GET', '/users/github', 'api.github.com')),
        sni: () => tunnel('api.stripe.com:443', req('GET', '/users/github', 'api.stripe.com'), 'api.github.com'),
        absoluteForm: () => tunnel('api.stripe.com:443', req('GET', 'https://api.github.com/users/github', 'api.stripe.com')),
      }`,
    );
    expect(answers.control).toEqual(OK);
    expect(answers.hostHeader).toEqual(refused(403, 'host-mismatch', 'Host header names api.github.com, not api.stripe.com'));
    // The handshake itself is refused: the program never gets a TLS session to speak through.
    expect(answers.sni).toEqual({ tls: expect.any(String) });
    expect(answers.absoluteForm).toEqual(refused(403, 'host-mismatch', "Request target names https://api.github.com, not the tunnel's https://api.stripe.com"));

    expect(received()).toEqual(['https GET /v1/products api.stripe.com']);
    expect(log).toEqual([
      allowedEntry('GET', 'https://api.stripe.com/v1/products', 'api.stripe.com'),
      blockedEntry('GET', 'https://api.stripe.com/users/github', 'api.stripe.com', 403, 'Host header names api.github.com, not api.stripe.com'),
      blockedEntry('CONNECT', 'https://api.stripe.com', 'api.stripe.com', 0, 'TLS SNI names api.github.com, not the CONNECT target api.stripe.com'),
      blockedEntry('GET', 'https://api.stripe.com/', 'api.stripe.com', 403, "Request target names https://api.github.com, not the tunnel's https://api.stripe.com"),
    ]);
  });

  it('decides each pipelined request and refuses ambiguous framing', async () => {
    const { answers, log } = await attack(
      SEED_USER,
      String.raw`{
        pipelined: () => tunnel('dev-123.okta.com:443',
          'GET /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n' + req('DELETE', '/api/v1/users/1', 'dev-123.okta.com')),
        clThenTe: () => tunnel('api.stripe.com:443',
          req('POST', '/v1/charges', 'api.stripe.com', 'Content-Length: 50\r\nTransfer-Encoding: chunked\r\n') + '0\r\n\r\n' + req('GET', '/v1/smuggled', 'api.stripe.com')),
        teThenCl: () => plain(
          req('POST', 'http://api.stripe.com/v1/charges', 'api.stripe.com', 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n') + '0\r\n\r\n' + req('GET', 'http://api.stripe.com/v1/smuggled', 'api.stripe.com')),
      }`,
    );
    expect(answers.pipelined).toEqual({ statuses: [200, 403], blocked: ['policy'], reasons: ['Method DELETE not allowed for *.okta.com'] });
    expect(answers.clThenTe).toEqual(refused(400, 'ambiguous-framing', parserRefusal('Ambiguous message framing')));
    expect(answers.teThenCl).toEqual(refused(400, 'ambiguous-framing', parserRefusal('Ambiguous message framing')));

    // Neither the smuggled requests nor the carriers that framed them reached the upstream.
    expect(received()).toEqual(['https GET /api/v1/users/1 dev-123.okta.com']);
    expect(log).toEqual([
      allowedEntry('GET', 'https://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com'),
      blockedEntry('DELETE', 'https://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 403, 'Method DELETE not allowed for *.okta.com'),
      blockedEntry('POST', 'https://api.stripe.com/v1/charges', 'api.stripe.com', 400, parserRefusal('Ambiguous message framing')),
      blockedEntry('POST', 'http://api.stripe.com/v1/charges', 'api.stripe.com', 400, parserRefusal('Ambiguous message framing')),
    ]);
  });

  it('judges the method the upstream would act on (lowercase delete, X-HTTP-Method-Override)', async () => {
    const { answers, log } = await attack(
      SEED_USER,
      String.raw`{
        lowercase: () => tunnel('dev-123.okta.com:443', req('delete', '/api/v1/users/1', 'dev-123.okta.com')),
        override: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users/1', 'dev-123.okta.com', 'X-HTTP-Method-Override: DELETE\r\n')),
        overridePlain: () => plain(req('GET', 'http://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 'X-HTTP-Method-Override: delete\r\n')),
      }`,
    );
    expect(answers.lowercase).toEqual(refused(400, 'malformed-request', parserRefusal('Malformed request')));
    expect(answers.override).toEqual(refused(403, 'policy', 'Method DELETE not allowed for *.okta.com'));
    expect(answers.overridePlain).toEqual(refused(403, 'policy', 'Method DELETE not allowed for *.okta.com'));

    expect(received()).toEqual([]);
    expect(log).toEqual([
      blockedEntry('delete', 'https://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 400, parserRefusal('Malformed request')),
      blockedEntry('GET', 'https://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 403, 'Method DELETE not allowed for *.okta.com'),
      blockedEntry('GET', 'http://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 403, 'Method DELETE not allowed for *.okta.com'),
    ]);
  });

  it('checks the path the upstream will resolve (%2e%2e, %2f, //) and sends exactly that path', async () => {
    const { answers, log } = await attack(
      PATHS_USER,
      `{
        encodedDots: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users/%2e%2e/admin', 'dev-123.okta.com')),
        encodedDotsPlain: () => plain(req('GET', 'http://dev-123.okta.com/api/v1/users/%2E%2E/%2e%2e/admin', 'dev-123.okta.com')),
        encodedSlash: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users/..%2fadmin', 'dev-123.okta.com')),
        encodedSlashes: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users%2f..%2f..%2fadmin', 'dev-123.okta.com')),
        doubleSlash: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users//../../admin', 'dev-123.okta.com')),
        allowedSlashes: () => tunnel('dev-123.okta.com:443', req('GET', '//api/v1/users//7', 'dev-123.okta.com')),
        allowedDots: () => tunnel('dev-123.okta.com:443', req('GET', '/api/v1/users/x/%2e%2e/8?q=%2f', 'dev-123.okta.com')),
      }`,
    );
    const noRule = (path: string) => `No rule allows GET ${path} for *.okta.com`;
    const ambiguous = (path: string) => `Ambiguous path ${path} blocked for *.okta.com`;
    expect(answers.encodedDots).toEqual(refused(403, 'policy', noRule('/api/v1/admin')));
    expect(answers.encodedDotsPlain).toEqual(refused(403, 'policy', noRule('/api/admin')));
    expect(answers.encodedSlash).toEqual(refused(403, 'policy', ambiguous('/api/v1/users/..%2fadmin')));
    expect(answers.encodedSlashes).toEqual(refused(403, 'policy', ambiguous('/api/v1/users%2f..%2f..%2fadmin')));
    expect(answers.doubleSlash).toEqual(refused(403, 'policy', noRule('/api/admin')));
    expect(answers.allowedSlashes).toEqual(OK);
    expect(answers.allowedDots).toEqual(OK);

    // Allowed requests arrive with the path the rules matched (query untouched), never the raw spelling.
    expect(received()).toEqual(['https GET /api/v1/users/7 dev-123.okta.com', 'https GET /api/v1/users/8?q=%2f dev-123.okta.com']);
    expect(log.map((e) => [e.url, e.blocked])).toEqual([
      ['https://dev-123.okta.com/api/v1/users/%2e%2e/admin', true],
      ['http://dev-123.okta.com/api/v1/users/%2E%2E/%2e%2e/admin', true],
      ['https://dev-123.okta.com/api/v1/users/..%2fadmin', true],
      ['https://dev-123.okta.com/api/v1/users%2f..%2f..%2fadmin', true],
      ['https://dev-123.okta.com/api/v1/users//../../admin', true],
      ['https://dev-123.okta.com//api/v1/users//7', false],
      ['https://dev-123.okta.com/api/v1/users/x/%2e%2e/8?q=%2f', false],
    ]);
  });

  it('opens a custom port the policy names on a host with path rules, and refuses port 22', async () => {
    const { answers, log } = await attack(
      PATHS_USER,
      `{
        customPort: () => tunnel('dev-123.okta.com:8443', req('GET', '/api/v1/users/42', 'dev-123.okta.com:8443')),
        customPortDelete: () => tunnel('dev-123.okta.com:8443', req('DELETE', '/api/v1/users/42', 'dev-123.okta.com:8443')),
        ssh: () => connectOnly('dev-123.okta.com:22'),
        sshStripe: () => connectOnly('api.stripe.com:22'),
        otherPort: () => connectOnly('dev-123.okta.com:9443'),
      }`,
    );
    expect(answers.customPort).toEqual(OK);
    expect(answers.customPortDelete).toEqual(refused(403, 'policy', 'Method DELETE not allowed for *.okta.com'));
    expect(answers.ssh).toEqual(refused(403, 'policy', 'Port 22 is not allowed for dev-123.okta.com'));
    expect(answers.sshStripe).toEqual(refused(403, 'policy', 'Port 22 is not allowed for api.stripe.com'));
    expect(answers.otherPort).toEqual(refused(403, 'policy', 'Port 9443 is not allowed for dev-123.okta.com'));

    expect(received()).toEqual(['https GET /api/v1/users/42 dev-123.okta.com:8443']);
    expect(log).toEqual([
      allowedEntry('GET', 'https://dev-123.okta.com:8443/api/v1/users/42', 'dev-123.okta.com'),
      blockedEntry('DELETE', 'https://dev-123.okta.com:8443/api/v1/users/42', 'dev-123.okta.com', 403, 'Method DELETE not allowed for *.okta.com'),
      blockedEntry('CONNECT', 'https://dev-123.okta.com:22', 'dev-123.okta.com', 403, 'Port 22 is not allowed for dev-123.okta.com'),
      blockedEntry('CONNECT', 'https://api.stripe.com:22', 'api.stripe.com', 403, 'Port 22 is not allowed for api.stripe.com'),
      blockedEntry('CONNECT', 'https://dev-123.okta.com:9443', 'dev-123.okta.com', 403, 'Port 9443 is not allowed for dev-123.okta.com'),
    ]);
  });

  it('never reaches loopback or metadata addresses, however they are spelt, even when the policy allows *', async () => {
    // The policy opens every host on the very ports the recording upstream listens on: only the address guard is left.
    const { httpPort, httpsPort } = world.upstream;
    const { answers, log } = await attack(
      OPEN_USER,
      `{
        control: () => plain(req('GET', 'http://api.stripe.com/v1/ok', 'api.stripe.com')),
        decimal: () => connectOnly('2130706433:${httpsPort}'),
        hex: () => connectOnly('0x7f000001:${httpsPort}'),
        ipv6: () => connectOnly('[::1]:${httpsPort}'),
        ipv4Mapped: () => connectOnly('[::ffff:127.0.0.1]:${httpsPort}'),
        loopback: () => connectOnly('127.0.0.1:${httpsPort}'),
        localhost: () => tunnel('localhost:${httpsPort}', req('GET', '/', 'localhost:${httpsPort}')),
        metadata: () => connectOnly('169.254.169.254:443'),
        decimalPlain: () => plain(req('GET', 'http://2130706433:${httpPort}/', '2130706433:${httpPort}')),
        hexPlain: () => plain(req('GET', 'http://0x7f000001:${httpPort}/', '0x7f000001:${httpPort}')),
        ipv6Plain: () => plain(req('GET', 'http://[::1]:${httpPort}/', '[::1]:${httpPort}')),
        ipv4MappedPlain: () => plain(req('GET', 'http://[::ffff:127.0.0.1]:${httpPort}/', '[::ffff:127.0.0.1]:${httpPort}')),
        loopbackPlain: () => plain(req('GET', 'http://127.0.0.1:${httpPort}/', '127.0.0.1:${httpPort}')),
        localhostPlain: () => plain(req('GET', 'http://localhost:${httpPort}/', 'localhost:${httpPort}')),
        metadataPlain: () => plain(req('GET', 'http://169.254.169.254/latest/meta-data/', '169.254.169.254')),
      }`,
    );
    const loopback = '127.0.0.1 is loopback';
    const atConnect = (host: string, why: string) => refused(403, 'destination-address', `Destination ${host} is a forbidden address: ${why}`);
    const atDial = (host: string, why: string) => refused(403, 'destination-address', `Destination ${host} resolves to a forbidden address: ${why}`);
    expect(answers.control).toEqual(OK);
    expect(answers.decimal).toEqual(atConnect('127.0.0.1', loopback));
    expect(answers.hex).toEqual(atConnect('127.0.0.1', loopback));
    expect(answers.ipv6).toEqual(atConnect('[::1]', '::1 is loopback'));
    expect(answers.ipv4Mapped).toEqual(atConnect('127.0.0.1', loopback));
    expect(answers.loopback).toEqual(atConnect('127.0.0.1', loopback));
    expect(answers.localhost).toEqual(atDial('localhost', loopback));
    expect(answers.metadata).toEqual(atConnect('169.254.169.254', '169.254.169.254 is link-local (cloud metadata)'));
    expect(answers.decimalPlain).toEqual(atDial('127.0.0.1', loopback));
    expect(answers.hexPlain).toEqual(atDial('127.0.0.1', loopback));
    expect(answers.ipv6Plain).toEqual(atDial('[::1]', '::1 is loopback'));
    expect(answers.ipv4MappedPlain).toEqual(atDial('127.0.0.1', loopback));
    expect(answers.loopbackPlain).toEqual(atDial('127.0.0.1', loopback));
    expect(answers.localhostPlain).toEqual(atDial('localhost', loopback));
    expect(answers.metadataPlain).toEqual(atDial('169.254.169.254', '169.254.169.254 is link-local (cloud metadata)'));

    expect(received()).toEqual(['http GET /v1/ok api.stripe.com']);
    // Logged under the canonical host, whatever spelling the program used.
    expect(log.map((e) => [e.method, e.hostname, e.blocked])).toEqual([
      ['GET', 'api.stripe.com', false],
      ['CONNECT', '127.0.0.1', true],
      ['CONNECT', '127.0.0.1', true],
      ['CONNECT', '[::1]', true],
      ['CONNECT', '127.0.0.1', true],
      ['CONNECT', '127.0.0.1', true],
      ['GET', 'localhost', true],
      ['CONNECT', '169.254.169.254', true],
      ['GET', '127.0.0.1', true],
      ['GET', '127.0.0.1', true],
      ['GET', '[::1]', true],
      ['GET', '127.0.0.1', true],
      ['GET', '127.0.0.1', true],
      ['GET', 'localhost', true],
      ['GET', '169.254.169.254', true],
    ]);
  });

  it('writes one JSON log line per decision, with fixed field names', async () => {
    const { log, executionId } = await attack(
      SEED_USER,
      `{
        allowed: () => tunnel('api.stripe.com:443', req('GET', '/v1/products', 'api.stripe.com')),
        policy: () => tunnel('dev-123.okta.com:443', req('DELETE', '/api/v1/users/1', 'dev-123.okta.com')),
        proxy: () => tunnel('api.stripe.com:443', req('GET', '/', 'api.github.com')),
        port: () => connectOnly('api.stripe.com:22'),
      }`,
    );
    const lines = world.service.logLines.filter((line) => line.msg === 'egress decision' && line.executionId === executionId);
    expect(lines).toHaveLength(log.length);
    for (const line of lines) expect(Object.keys(line).sort()).toEqual([...DECISION_LINE_FIELDS].sort());
    expect(lines.map((l) => [l.method, l.url, l.host, l.port, l.allowed, l.statusCode, l.reason, l.rule])).toEqual([
      ['GET', 'https://api.stripe.com/v1/products', 'api.stripe.com', 443, true, 200, 'Domain api.stripe.com is allowed', 'allowedDomains[0]'],
      ['DELETE', 'https://dev-123.okta.com/api/v1/users/1', 'dev-123.okta.com', 443, false, 403, 'Method DELETE not allowed for *.okta.com', 'apiPathRules["*.okta.com"][1]'],
      ['GET', 'https://api.stripe.com/', 'api.stripe.com', 443, false, 403, 'Host header names api.github.com, not api.stripe.com', 'proxy:host-mismatch'],
      ['CONNECT', 'https://api.stripe.com:22', 'api.stripe.com', 22, false, 403, 'Port 22 is not allowed for api.stripe.com', 'allowedDomains[0]'],
    ]);
    for (const [i, line] of lines.entries()) {
      expect(line).toMatchObject({ level: 30, component: 'egress', durationMs: expect.any(Number) });
      expect(line.url).toBe(log[i]?.url);
    }
  });
});
