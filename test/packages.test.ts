/**
 * Package installs gated by allowedPackages, end to end: the HTTP API, the
 * real engine and image, real `npm install` inside the sandbox, the real
 * proxy with its package rules, and a local registry answering as
 * registry.npmjs.org (through EGRESS_HOST_MAP, trusted via
 * EGRESS_UPSTREAM_CA). The policy lists no registry host in allowedDomains.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { NPM_HOST, PYPI_HOST, startRegistry, type RegistryFixture } from './fixtures/registry.ts';
import { describeWithDocker } from './support/docker.ts';
import { mintToken, TEST_AUDIENCE, TEST_HS_SECRET, TEST_ISSUER } from './support/jwt.ts';
import { startTestService, testIsolation, type TestService } from './support/service.ts';


const USER = 'package-user';
const POLICY = { allowedDomains: [], allowedPackages: ['tiny-app', '@tiny', 'Tiny_Py', 'tiny-pyapp'] };

const fetchStatus = (url: string) => `require("https").get(${JSON.stringify(url)}, (r) => { r.resume(); console.log(r.statusCode); });`;

describeWithDocker('package installs gated by allowedPackages', () => {
  let registry: RegistryFixture;
  let service: TestService;
  let token: string;
  let dir: string;

  const post = (body: Record<string, unknown>) => service.post('/execute', body, { authorization: `Bearer ${token}` });
  const run = async (body: Record<string, unknown>) => {
    const response = await post({ timeoutMs: 60_000, ...body });
    if (response.status !== 200) throw new Error(`POST /execute answered ${response.status}: ${response.text}`);
    return response.json.data;
  };

  beforeAll(async () => {
    registry = await startRegistry([
      { name: 'tiny-dep', version: '1.0.0', main: 'module.exports = "dep-ok";\n' },
      { name: 'tiny-app', version: '1.2.0', dependencies: { 'tiny-dep': '^1.0.0' }, main: 'module.exports = () => "app:" + require("tiny-dep");\n' },
      { name: '@tiny/scoped', version: '0.1.0', main: 'module.exports = "scoped-ok";\n' },
      { name: 'tiny-other', version: '2.0.0', main: 'module.exports = "other";\n' },
    ], [
      { name: 'tiny-py', version: '1.0', module: 'tiny_py', init: 'VALUE = "py-ok"\n' },
      { name: 'tiny-pydep', version: '1.0', module: 'tiny_pydep', init: 'VALUE = "dep-ok"\n' },
      { name: 'tiny-pyapp', version: '1.0', module: 'tiny_pyapp', init: 'from tiny_pydep import VALUE as DEP\nVALUE = "app:" + DEP\n', requires: ['Tiny_PyDep (>=1.0)'] },
      { name: 'tiny-pyother', version: '1.0', module: 'tiny_pyother', init: 'VALUE = "other"\n' },
    ]);
    dir = await mkdtemp(join(tmpdir(), 'packages-world-'));
    await mkdir(join(dir, 'policies'));
    await writeFile(join(dir, 'policies', `${USER}.json`), JSON.stringify(POLICY));
    await writeFile(join(dir, 'registry-ca.pem'), registry.caPem);
    service = await startTestService({
      JWT_SECRET: TEST_HS_SECRET,
      JWT_ISSUER: TEST_ISSUER,
      JWT_AUDIENCE: TEST_AUDIENCE,
      POLICY_DIR: join(dir, 'policies'),
      EGRESS_HOST_MAP: registry.hostMapEnv(),
      EGRESS_UPSTREAM_CA: join(dir, 'registry-ca.pem'),
    });
    token = await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: USER });
  });
  afterAll(async () => {
    await service?.close();
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => registry.reset());

  it('installs an allowed npm package and its dependency, and the program requires them', async () => {
    const data = await run({ code: 'console.log(require("tiny-app")()); console.log(require("tiny-dep"));', packages: ['tiny-app@^1'] });
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('app:dep-ok\ndep-ok\n');
    expect(data.code).toBe(0);
    expect(data.isolation).toBe(testIsolation());
    const fetched = data.networkLog.map((e: any) => [e.method, e.url, e.statusCode, e.blocked]);
    expect(fetched).toEqual(
      expect.arrayContaining([
        ['GET', `https://${NPM_HOST}/tiny-app`, 200, false],
        ['GET', registry.tarballUrl('tiny-app'), 200, false],
        ['GET', `https://${NPM_HOST}/tiny-dep`, 200, false],
        ['GET', registry.tarballUrl('tiny-dep'), 200, false],
      ]),
    );
    expect(data.networkLog.every((e: any) => !e.blocked)).toBe(true);
  });

  it('installs a package of an allowed scope', async () => {
    const data = await run({ code: 'import("@tiny/scoped").then((m) => console.log(m.default));', packages: ['@tiny/scoped'] });
    expect(data.stdout).toBe('scoped-ok\n');
    expect(data.networkLog).toEqual(expect.arrayContaining([expect.objectContaining({ url: `https://${NPM_HOST}/@tiny%2fscoped`, statusCode: 200, blocked: false })]));
  });

  it('refuses a package outside allowedPackages with 400 naming it, before any sandbox runs', async () => {
    const response = await post({ code: 'console.log(1)', packages: ['tiny-app', 'tiny-other@2'] });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ success: false, code: 'PACKAGE_NOT_ALLOWED', details: [{ field: 'packages[1]', package: 'tiny-other' }] });
    expect(response.json.error).toContain('tiny-other');
    expect(registry.requests).toEqual([]);
  });

  it('refuses a dependency asked for on its own', async () => {
    const response = await post({ code: 'console.log(1)', packages: ['tiny-dep'] });
    expect(response.status).toBe(400);
    expect(response.json.error).toContain('tiny-dep');
  });

  it('refuses specs that would fetch from elsewhere', async () => {
    const response = await post({ code: 'console.log(1)', packages: ['tiny-app@npm:tiny-other@2'] });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ code: 'INVALID_REQUEST', details: [{ field: 'packages[0]' }] });
  });

  it('blocks and logs the program fetching a package outside the list, by tarball or metadata URL', async () => {
    const data = await run({ code: `${fetchStatus(registry.tarballUrl('tiny-other'))}\n${fetchStatus(`https://${NPM_HOST}/tiny-other`)}` });
    expect(data.stdout).toBe('403\n403\n');
    expect(data.networkLog).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ url: registry.tarballUrl('tiny-other'), statusCode: 403, blocked: true, reason: `/tiny-other/-/tiny-other-2.0.0.tgz on ${NPM_HOST} is not a file of an allowed package` }),
        expect.objectContaining({ url: `https://${NPM_HOST}/tiny-other`, statusCode: 403, blocked: true, reason: 'Package tiny-other is not in allowedPackages' }),
      ]),
    );
    expect(registry.requests).toEqual([]);
  });

  it('blocks an allowed package\'s tarball fetched without its metadata having been read', async () => {
    const data = await run({ code: fetchStatus(registry.tarballUrl('tiny-app')) });
    expect(data.stdout).toBe('403\n');
    expect(registry.requests).toEqual([]);
  });

  it('blocks a dependency fetched outside any allowed package\'s closure', async () => {
    const data = await run({ code: `${fetchStatus(`https://${NPM_HOST}/tiny-dep`)}\n${fetchStatus(registry.tarballUrl('tiny-dep'))}` });
    expect(data.stdout).toBe('403\n403\n');
    expect(data.networkLog.map((e: any) => e.blocked)).toEqual([true, true]);
    expect(registry.requests).toEqual([]);
  });

  it('an npm install run by the program itself gets only what the policy allows', async () => {
    const npm = (spec: string) =>
      `require("child_process").spawnSync(process.execPath, ["/usr/local/lib/node_modules/npm/bin/npm-cli.js", "install", "--prefix", "/tmp/own", "--cache", "/tmp/own-cache", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", ${JSON.stringify(spec)}], { stdio: "ignore" }).status`;
    const data = await run({ code: `console.log(${npm('tiny-other')}); console.log(${npm('tiny-app')}); console.log(require("/tmp/own/node_modules/tiny-app")());` });
    expect(data.stdout).toBe('1\n0\napp:dep-ok\n');
    expect(data.networkLog).toEqual(expect.arrayContaining([expect.objectContaining({ url: `https://${NPM_HOST}/tiny-other`, blocked: true })]));
    expect(registry.requests.some((r) => r.path.includes('tiny-other'))).toBe(false);
  });

  it('installs an allowed pip package (name normalised per PEP 503), and the program imports it', async () => {
    const data = await run({ language: 'python', code: 'import tiny_py\nprint(tiny_py.VALUE)', packages: ['tiny.py==1.*'] });
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('py-ok\n');
    const fetched = data.networkLog.map((e: any) => [e.method, e.url, e.statusCode, e.blocked]);
    expect(fetched).toEqual(
      expect.arrayContaining([
        ['GET', `https://${PYPI_HOST}/simple/tiny-py/`, 200, false],
        ['GET', registry.wheelUrl('tiny-py'), 200, false],
      ]),
    );
  });

  it('installs an allowed pip package and the dependency its wheel names, and the program imports both', async () => {
    const data = await run({ language: 'python', code: 'import tiny_pyapp, tiny_pydep\nprint(tiny_pyapp.VALUE)\nprint(tiny_pydep.VALUE)', packages: ['tiny-pyapp'] });
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('app:dep-ok\ndep-ok\n');
    const fetched = data.networkLog.map((e: any) => [e.method, e.url, e.statusCode, e.blocked]);
    expect(fetched).toEqual(
      expect.arrayContaining([
        ['GET', `https://${PYPI_HOST}/simple/tiny-pyapp/`, 200, false],
        ['GET', registry.wheelUrl('tiny-pyapp'), 200, false],
        ['GET', `https://${PYPI_HOST}/simple/tiny-pydep/`, 200, false],
        ['GET', registry.wheelUrl('tiny-pydep'), 200, false],
      ]),
    );
    expect(data.networkLog.every((e: any) => !e.blocked)).toBe(true);
    const alone = await post({ language: 'python', code: 'print(1)', packages: ['tiny-pydep'] });
    expect(alone.status).toBe(400);
    expect(alone.json).toMatchObject({ code: 'PACKAGE_NOT_ALLOWED', details: [{ package: 'tiny-pydep' }] });
  });

  it('refuses a pip package outside allowedPackages, and blocks its files and its dependency fetched directly', async () => {
    const response = await post({ language: 'python', code: 'print(1)', packages: ['tiny-pyother'] });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ code: 'PACKAGE_NOT_ALLOWED', details: [{ package: 'tiny-pyother' }] });
    const get = (url: string) => `try:\n    urllib.request.urlopen(${JSON.stringify(url)})\n    print(200)\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n`;
    const data = await run({
      language: 'python',
      code: `import urllib.request, urllib.error\n${get(registry.wheelUrl('tiny-pyother'))}${get(`https://${PYPI_HOST}/simple/tiny-pyother/`)}${get(`https://${PYPI_HOST}/simple/tiny-pydep/`)}${get(registry.wheelUrl('tiny-pydep'))}`,
    });
    expect(data.stdout).toBe('403\n403\n403\n403\n');
    expect(data.networkLog.map((e: any) => e.blocked)).toEqual([true, true, true, true]);
    expect(registry.requests).toEqual([]);
  });

  it('reports a failed install in the result, not as a server error', async () => {
    const data = await run({ code: 'console.log("never")', packages: ['tiny-app@9'] });
    expect(data.stdout).toBe('');
    expect(data.code).toBe(125);
    expect(data.stderr).toMatch(/^sandbox-agent: package install failed: npm exited 1/);
  });
});
