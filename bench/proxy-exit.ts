/**
 * How long a program lingers after its last request through the proxy, run
 * the sandbox's way (NODE_USE_ENV_PROXY against the proxy's session).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, HOST, PATH, type ProxyWorld } from './proxy-world.ts';
import type { Row } from './report.ts';

export interface ExitCase {
  client: string;
  requests: number;
  /** Program start to its "done" line, and from that line to the process's exit (what lingering connections add). */
  runMs: number;
  lingerMs: number;
}

const EXIT_PROGRAMS: ReadonlyArray<{ client: string; code: (requests: number) => string }> = [
  {
    client: 'fetch',
    code: (n) => `(async () => { for (let i = 0; i < ${n}; i++) await fetch('https://${HOST}${PATH}').then((r) => r.text()); console.log('done'); })();`,
  },
  {
    client: 'https.get',
    code: (n) =>
      `const https = require('node:https'); const get = () => new Promise((ok, fail) => https.get('https://${HOST}${PATH}', (r) => { r.resume(); r.on('end', ok); }).on('error', fail));` +
      ` (async () => { for (let i = 0; i < ${n}; i++) await get(); console.log('done'); })();`,
  },
];

/**
 * How long a program lingers after its last request through the proxy: a
 * kept-alive tunnel keeps a Node program alive (its client cannot unref the
 * socket under TLS) until one side closes it. Runs the sandbox's way of
 * reaching the proxy: NODE_USE_ENV_PROXY, a loopback TCP port forwarded to
 * the session's socket, the proxy's CA trusted. `node` is the binary to run
 * (`BENCH_SANDBOX_NODE`: the sandbox image's node; NODE_USE_ENV_PROXY needs
 * node 24 or later, so without it this part is left out).
 */
export async function exitLinger(world: ProxyWorld, node: string, requestCounts: readonly number[]): Promise<ExitCase[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-exit-'));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, world.caCertPem);
  const forwarder = net.createServer((client) => {
    const upstream = net.connect({ path: world.socketPath, allowHalfOpen: true });
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(forwarder.address() as net.AddressInfo).port}`;
  const env = { PATH: process.env.PATH ?? '', HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NODE_USE_ENV_PROXY: '1', NODE_EXTRA_CA_CERTS: caFile };
  const cases: ExitCase[] = [];
  try {
    for (const program of EXIT_PROGRAMS) {
      for (const requests of requestCounts) {
        const started = performance.now();
        let doneAt = Number.NaN;
        const child = spawn(node, ['-e', program.code(requests)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('done')) doneAt = performance.now();
        });
        await exited(child);
        const ended = performance.now();
        if (Number.isNaN(doneAt)) throw new Error(`${program.client} × ${requests}: the program did not finish its requests`);
        cases.push({ client: program.client, requests, runMs: Math.round(doneAt - started), lingerMs: Math.round(ended - doneAt) });
      }
    }
  } finally {
    await new Promise((resolve) => forwarder.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
  return cases;
}

export function exitRows(cases: readonly ExitCase[], node: string): Row[] {
  return cases.map((c) => [`${c.client} × ${c.requests} via proxy (${node}): exit after last response`, `+${c.lingerMs} ms`, `run ${c.runMs} ms`, '', '']);
}

