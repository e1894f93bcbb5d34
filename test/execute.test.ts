/**
 * The execution spine, end to end: the real HTTP API, the real engine, the
 * real image. Each test is one program and what the response must say.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED } from '../executor/index.ts';
import { instanceIdFor } from '../server/service.ts';
import { describeWithDocker } from './support/docker.ts';
import { startTestService, testIsolation, type TestService } from './support/service.ts';


describeWithDocker('POST /execute (JavaScript)', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_MEMORY_MB: '128' });
  });

  afterAll(async () => {
    await service?.close();
    // This server's containers; test/global-setup.ts checks the whole engine after the run.
    const left = await new DockerContainerClient().listLabelled({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(service.dataDir) });
    expect(left).toEqual([]);
  });

  const run = async (body: Record<string, unknown>) => {
    const response = await service.post('/execute', body);
    expect(response.status, response.text).toBe(200);
    return response.json.data;
  };

  it('runs hello world with the default policy and an empty network log', async () => {
    const response = await service.post('/execute', { code: 'console.log("Hello")' });
    expect(response.status).toBe(200);
    expect(response.json.success).toBe(true);
    expect(response.json.data).toMatchObject({
      stdout: 'Hello\n',
      stderr: '',
      code: 0,
      signal: null,
      timedOut: false,
      oomKilled: false,
      truncated: { stdout: false, stderr: false },
      networkLog: [],
      policyInfo: { source: 'default', name: 'Default Policy', hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' },
    });
    expect(response.json.data.isolation).toBe(testIsolation());
    expect(typeof response.json.data.executionId).toBe('string');
    expect(typeof response.json.data.durationMs).toBe('number');
    expect(response.headers.get('x-request-id')).toBeTruthy();
  });

  it('passes stdin, args and env to the program', async () => {
    const data = await run({
      code: `let input = ''; process.stdin.on('data', (d) => (input += d)); process.stdin.on('end', () => console.log(JSON.stringify({ input, args: process.argv.slice(2), greeting: process.env.GREETING })));`,
      stdin: 'from stdin',
      args: ['one', 'two'],
      env: { GREETING: 'hi' },
    });
    expect(JSON.parse(data.stdout)).toEqual({ input: 'from stdin', args: ['one', 'two'], greeting: 'hi' });
  });

  it('reports a non-zero exit and stderr', async () => {
    const data = await run({ code: 'console.error("bad thing"); process.exit(3)' });
    expect(data.code).toBe(3);
    expect(data.stderr).toBe('bad thing\n');
  });

  it('reports a syntax error as a normal result', async () => {
    const data = await run({ code: 'function (' });
    expect(data.code).not.toBe(0);
    expect(data.stderr).toMatch(/SyntaxError/);
  });

  it('kills a busy loop at its timeout', async () => {
    const data = await run({ code: 'while (true) {}', timeoutMs: 2000 });
    expect(data.timedOut).toBe(true);
    expect(data.signal).toBe('SIGKILL');
    expect(data.durationMs).toBeLessThan(10_000);
  }, 20_000);

  it('reports a memory bomb as OOM-killed and stays healthy', async () => {
    const data = await run({
      code: 'const hoard = []; for (;;) hoard.push(Buffer.alloc(16 * 1024 * 1024, 1));',
      timeoutMs: 20_000,
    });
    expect(data.oomKilled).toBe(true);
    expect(data.code).not.toBe(0);
    const health = await fetch(`${service.url}/healthz`);
    expect(health.status).toBe(200);
  }, 40_000);

  it('caps 200 MB of stdout without buffering it', async () => {
    const rssBefore = process.memoryUsage().rss;
    const response = await service.post('/execute', {
      // A well-behaved writer: it waits for 'drain', so the only thing that can stop it is the cap.
      code: `const mb = Buffer.alloc(1 << 20, 120); let i = 0;
        const pump = () => { while (i < 200) { i++; if (!process.stdout.write(mb)) return process.stdout.once('drain', pump); } };
        pump();`,
      timeoutMs: 60_000,
    });
    expect(response.status).toBe(200);
    const data = response.json.data;
    expect(data.truncated.stdout).toBe(true);
    expect(data.stdout.length).toBe(1024 * 1024);
    expect(response.text.length).toBeLessThan(2 * 1024 * 1024);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 * 1024 * 1024);
  }, 90_000);

  it('refuses writes outside a small /tmp and runs as a non-root user', async () => {
    const data = await run({
      code: `
        const fs = require('node:fs');
        const attempt = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.code; } };
        const big = Buffer.alloc(8 * 1024 * 1024, 1);
        const tmp = attempt(() => { for (let i = 0; i < 64; i++) fs.appendFileSync('/tmp/fill', big); });
        const etc = attempt(() => fs.writeFileSync('/etc/evil', 'x'));
        console.log(JSON.stringify({ tmp, etc, uid: process.getuid() }));`,
    });
    const outcome = JSON.parse(data.stdout);
    expect(['ENOSPC', 'EFBIG']).toContain(outcome.tmp);
    // gVisor checks the directory's permissions before the mount's read-only flag; either way nothing is written.
    expect(outcome.etc).toBe(testIsolation() === 'gvisor' ? 'EACCES' : 'EROFS');
    expect(outcome.uid).not.toBe(0);
  });

  it('has no network but loopback: no interfaces, no direct connects, no DNS', async () => {
    const data = await run({
      code: `
        const os = require('node:os'); const net = require('node:net'); const dns = require('node:dns');
        const tcp = new Promise((resolve) => {
          const socket = net.connect({ host: '1.1.1.1', port: 443, timeout: 3000 });
          socket.on('connect', () => { socket.destroy(); resolve('connected'); });
          socket.on('timeout', () => { socket.destroy(); resolve('timeout'); });
          socket.on('error', (e) => resolve(e.code));
        });
        const lookup = dns.promises.lookup('example.com').then(() => 'resolved', (e) => e.code);
        Promise.all([tcp, lookup]).then(([tcp, dns]) =>
          console.log(JSON.stringify({ interfaces: Object.keys(os.networkInterfaces()), tcp, dns })));`,
    });
    const outcome = JSON.parse(data.stdout);
    expect(outcome.interfaces).toEqual(['lo']);
    expect(outcome.tcp).not.toBe('connected');
    expect(outcome.dns).not.toBe('resolved');
  });

  it.each([
    ['malformed JSON', '{"code": ', '(body)'],
    ['missing code', { language: 'javascript' }, 'code'],
    ['code not a string', { code: 42 }, 'code'],
    ['unknown language', { code: '1', language: 'cobol' }, 'language'],
    ['negative timeoutMs', { code: '1', timeoutMs: -5 }, 'timeoutMs'],
    ['unknown field', { code: '1', timeout: 5 }, 'timeout'],
    ['reserved env name', { code: '1', env: { HTTPS_PROXY: 'http://evil' } }, 'env.HTTPS_PROXY'],
  ])('answers 400 naming the problem for %s', async (_name, body, field) => {
    const response = await service.post('/execute', body);
    expect(response.status).toBe(400);
    expect(response.json.success).toBe(false);
    expect(response.json.details.map((d: { field: string }) => d.field)).toContain(field);
    expect(response.text).not.toMatch(/at .*\.ts:\d+/);
  });

  it('answers 413 for oversize code', async () => {
    const response = await service.post('/execute', { code: 'x'.repeat(1024 * 1024 + 1) });
    expect(response.status).toBe(413);
    expect(response.json.success).toBe(false);
  });
});

// Enough memory that only the pids limit can stop the bomb, and a limit small
// enough to hit quickly.
describeWithDocker('POST /execute with a small pids limit', () => {
  let bombService: TestService;

  beforeAll(async () => {
    bombService = await startTestService({ EXEC_PIDS_LIMIT: '40', EXEC_MEMORY_MB: '1024' });
  });

  afterAll(async () => {
    await bombService?.close();
  });

  it('contains a process bomb with the pids limit', async () => {
    const response = await bombService.post('/execute', {
      code: `
        const { spawn } = require('node:child_process');
        let started = 0;
        const bomb = () => {
          const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
          child.on('spawn', () => { started++; bomb(); });
          child.on('error', (e) => { console.log('refused', e.code, started); process.exit(0); });
        };
        bomb();`,
      timeoutMs: 20_000,
    });
    expect(response.status).toBe(200);
    const data = response.json.data;
    // The kernel refuses the fork (EAGAIN), or the runtime dies trying to start a thread; never an unbounded tree.
    expect(data.timedOut).toBe(false);
    expect(`${data.stdout}${data.stderr}`).toMatch(/EAGAIN|Resource temporarily unavailable|pthread_create|ENOMEM/);
    const health = await fetch(`${bombService.url}/healthz`);
    expect(health.status).toBe(200);
    const after = (await bombService.post('/execute', { code: 'console.log("still here")' })).json.data;
    expect(after.stdout).toBe('still here\n');
  }, 60_000);

});
