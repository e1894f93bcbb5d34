/**
 * Python through the HTTP API: the real engine and image, the same limits
 * and result shape as JavaScript, and the seed's network scenarios written
 * with urllib and requests against the real proxy and recording upstreams.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { expectSeedScenario } from './support/seed-expectations.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';


describeWithDocker('POST /execute (Python)', () => {
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld({ EXEC_MEMORY_MB: '128' });
  });
  afterAll(async () => {
    await world?.close();
  });
  beforeEach(() => {
    world.upstream.reset();
  });

  const py = (code: string, extra: Record<string, unknown> = {}) => world.run({ language: 'python', code, ...extra });

  it('runs hello world, under both names', async () => {
    for (const language of ['python', 'py', 'Python']) {
      const data = await world.run({ language, code: 'print("Hello")' }, { token: null });
      expect(data).toMatchObject({
        stdout: 'Hello\n',
        stderr: '',
        code: 0,
        signal: null,
        timedOut: false,
        oomKilled: false,
        truncated: { stdout: false, stderr: false },
        networkLog: [],
        policyInfo: { source: 'default' },
      });
    }
  });

  it.each(['ruby', 'constructor', 'toString'])('answers 400 naming the field for language %j', async (language) => {
    const response = await world.service.post('/execute', { language, code: 'print(1)' });
    expect(response.status).toBe(400);
    expect(response.json.details.map((d: { field: string }) => d.field)).toContain('language');
  });

  it('passes stdin, args and env to the program', async () => {
    const data = await py('import json, os, sys\nprint(json.dumps({"input": sys.stdin.read(), "args": sys.argv[1:], "greeting": os.environ["GREETING"]}))', {
      stdin: 'from stdin',
      args: ['one', 'two'],
      env: { GREETING: 'hi' },
    });
    expect(data.stderr).toBe('');
    expect(JSON.parse(data.stdout)).toEqual({ input: 'from stdin', args: ['one', 'two'], greeting: 'hi' });
  });

  it('reports an exception as a non-zero exit with its traceback, and sys.exit as given', async () => {
    const raised = await py('print("before")\nraise ValueError("bad thing")');
    expect(raised.stdout).toBe('before\n');
    expect(raised.code).toBe(1);
    expect(raised.stderr).toMatch(/ValueError: bad thing/);
    expect((await py('import sys\nsys.exit(3)')).code).toBe(3);
    expect(await py('import os, signal\nos.kill(os.getpid(), signal.SIGKILL)')).toMatchObject({ code: null, signal: 'SIGKILL' });
  });

  it('kills a busy loop at its timeout, keeping what it printed', async () => {
    const data = await py('print("started")\nwhile True:\n    pass', { timeoutMs: 2000 });
    expect(data).toMatchObject({ timedOut: true, signal: 'SIGKILL', stdout: 'started\n' });
    expect(data.durationMs).toBeLessThan(10_000);
  }, 20_000);

  it('reports a memory bomb as OOM-killed', async () => {
    // Written bytes, not calloc'd ones: untouched pages would never count.
    const data = await py('hoard = []\nwhile True:\n    hoard.append(b"\\x01" * (16 << 20))', { timeoutMs: 20_000 });
    expect(data.oomKilled).toBe(true);
    expect(data.code).not.toBe(0);
  }, 40_000);

  it('caps stdout', async () => {
    const data = await py('import sys\nchunk = "x" * (1 << 20)\nfor _ in range(50):\n    sys.stdout.write(chunk)', { timeoutMs: 30_000 });
    expect(data.truncated.stdout).toBe(true);
    expect(data.stdout.length).toBe(1024 * 1024);
  }, 60_000);

  it('runs as a non-root user on a read-only root with no shell', async () => {
    const data = await py(`
import os, subprocess
def attempt(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return e.__class__.__name__
print(os.getuid(), attempt(lambda: open('/etc/evil', 'w')), attempt(lambda: subprocess.run('id', shell=True)), attempt(lambda: subprocess.run(['/bin/sh', '-c', 'id'])))`);
    expect(data.stdout).toBe('1000 OSError FileNotFoundError FileNotFoundError\n');
  });

  it('carries pip and requests for the install step and for programs', async () => {
    const data = await py('import subprocess, sys, requests\nr = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)\nprint(r.returncode, r.stdout.split()[0], requests.__name__)');
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('0 pip requests\n');
  });

  describe('the seed scenarios with urllib.request', () => {
    it('Test 2: an allowed HTTPS GET reaches api.stripe.com', async () => {
      const data = await py('import urllib.request\nprint(urllib.request.urlopen("https://api.stripe.com/v1/products").status)');
      expectSeedScenario('stripeGet', data, world.upstream);
    });

    it('Test 3: DELETE on *.okta.com is blocked with a readable 403', async () => {
      const data = await py(`
import urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request("https://dev-123.okta.com/api/v1/users/123", method="DELETE"))
except urllib.error.HTTPError as e:
    print(e.code)`);
      expectSeedScenario('oktaDelete', data, world.upstream);
    });

    it('Test 4: a domain outside allowedDomains is blocked', async () => {
      const data = await py(`
import urllib.request, urllib.error
try:
    urllib.request.urlopen("https://api.github.com/users/github")
except urllib.error.HTTPError as e:
    print(e.code)`);
      expectSeedScenario('githubGet', data, world.upstream);
    });
  });

  it('routes requests through the proxy with the same rules, over HTTPS and plain HTTP', async () => {
    const data = await py(`
import requests
print(*[requests.request(method, url).status_code for method, url in [
    ("GET", "https://api.stripe.com/v1/charges"),
    ("DELETE", "https://dev-123.okta.com/api/v1/users/1"),
    ("GET", "https://api.github.com/"),
    ("GET", "http://api.stripe.com/v1/customers"),
]])`);
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('200 403 403 200\n');
    expect(data.networkLog.map((e: { method: string; url: string; blocked: boolean }) => [e.method, e.url, e.blocked])).toEqual([
      ['GET', 'https://api.stripe.com/v1/charges', false],
      ['DELETE', 'https://dev-123.okta.com/api/v1/users/1', true],
      ['GET', 'https://api.github.com/', true],
      ['GET', 'http://api.stripe.com/v1/customers', false],
    ]);
    expect(world.upstream.requests.map((r) => `${r.scheme} ${r.method} ${r.path}`)).toEqual(['https GET /v1/charges', 'http GET /v1/customers']);
  });

  it('keeps many concurrent connections through the forwarder apart', async () => {
    const data = await py(`
import concurrent.futures, urllib.request
def get(i):
    with urllib.request.urlopen(f"https://api.stripe.com/v1/products/{i}") as r:
        return r.status
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    print(sorted(set(pool.map(get, range(40)))))`);
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('[200]\n');
    expect(new Set(world.upstream.requests.map((r) => r.path)).size).toBe(40);
  }, 60_000);

  it('gives a program that drops the proxy variables no route to any upstream', async () => {
    const data = await py(`
import os, urllib.request
for k in list(os.environ):
    if 'proxy' in k.lower():
        del os.environ[k]
out = []
for url in ["https://api.stripe.com/v1/products", "https://127.0.0.1/"]:
    try:
        urllib.request.urlopen(url, timeout=3)
        out.append("answered")
    except Exception as e:
        out.append(type(e).__name__)
print(out)`);
    expect(data.stdout).not.toMatch(/answered/);
    expect(world.upstream.requests).toEqual([]);
  });
});
