import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildZip } from '../test/support/zip.ts';
import { compilePolicy } from './matcher.ts';
import { PackageClosure } from './package-closure.ts';
import { checkRequestedPackages, normalisePypiName, packageAllowed, packageRules, parseAllowedPackage, parsePackageSpec, type Ecosystem } from './package-spec.ts';
import { WHEEL_TAIL_BYTES } from './wheel.ts';
import { decideWithPackages, sessionPackagePolicy } from './packages.ts';
import { readRegistryMetadata, type MetadataFacts, type RegistryMetadata } from './registry-metadata.ts';
import type { EgressRequest } from './types.ts';

const get = (host: string, path: string, extra: Partial<EgressRequest> = {}): EgressRequest => ({
  method: 'GET',
  host,
  port: 443,
  scheme: 'https',
  path,
  headers: {},
  ...extra,
});
const body = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const ok = (value: unknown) => ({ statusCode: 200, contentType: 'application/json', body: body(value) });

describe('parsePackageSpec', () => {
  it.each<[string, Ecosystem, string | null]>([
    ['lodash', 'npm', 'lodash'],
    ['lodash@4', 'npm', 'lodash'],
    ['lodash@^4.17.0 || 5', 'npm', 'lodash'],
    ['lodash@latest', 'npm', 'lodash'],
    ['@okta/okta-sdk-nodejs', 'npm', '@okta/okta-sdk-nodejs'],
    ['@okta/okta-sdk-nodejs@7.1.0', 'npm', '@okta/okta-sdk-nodejs'],
    ['JSONStream', 'npm', 'JSONStream'],
    ['lodash@npm:evil@1', 'npm', null],
    ['lodash@git+https://example.com/x.git', 'npm', null],
    ['lodash@file:../x', 'npm', null],
    ['https://example.com/x.tgz', 'npm', null],
    ['--registry=https://evil.test', 'npm', null],
    ['@okta', 'npm', null],
    ['', 'npm', null],
    ['requests', 'pypi', 'requests'],
    ['requests==2.*', 'pypi', 'requests'],
    ['Requests[socks, security] >=2.1, <3', 'pypi', 'requests'],
    ['zope.interface~=6.0', 'pypi', 'zope-interface'],
    ['Flask_SQLAlchemy', 'pypi', 'flask-sqlalchemy'],
    ['requests @ https://example.com/r.whl', 'pypi', null],
    ['requests; python_version < "3"', 'pypi', null],
    ['-r requirements.txt', 'pypi', null],
    ['--index-url=https://evil.test', 'pypi', null],
  ])('%j (%s) → %j', (raw, ecosystem, name) => {
    const parsed = parsePackageSpec(raw, ecosystem);
    if (name === null) expect(parsed.ok).toBe(false);
    else expect(parsed).toEqual({ ok: true, spec: { ecosystem, spec: raw.trim(), name } });
  });
});

describe('normalisePypiName', () => {
  it.each([
    ['Requests', 'requests'],
    ['zope.interface', 'zope-interface'],
    ['a__b--c..d', 'a-b-c-d'],
    ['A-_.B', 'a-b'],
  ])('%s → %s', (raw, expected) => expect(normalisePypiName(raw)).toBe(expected));
});

describe('packageAllowed', () => {
  const rules = packageRules(['lodash', '@okta', 'Zope.Interface', 'requests']);
  it.each<[Ecosystem, string, boolean]>([
    ['npm', 'lodash', true],
    ['npm', 'lodash-es', false],
    ['npm', '@okta/okta-sdk-nodejs', true],
    ['npm', '@OKTA/okta-sdk-nodejs', true],
    ['npm', '@oktaa/x', false],
    ['npm', 'okta', false],
    ['npm', '@evil/lodash', false],
    ['pypi', 'requests', true],
    ['pypi', 'Requests', true],
    ['pypi', 'zope_interface', true],
    ['pypi', 'urllib3', false],
    ['pypi', 'okta', false],
  ])('%s %s → %s', (ecosystem, name, expected) => expect(packageAllowed(rules, ecosystem, name)).toBe(expected));
});

describe('checkRequestedPackages', () => {
  const rules = packageRules(['lodash', '@okta']);
  it('accepts covered specs', () => {
    expect(checkRequestedPackages(['lodash@4', '@okta/okta-sdk-nodejs'], 'npm', rules)).toMatchObject({ ok: true, specs: [{ name: 'lodash' }, { name: '@okta/okta-sdk-nodejs' }] });
  });
  it('names every package outside allowedPackages', () => {
    expect(checkRequestedPackages(['lodash', 'left-pad@1', 'chalk'], 'npm', rules)).toEqual({
      ok: false,
      kind: 'not-allowed',
      problems: [
        { field: 'packages[1]', package: 'left-pad', message: 'package left-pad is not in allowedPackages' },
        { field: 'packages[2]', package: 'chalk', message: 'package chalk is not in allowedPackages' },
      ],
    });
  });
  it('reports unparseable specs first', () => {
    expect(checkRequestedPackages(['lodash@npm:evil', 'chalk'], 'npm', rules)).toMatchObject({ ok: false, kind: 'invalid', problems: [{ field: 'packages[0]' }] });
  });
});

const NPM = 'registry.npmjs.org';
const packument = (name: string, versions: Record<string, Record<string, string>>) => ({
  name,
  versions: Object.fromEntries(
    Object.entries(versions).map(([v, deps]) => [
      v,
      { name, version: v, dependencies: deps, dist: { tarball: `https://${NPM}/${name}/-/${name.split('/').pop()}-${v}.tgz` } },
    ]),
  ),
});

describe('PackageClosure (npm)', () => {
  const fresh = () => new PackageClosure(packageRules(['lodash', '@okta', 'app']));

  it.each<[string, EgressRequest, boolean, string]>([
    ['allowed packument', get(NPM, '/lodash'), true, 'Package lodash is allowed'],
    ['packument with a query', get(NPM, '/lodash?write=true'), true, 'Package lodash is allowed'],
    ['scoped packument, escaped', get(NPM, '/@okta%2fokta-sdk-nodejs'), true, 'Package @okta/okta-sdk-nodejs is allowed'],
    ['scoped packument, upper-case escape', get(NPM, '/@okta%2Fokta-sdk-nodejs'), true, 'Package @okta/okta-sdk-nodejs is allowed'],
    ['scoped packument, plain', get(NPM, '/@okta/okta-sdk-nodejs'), true, 'Package @okta/okta-sdk-nodejs is allowed'],
    ['other package', get(NPM, '/left-pad'), false, 'Package left-pad is not in allowedPackages'],
    ['other scope', get(NPM, '/@evil%2flodash'), false, 'Package @evil/lodash is not in allowedPackages'],
    ['unseen tarball of an allowed package', get(NPM, '/lodash/-/lodash-4.17.21.tgz'), false, '/lodash/-/lodash-4.17.21.tgz on registry.npmjs.org is not a file of an allowed package'],
    ['dot segments', get(NPM, '/lodash/../left-pad'), false, '/lodash/../left-pad on registry.npmjs.org is not a file of an allowed package'],
    ['other escapes', get(NPM, '/%6codash'), false, '/%6codash on registry.npmjs.org is not a file of an allowed package'],
    ['search API', get(NPM, '/-/v1/search?text=x'), false, '/-/v1/search on registry.npmjs.org is not a file of an allowed package'],
    ['publish', get(NPM, '/lodash', { method: 'PUT' }), false, 'Method PUT is not allowed on package registry registry.npmjs.org'],
    ['other port', get(NPM, '/lodash', { port: 8443 }), false, 'Port 8443 is not a registry port'],
  ])('%s', (_label, request, allowed, reason) => {
    const decision = fresh().decide(request);
    expect(decision).toMatchObject({ allowed, reason, rule: 'allowedPackages', host: NPM });
    if (allowed) expect(decision?.learn).toBe(true);
  });

  it('is not consulted for other hosts', () => {
    expect(fresh().decide(get('api.stripe.com', '/lodash'))).toBeNull();
  });

  it('learns dependencies and tarballs from an allowed packument, and only from it', () => {
    const closure = fresh();
    closure.learn(get(NPM, '/app'), ok(packument('app', { '1.0.0': { 'dep-a': '^1.0.0' }, '2.0.0': { 'dep-b': '^2', aliased: 'npm:dep-c@^3', gitdep: 'github:x/y' } })));
    expect(closure.learned()).toEqual({ npm: ['dep-a', 'dep-b', 'dep-c'], pypi: [], files: 2 });
    expect(closure.decide(get(NPM, '/app/-/app-2.0.0.tgz'))?.allowed).toBe(true);
    expect(closure.decide(get(NPM, '/app/-/app-3.0.0.tgz'))?.allowed).toBe(false);
    expect(closure.decide(get(NPM, '/dep-a'))?.allowed).toBe(true);
    expect(closure.decide(get(NPM, '/aliased'))?.allowed).toBe(false);
    expect(closure.decide(get(NPM, '/gitdep'))?.allowed).toBe(false);
    // dep-a's tarball only after dep-a's own metadata was read.
    expect(closure.decide(get(NPM, '/dep-a/-/dep-a-1.0.0.tgz'))?.allowed).toBe(false);
    closure.learn(get(NPM, '/dep-a'), ok(packument('dep-a', { '1.0.0': { 'dep-d': '1' } })));
    expect(closure.decide(get(NPM, '/dep-a/-/dep-a-1.0.0.tgz'))?.allowed).toBe(true);
    expect(closure.decide(get(NPM, '/dep-d'))?.allowed).toBe(true);
  });

  it.each<[string, EgressRequest, ReturnType<typeof ok>]>([
    ['a package outside the closure', get(NPM, '/evil'), ok(packument('evil', { '1.0.0': { x: '1' } }))],
    ['a packument naming another package', get(NPM, '/lodash'), ok(packument('evil', { '1.0.0': { x: '1' } }))],
    ['a failed response', get(NPM, '/lodash'), { ...ok(packument('lodash', { '1.0.0': { x: '1' } })), statusCode: 404 }],
    ['a tarball path', get(NPM, '/lodash/-/lodash-1.0.0.tgz'), ok(packument('lodash', { '1.0.0': { x: '1' } }))],
    ['garbage', get(NPM, '/lodash'), { statusCode: 200, contentType: 'application/json', body: body('{not json') }],
  ])('learns nothing from %s', (_label, request, response) => {
    const closure = fresh();
    closure.learn(request, response);
    expect(closure.learned()).toEqual({ npm: [], pypi: [], files: 0 });
  });
});

const PYPI = 'pypi.org';
const FILES = 'files.pythonhosted.org';

describe('PackageClosure (PyPI)', () => {
  const fresh = () => new PackageClosure(packageRules(['requests']));
  const wheel = `https://${FILES}/packages/aa/bb/requests-2.31.0-py3-none-any.whl`;

  it.each<[string, EgressRequest, boolean]>([
    ['simple page', get(PYPI, '/simple/requests/'), true],
    ['simple page, unnormalised name', get(PYPI, '/simple/Requests/'), true],
    ['JSON API', get(PYPI, '/pypi/requests/json'), true],
    ['JSON API, one version', get(PYPI, '/pypi/requests/2.31.0/json'), true],
    ['other package', get(PYPI, '/simple/urllib3/'), false],
    ['index root', get(PYPI, '/simple/'), false],
    ['unseen file', get(FILES, '/packages/aa/bb/requests-2.31.0-py3-none-any.whl'), false],
  ])('%s', (_label, request, allowed) => {
    expect(fresh().decide(request)?.allowed).toBe(allowed);
  });

  it('learns file URLs from the simple JSON API, relative ones included', () => {
    const closure = fresh();
    closure.learn(get(PYPI, '/simple/requests/'), ok({ name: 'requests', files: [{ filename: 'a.whl', url: wheel }, { filename: 'b.whl', url: '../../files/b.whl' }] }));
    expect(closure.decide(get(FILES, '/packages/aa/bb/requests-2.31.0-py3-none-any.whl'))?.allowed).toBe(true);
    expect(closure.decide(get(FILES, '/packages/aa/bb/requests-2.31.0-py3-none-any.whl.metadata'))?.allowed).toBe(true);
    expect(closure.decide(get(PYPI, '/files/b.whl'))?.allowed).toBe(true);
    expect(closure.decide(get(FILES, '/packages/aa/bb/urllib3-2.0.0-py3-none-any.whl'))?.allowed).toBe(false);
  });

  it('learns file URLs from the simple HTML API', () => {
    const closure = fresh();
    closure.learn(get(PYPI, '/simple/requests/'), { statusCode: 200, contentType: 'text/html', body: body(`<html><body><a href="${wheel}#sha256=abc" data-requires-python="&gt;=3.7">requests-2.31.0-py3-none-any.whl</a></body></html>`) });
    expect(closure.decide(get(FILES, '/packages/aa/bb/requests-2.31.0-py3-none-any.whl'))?.allowed).toBe(true);
  });

  it('learns dependencies from core metadata (PEP 658) of an allowed file, and from the JSON API', () => {
    const closure = fresh();
    closure.learn(get(PYPI, '/simple/requests/'), ok({ name: 'requests', files: [{ filename: 'a.whl', url: wheel }] }));
    closure.learn(get(FILES, '/packages/aa/bb/requests-2.31.0-py3-none-any.whl.metadata'), {
      statusCode: 200,
      contentType: 'application/octet-stream',
      body: body('Metadata-Version: 2.1\nName: requests\nRequires-Dist: charset_normalizer (<4,>=2)\nRequires-Dist: PySocks!=1.5.7,>=1.5.6; extra == "socks"\n\nRequires-Dist: not-a-header\n'),
    });
    closure.learn(get(PYPI, '/pypi/requests/json'), ok({ info: { name: 'requests', requires_dist: ['idna<4,>=2.5'] }, urls: [] }));
    expect(closure.learned().pypi).toEqual(['charset-normalizer', 'idna', 'pysocks']);
    expect(closure.decide(get(PYPI, '/simple/charset-normalizer/'))?.allowed).toBe(true);
    expect(closure.decide(get(PYPI, '/simple/not-a-header/'))?.allowed).toBe(false);
  });
});

describe('PackageClosure (wheels)', () => {
  const wheelPath = '/packages/aa/bb/requests-2.31.0-py3-none-any.whl';
  const wheelOf = (distInfo: string, metadata: string) =>
    buildZip([
      { name: 'requests/__init__.py', data: '' },
      { name: `${distInfo}/METADATA`, data: metadata },
    ]);
  const binary = (data: Uint8Array) => ({ statusCode: 200, contentType: 'application/octet-stream', body: data });
  const listed = () => {
    const closure = new PackageClosure(packageRules(['requests']));
    closure.learn(get(PYPI, '/simple/requests/'), ok({ name: 'requests', files: [{ filename: 'a.whl', url: `https://${FILES}${wheelPath}` }] }));
    return closure;
  };
  const metadata = 'Metadata-Version: 2.1\nName: requests\nRequires-Dist: Charset_Normalizer (<4,>=2)\nRequires-Dist: PySocks>=1.5.6; extra == "socks"\n';

  it('asks to read a listed wheel and its PEP 658 metadata, not an npm tarball', () => {
    const closure = listed();
    expect(closure.decide(get(FILES, wheelPath))).toMatchObject({ allowed: true, learn: true });
    expect(closure.decide(get(FILES, `${wheelPath}.metadata`))).toMatchObject({ allowed: true, learn: true });
    const npm = new PackageClosure(packageRules(['app']));
    npm.learn(get(NPM, '/app'), ok(packument('app', { '1.0.0': {} })));
    expect(npm.decide(get(NPM, '/app/-/app-1.0.0.tgz'))).toEqual(expect.not.objectContaining({ learn: true }));
  });

  it('learns every Requires-Dist of a listed wheel, extra-only ones included', () => {
    const closure = listed();
    closure.learn(get(FILES, wheelPath), binary(wheelOf('requests-2.31.0.dist-info', metadata)));
    expect(closure.learned().pypi).toEqual(['charset-normalizer', 'pysocks']);
    expect(closure.decide(get(PYPI, '/simple/charset-normalizer/'))?.allowed).toBe(true);
  });

  it.each<[string, EgressRequest, ReturnType<typeof binary>]>([
    ['a wheel no allowed metadata listed', get(FILES, '/packages/cc/dd/requests-2.31.0-py3-none-any.whl'), binary(wheelOf('requests-2.31.0.dist-info', metadata))],
    ['a listed wheel whose .dist-info names another package', get(FILES, wheelPath), binary(wheelOf('urllib3-2.0.dist-info', metadata))],
    ['a listed wheel that is not a readable zip', get(FILES, wheelPath), binary(body(metadata))],
    ['a listed wheel with two METADATA files', get(FILES, wheelPath), binary(buildZip([{ name: 'requests-2.31.0.dist-info/METADATA', data: metadata }, { name: 'requests-2.31.0.dist-info/METADATA', data: metadata }]))],
    ['a partial answer to a range request', get(FILES, wheelPath), { ...binary(wheelOf('requests-2.31.0.dist-info', metadata)), statusCode: 206 }],
  ])('learns nothing from %s', (_label, request, response) => {
    const closure = listed();
    closure.learn(request, response);
    expect(closure.learned().pypi).toEqual([]);
  });
});

describe('decideWithPackages', () => {
  const policy = (extra: object) =>
    compilePolicy({ allowedDomains: [], blockedDomains: [], apiPathRules: {}, allowedPackages: ['lodash'], allowedBinaries: [], ...extra });
  it.each<[string, object, EgressRequest, boolean, string]>([
    ['registry without allowedDomains', {}, get(NPM, '/lodash'), true, 'allowedPackages'],
    ['registry, package outside the list', {}, get(NPM, '/left-pad'), false, 'allowedPackages'],
    ['other host stays with the policy', {}, get('api.stripe.com', '/'), false, 'allowedDomains'],
    ['blockedDomains still wins', { blockedDomains: [NPM] }, get(NPM, '/lodash'), false, 'blockedDomains[0]'],
    ['an operator-allowed registry is decided as written', { allowedDomains: [NPM] }, get(NPM, '/left-pad'), true, 'allowedDomains[0]'],
  ])('%s', (_label, extra, request, allowed, rule) => {
    const compiled = policy(extra);
    expect(decideWithPackages(compiled, new PackageClosure(packageRules(compiled.policy.allowedPackages)), request)).toMatchObject({ allowed, rule });
  });
});

describe('sessionPackagePolicy', () => {
  it('keeps what one session learned away from another', () => {
    const compiled = compilePolicy({ allowedDomains: [], blockedDomains: [], apiPathRules: {}, allowedPackages: ['app'], allowedBinaries: [] });
    const { decide, learn } = sessionPackagePolicy();
    const first = { context: compiled };
    const second = { context: compiled };
    void learn(get(NPM, '/app'), ok(packument('app', { '1.0.0': { 'dep-a': '1' } })), first);
    expect(decide(get(NPM, '/dep-a'), first)).toMatchObject({ allowed: true });
    expect(decide(get(NPM, '/dep-a'), second)).toMatchObject({ allowed: false, reason: 'Package dep-a is not in allowedPackages' });
  });

  it('hands metadata to the reader it was given, and learns once the facts come back', async () => {
    const compiled = compilePolicy({ allowedDomains: [], blockedDomains: [], apiPathRules: {}, allowedPackages: ['app'], allowedBinaries: [] });
    const read: RegistryMetadata[] = [];
    let release: (facts: MetadataFacts) => void = () => {};
    const { decide, learn } = sessionPackagePolicy(undefined, (metadata) => {
      read.push(metadata);
      return new Promise((resolve) => (release = resolve));
    });
    const session = { context: compiled };
    const learning = learn(get(NPM, '/app'), ok(packument('app', { '1.0.0': { 'dep-a': '1' } })), session);
    expect(read.map(({ kind, name }) => ({ kind, name }))).toEqual([{ kind: 'npm-metadata', name: 'app' }]);
    expect(decide(get(NPM, '/dep-a'), session)).toMatchObject({ allowed: false });
    release(readRegistryMetadata(read[0]));
    await learning;
    expect(decide(get(NPM, '/dep-a'), session)).toMatchObject({ allowed: true });
    expect(decide(get(NPM, '/app/-/app-1.0.0.tgz'), session)).toMatchObject({ allowed: true });
  });

  it('never hands the reader metadata of a package outside the closure', () => {
    const compiled = compilePolicy({ allowedDomains: [], blockedDomains: [], apiPathRules: {}, allowedPackages: ['app'], allowedBinaries: [] });
    let calls = 0;
    const { learn } = sessionPackagePolicy(undefined, () => {
      calls += 1;
      return Promise.resolve({ npm: [], pypi: [], fileUrls: [] });
    });
    expect(learn(get(NPM, '/other'), ok(packument('other', { '1.0.0': { 'dep-a': '1' } })), { context: compiled })).toBeUndefined();
    expect(calls).toBe(0);
  });
});

describe('parseAllowedPackage', () => {
  it.each<[string, object]>([
    ['lodash', { ok: true, ecosystems: ['npm', 'pypi'], kind: 'name', name: 'lodash', prefixed: false }],
    ['npm:lodash', { ok: true, ecosystems: ['npm'], kind: 'name', name: 'lodash', prefixed: true }],
    ['pypi:Zope.Interface', { ok: true, ecosystems: ['pypi'], kind: 'name', name: 'zope-interface', prefixed: true }],
    ['@okta', { ok: true, ecosystems: ['npm'], kind: 'scope', name: '@okta', prefixed: false }],
    ['npm:@okta', { ok: true, ecosystems: ['npm'], kind: 'scope', name: '@okta', prefixed: true }],
    ['@okta/okta-sdk-nodejs', { ok: true, ecosystems: ['npm'], kind: 'name', name: '@okta/okta-sdk-nodejs', prefixed: false }],
    ['file~name', { ok: true, ecosystems: ['npm'], kind: 'name', name: 'file~name', prefixed: false }],
    ['pypi:@okta', { ok: false }],
    ['pypi:file~name', { ok: false }],
    ['npm:', { ok: false }],
  ])('%s', (raw, expected) => expect(parseAllowedPackage(raw)).toMatchObject(expected));

  it.each<[string[], Ecosystem, string, boolean]>([
    [['npm:lodash'], 'npm', 'lodash', true],
    [['npm:lodash'], 'pypi', 'lodash', false],
    [['pypi:requests'], 'pypi', 'requests', true],
    [['pypi:requests'], 'npm', 'requests', false],
    [['requests'], 'npm', 'requests', true],
    [['requests'], 'pypi', 'Requests', true],
    [['npm:@okta'], 'npm', '@okta/x', true],
    [['pypi:@okta'], 'npm', '@okta/x', false],
  ])('%j covers %s %s: %s', (allowed, ecosystem, name, expected) => expect(packageAllowed(packageRules(allowed), ecosystem, name)).toBe(expected));
});

describe('PackageClosure refusals', () => {
  const FILES_WHEEL = `/packages/aa/bb/requests-2.31.0-py3-none-any.whl`;
  const both = () => {
    const closure = new PackageClosure(packageRules(['requests', 'app']));
    closure.learn(get(PYPI, '/simple/requests/'), ok({ name: 'requests', files: [
      { filename: 'requests-2.31.0-py3-none-any.whl', url: `https://${FILES}${FILES_WHEEL}` },
      { filename: 'x.tgz', url: `https://${NPM}/evil/-/evil-1.0.0.tgz` },
      { filename: 'requests-2.30.0-py3-none-any.whl', url: `http://${FILES}/packages/cc/dd/requests-2.30.0-py3-none-any.whl` },
    ] }));
    closure.learn(get(NPM, '/app'), ok({ name: 'app', versions: { '1.0.0': { dist: { tarball: `https://${FILES}/packages/ee/ff/evil-1.0-py3-none-any.whl` } } } }));
    return closure;
  };

  it.each<[string, EgressRequest, string]>([
    ['a fragment on a packument', get(NPM, '/app#/../evil'), 'A registry request must not carry a fragment ("#")'],
    ['a fragment on a listed file', get(FILES, `${FILES_WHEEL}#x`), 'A registry request must not carry a fragment ("#")'],
    ['plain HTTP', get(NPM, '/app', { scheme: 'http', port: 80 }), 'Package registry registry.npmjs.org is reached over HTTPS only'],
    ['a PyPI page listing an npm file', get(NPM, '/evil/-/evil-1.0.0.tgz'), '/evil/-/evil-1.0.0.tgz on registry.npmjs.org is not a file of an allowed package'],
    ['a packument listing a PyPI file', get(FILES, '/packages/ee/ff/evil-1.0-py3-none-any.whl'), '/packages/ee/ff/evil-1.0-py3-none-any.whl on files.pythonhosted.org is not a file of an allowed package'],
    ['an http:// file URL', get(FILES, '/packages/cc/dd/requests-2.30.0-py3-none-any.whl'), '/packages/cc/dd/requests-2.30.0-py3-none-any.whl on files.pythonhosted.org is not a file of an allowed package'],
    ['a tunnel to another port', get(NPM, '', { method: 'CONNECT', port: 8443 }), 'Port 8443 is not a registry port'],
  ])('refuses %s', (_label, request, reason) => {
    expect(both().decide(request)).toMatchObject({ allowed: false, reason, rule: 'allowedPackages' });
  });

  it('forwards only the classified path, the tail of a wheel being all it reads', () => {
    const closure = both();
    expect(closure.decide(get(NPM, '/app?write=true'))).toMatchObject({ allowed: true, path: '/app', learn: true });
    expect(closure.decide(get(FILES, FILES_WHEEL))).toMatchObject({ allowed: true, path: FILES_WHEEL, learn: true, learnTail: WHEEL_TAIL_BYTES });
    expect(closure.decide(get(NPM, '', { method: 'CONNECT' }))).toMatchObject({ allowed: true });
  });

  const html = (title: string, anchors: Array<[string, string]>) =>
    ({ statusCode: 200, contentType: 'text/html', body: body(`<html><head><title>Links for ${title}</title></head><body><h1>Links for ${title}</h1>${anchors.map(([href, text]) => `<a href="${href}">${text}</a>`).join('<br/>')}</body></html>`) });

  it.each<[string, ReturnType<typeof html>, string[]]>([
    ['its own files', html('requests', [[`https://${FILES}/p/a/requests-2.31.0-py3-none-any.whl#sha256=1`, 'requests-2.31.0-py3-none-any.whl'], [`https://${FILES}/p/b/requests-2.31.0.tar.gz`, 'requests-2.31.0.tar.gz']]), ['/p/a/requests-2.31.0-py3-none-any.whl', '/p/b/requests-2.31.0.tar.gz']],
    ['files named for another project', html('requests', [[`https://${FILES}/p/c/urllib3-2.0.0-py3-none-any.whl`, 'urllib3-2.0.0-py3-none-any.whl'], [`https://${FILES}/p/d/requests_toolbelt-1.0-py3-none-any.whl`, 'requests_toolbelt-1.0-py3-none-any.whl']]), []],
    ['a page titled for another project', html('urllib3', [[`https://${FILES}/p/a/requests-2.31.0-py3-none-any.whl`, 'requests-2.31.0-py3-none-any.whl']]), []],
  ])('learns from a simple HTML page only %s', (_label, page, allowedPaths) => {
    const closure = new PackageClosure(packageRules(['requests']));
    closure.learn(get(PYPI, '/simple/requests/'), page);
    for (const path of ['/p/a/requests-2.31.0-py3-none-any.whl', '/p/b/requests-2.31.0.tar.gz', '/p/c/urllib3-2.0.0-py3-none-any.whl', '/p/d/requests_toolbelt-1.0-py3-none-any.whl']) {
      expect(closure.decide(get(FILES, path))?.allowed, path).toBe(allowedPaths.includes(path));
    }
  });
});

describe('PackageClosure (wheel tails)', () => {
  const wheelPath = '/packages/aa/bb/requests-2.31.0-py3-none-any.whl';
  const metadata = 'Metadata-Version: 2.1\nName: requests\nRequires-Dist: idna\n';
  const listed = () => {
    const closure = new PackageClosure(packageRules(['requests']));
    closure.learn(get(PYPI, '/simple/requests/'), ok({ name: 'requests', files: [{ filename: 'a.whl', url: `https://${FILES}${wheelPath}` }] }));
    return closure;
  };
  // Incompressible filler first, .dist-info last, as wheel builders write them.
  const filler = randomBytes(200_000);
  const wheel = buildZip([
    { name: 'requests/blob.bin', data: filler },
    { name: 'requests-2.31.0.dist-info/METADATA', data: metadata },
  ]);

  it('learns from the tail alone, at its offset in the wheel', () => {
    expect(wheel.length).toBeGreaterThan(100_000);
    const closure = listed();
    const tail = wheel.subarray(wheel.length - 4096);
    closure.learn(get(FILES, wheelPath), { statusCode: 200, contentType: 'application/octet-stream', body: tail, bodyOffset: wheel.length - 4096 });
    expect(closure.learned().pypi).toEqual(['idna']);
  });

  it('learns nothing when METADATA lies before the tail that was kept', () => {
    const early = buildZip([
      { name: 'requests-2.31.0.dist-info/METADATA', data: metadata },
      { name: 'requests/blob.bin', data: filler },
    ]);
    const closure = listed();
    closure.learn(get(FILES, wheelPath), { statusCode: 200, contentType: 'application/octet-stream', body: early.subarray(early.length - 4096), bodyOffset: early.length - 4096 });
    expect(closure.learned().pypi).toEqual([]);
  });
});
