/**
 * The egress proxy for the bench, in a process of its own as in production
 * (where it lives in the API server's process, its clients are sandboxes and
 * its upstreams are remote): one proxy, one session, the same policy, decider
 * and logger set-up the server uses.
 *
 *   node --import tsx bench/proxy-server.ts '<json: see CONFIG>'
 *
 * Prints one ready line (JSON: socket path, CA certificate, pid), then answers
 * each `cpu` line on stdin with its own process.cpuUsage() and the time its
 * garbage collections have taken so far (`gcMs`) as JSON. Exits when
 * stdin closes (so it cannot outlive the bench, however the bench ends) or on
 * SIGTERM.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { EgressProxy } from '../egress-proxy/index.ts';
import { canonicalHost, createDecider, policyFromApi, SecretBinding } from '../policies/index.ts';
import { createLogger } from '../server/logger.ts';

const CONFIG = z.object({
  dataDir: z.string().min(1).describe('The proxy keeps its CA under it'),
  socketPath: z.string().min(1).describe("The session's Unix socket"),
  host: z.string().min(1).describe('The one host the policy allows'),
  hostMap: z.record(z.string(), z.object({ address: z.string(), port: z.number().int() })).describe("host:port → the bench's loopback upstream"),
  upstreamCa: z.string().describe("PEM of the CA that signed the upstream's certificate"),
  secretSocketPath: z.string().min(1).describe('A second session, bound to one secret for `host`'),
});
export type ProxyServerConfig = z.infer<typeof CONFIG>;

export interface ProxyServerReady {
  socketPath: string;
  /** The session with a secret, and the placeholder its requests carry. */
  secretSocketPath: string;
  placeholder: string;
  caCertPem: string;
  pid: number;
}

/** Seconds the proxy may take to close before it exits anyway. */
const CLOSE_GRACE_MS = 5_000;

async function main(): Promise<void> {
  const config = CONFIG.parse(JSON.parse(process.argv[2] ?? '{}'));
  // Path rules too, so every request goes through the glob matcher as a real policy's would.
  const decide = createDecider(policyFromApi({ allowedDomains: [config.host], apiPathRules: { [config.host]: [{ path: '/v1/*', allow: true, method: 'GET' }] } }));
  // The decision log line per request is part of the real cost; its output goes nowhere.
  const logger = createLogger('info', new Writable({ write: (_chunk, _enc, done) => done() }));
  const proxy = await EgressProxy.create<null>({
    decide: (request) => decide(request),
    canonicalHost,
    dataDir: config.dataDir,
    hostMap: config.hostMap,
    upstreamCa: config.upstreamCa,
    logger,
  });
  // The network log stops growing at its cap (1000), as in production.
  const session = await proxy.openSession({ executionId: 'bench', socketPath: config.socketPath, context: null });
  const secrets = SecretBinding.fromSpecs([
    { name: 'STRIPE_KEY', value: 'sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789', hosts: [config.host], in: ['header'], source: 'request' },
  ]);
  const secretSession = await proxy.openSession({ executionId: 'bench-secret', socketPath: config.secretSocketPath, context: null, secrets });

  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(1), CLOSE_GRACE_MS).unref();
    void Promise.all([session.close(), secretSession.close()])
      .then(() => proxy.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`bench proxy: close failed: ${String(err)}\n`);
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', shutdown);
  // GC pauses, summed: a hot path that keeps objects alive for longer than it means to shows here first.
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  }).observe({ entryTypes: ['gc'] });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === 'cpu') process.stdout.write(`${JSON.stringify({ ...process.cpuUsage(), gcMs })}\n`);
  });
  lines.once('close', shutdown);

  const ready: ProxyServerReady = {
    socketPath: session.socketPath,
    secretSocketPath: secretSession.socketPath,
    placeholder: secrets.placeholderEnv().STRIPE_KEY ?? '',
    caCertPem: proxy.caCertPem,
    pid: process.pid,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
