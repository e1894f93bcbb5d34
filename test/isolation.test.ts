/**
 * The isolation tiers, end to end on the real engine: what a program sees
 * and may do under each, what a policy requiring gVisor gets where it is
 * missing, and who may reach a live sandbox's proxy socket.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DockerContainerClient, PROXY_SOCKET_FILE } from '../executor/index.ts';
import { dockerAvailable } from './support/docker.ts';
import { mintToken, TEST_AUDIENCE, TEST_HS_SECRET, TEST_ISSUER } from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';

const hasDocker = await dockerAvailable();
const hasRunsc = hasDocker && (await new DockerContainerClient().ociRuntimes()).includes('runsc');
const run = promisify(execFile);

/** Each syscall with a null argument: the kernel would answer EFAULT/EINVAL, a filter answers EPERM/ENOSYS. */
const SYSCALL_PROBE = `
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, nr in [("io_uring_setup", 425), ("keyctl", 250), ("bpf", 321), ("userfaultfd", 323), ("perf_event_open", 298)]:
    ctypes.set_errno(0)
    r = libc.syscall(nr, 0, 0, 0, 0, 0)
    out[name] = errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())) if r == -1 else "ok"
print(json.dumps(out))
`;

const PROC_VERSION = 'console.log(require("fs").readFileSync("/proc/version", "utf8").trim())';

describe.skipIf(!hasDocker)('isolation tiers', () => {
  describe('under runc', () => {
    let service: TestService;
    let dir: string;
    let token: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'isolation-world-'));
      await mkdir(join(dir, 'policies'));
      await writeFile(join(dir, 'policies', 'strong-user.json'), JSON.stringify({ allowedDomains: [], isolation: 'gvisor' }));
      service = await startTestService({
        EXEC_RUNTIME: 'runc',
        EXEC_POOL_SIZE: '0',
        JWT_SECRET: TEST_HS_SECRET,
        JWT_ISSUER: TEST_ISSUER,
        JWT_AUDIENCE: TEST_AUDIENCE,
        POLICY_DIR: join(dir, 'policies'),
      });
      token = await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: 'strong-user' });
    });
    afterAll(async () => {
      await service?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('refuses io_uring, keyctl, bpf, userfaultfd and perf events with EPERM or ENOSYS', async () => {
      const response = await service.post('/execute', { language: 'python', code: SYSCALL_PROBE });
      expect(response.status, response.text).toBe(200);
      expect(response.json.data.isolation).toBe('runc');
      const answers = JSON.parse(response.json.data.stdout) as Record<string, string>;
      for (const [name, answer] of Object.entries(answers)) expect([name, ['EPERM', 'ENOSYS']]).toEqual([name, expect.arrayContaining([answer])]);
    });

    it('answers 503 ISOLATION_UNAVAILABLE to a policy requiring gVisor, and starts no container', async () => {
      const created = () => service.logLines.filter((line) => line.msg === 'container created').length;
      const before = created();
      const response = await service.post('/execute', { code: 'console.log("never")' }, { authorization: `Bearer ${token}` });
      expect(response.status).toBe(503);
      expect(response.json.code).toBe('ISOLATION_UNAVAILABLE');
      expect(response.json.error).toMatch(/gvisor/);
      expect(created()).toBe(before);
    });

    it('reports the tier in /readyz and /metrics', async () => {
      const ready = await fetch(`${service.url}/readyz`);
      expect(((await ready.json()) as { isolation: string[] }).isolation).toEqual(['runc']);
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      expect(metrics).toMatch(/sandbox_isolation_available\{tier="runc"\} 1/);
      expect(metrics).toMatch(/sandbox_isolation_available\{tier="gvisor"\} 0/);
    });

    it('keeps a live sandbox\'s proxy socket from every other local uid, and the sandbox still uses it', async () => {
      // The program holds its sandbox open while the test knocks on the socket from the host as `nobody`.
      const pending = service.post('/execute', {
        code: `require("http").get("http://example.invalid/", (r) => { console.log("proxy answered", r.statusCode); r.resume(); }).on("error", (e) => console.log("error", e.message)); setTimeout(() => {}, 6000);`,
        timeoutMs: 20_000,
      });
      const sandboxes = join(service.dataDir, 'sandboxes');
      const socket = await vi.waitFor(async () => {
        for (const id of await readdir(sandboxes)) {
          const path = join(sandboxes, id, PROXY_SOCKET_FILE);
          if ((await run('test', ['-S', path]).then(() => true, () => false))) return path;
        }
        throw new Error('no live proxy socket yet');
      }, { timeout: 15_000, interval: 100 });
      const attempt = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
        `require("net").connect(${JSON.stringify(socket)}).on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(0); });`]);
      expect(attempt.stdout.trim()).toBe('EACCES');
      const response = await pending;
      expect(response.status, response.text).toBe(200);
      expect(response.json.data.stdout).toMatch(/^proxy answered \d+/);
    });
  });

  describe.skipIf(!hasRunsc)('under gVisor', () => {
    let service: TestService;

    beforeAll(async () => {
      service = await startTestService({ EXEC_RUNTIME: 'runsc', EXEC_POOL_SIZE: '1' });
    });
    afterAll(async () => {
      await service?.close();
    });

    it('runs the program on gVisor\'s kernel, not the host\'s, and says so', async () => {
      const response = await service.post('/execute', { code: PROC_VERSION });
      expect(response.status, response.text).toBe(200);
      expect(response.json.data.isolation).toBe('gvisor');
      const host = (await readFile('/proc/version', 'utf8')).trim();
      expect(response.json.data.stdout.trim()).toMatch(/^Linux version /);
      expect(response.json.data.stdout.trim()).not.toBe(host);
      const ready = (await (await fetch(`${service.url}/readyz`)).json()) as { isolation: string[] };
      expect(ready.isolation).toEqual(['gvisor']);
    });

    it('keeps 5 child processes alive at once at the default pids limit', async () => {
      const code = `
        const { spawn } = require("child_process");
        const children = Array.from({ length: 5 }, () => spawn(process.execPath, ["-e", "setTimeout(() => {}, 1500)"]));
        let done = 0;
        for (const child of children) child.on("exit", (code) => { if (code === 0 && ++done === 5) console.log("5 children ok"); });
      `;
      const response = await service.post('/execute', { code, timeoutMs: 30_000 });
      expect(response.status, response.text).toBe(200);
      expect(response.json.data).toMatchObject({ stdout: '5 children ok\n', code: 0 });
    }, 120_000);

    // A small limit of its own: at the default 128, as many forked Python
    // interpreters can outgrow the memory limit under gVisor first (an OOM
    // kill contains the bomb too, but shows nothing about the process limit).
    it('stops a fork bomb at the program\'s process limit (RLIMIT_NPROC, per sandbox inside gVisor), the sandbox surviving', async () => {
      const small = await startTestService({ EXEC_RUNTIME: 'runsc', EXEC_POOL_SIZE: '0', EXEC_PIDS_LIMIT: '24' });
      const code = [
        'import os, time, json',
        'ok = failed = 0',
        'for i in range(400):',
        '    try:',
        '        if os.fork() == 0:',
        '            time.sleep(3); os._exit(0)',
        '        ok += 1',
        '    except OSError:',
        '        failed += 1',
        'print(json.dumps({"ok": ok, "failed": failed}), flush=True)',
      ].join('\n');
      let response;
      try {
        response = await small.post('/execute', { language: 'python', code, timeoutMs: 90_000 });
      } finally {
        await small.close();
      }
      expect(response.status, response.text).toBe(200);
      expect(response.json.data.stdout, response.text).toMatch(/^\{/);
      const counts = JSON.parse(response.json.data.stdout) as { ok: number; failed: number };
      expect(counts.failed).toBeGreaterThan(0);
      expect(counts.ok).toBeLessThan(24);
    }, 120_000);
  });
});
