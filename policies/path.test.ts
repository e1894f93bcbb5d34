import { describe, expect, it } from 'vitest';
import { compilePathGlob, lowerCaseReadings, normalisePath } from './path.ts';
import type { PathGlob, PathReadings } from './path.ts';

describe('normalisePath', () => {
  it.each([
    ['/', '/'],
    ['/a/b?x=1', '/a/b'],
    ['//a///b//', '/a/b/'],
    ['/a/./b/../c', '/a/c'],
    ['/a/%2e%2E/c', '/c'],
    ['/a/b/..', '/a/'],
    ['/../../etc', '/etc'],
    ['/%41%7e%2d', '/A~-'],
    ['/a%3bb/%c3%a9', '/a%3Bb/%C3%A9'],
    ['/a;p=1/b', '/a;p=1/b'],
    ['/users/%40me', '/users/%40me'],
  ])('forwards %s as %s', (raw, expected) => {
    expect(normalisePath(raw)).toMatchObject({ ok: true, path: expected });
  });

  it('reads ;params kept and stripped, each with and without a trailing slash', () => {
    const normalised = normalisePath('/a;p=1/b;q/');
    expect(normalised).toEqual({
      ok: true,
      path: '/a;p=1/b;q/',
      readings: {
        kept: ['a;p=1', 'b;q', ''],
        keptTrimmed: ['a;p=1', 'b;q'],
        stripped: ['a', 'b', ''],
        strippedTrimmed: ['a', 'b'],
      },
    });
  });

  it.each([
    ['/users/%40me', ['users', '@me']],
    ['/v1/projects/p1%3Adelete', ['v1', 'projects', 'p1:delete']],
    ['/odata/%24metadata', ['odata', '$metadata']],
    ['/odata/Products%281%29', ['odata', 'Products(1)']],
    ['/a/%2A', ['a', '*']],
    ['/a/%25x/%C3%A9/%20', ['a', '%25x', '%C3%A9', '%20']],
  ])('decodes printable-ASCII escapes but %%25 in the readings of %s', (raw, kept) => {
    expect(normalisePath(raw)).toMatchObject({ ok: true, readings: { kept } });
  });

  it('treats %3B like ; and drops segments that were only ;params', () => {
    expect(normalisePath('/public/admin%3B/secret')).toMatchObject({ ok: true, path: '/public/admin%3B/secret', readings: { stripped: ['public', 'admin', 'secret'] } });
    expect(normalisePath('/public/;x/secret')).toMatchObject({ ok: true, readings: { stripped: ['public', 'secret'] } });
    expect(normalisePath('/;x')).toMatchObject({ ok: true, readings: { stripped: [''] } });
  });

  it('lower-cases only A-Z', () => {
    const normalised = normalisePath('/User/R%C3%A9pos%3A');
    if (!normalised.ok) throw new Error(normalised.problem);
    expect(lowerCaseReadings(normalised.readings).kept).toEqual(['user', 'r%c3%a9pos:']);
  });

  it.each([
    '/a%2fb',
    '/a%2Fb',
    '/a%5cb',
    '/a\\b',
    '/a%00',
    '/a/..;/b',
    '/a/..%3B/b',
    '/a/.%3b/b',
    '/a/%2e%2e%3bx/b',
    '/a%252e',
    '/a%g0',
    '/a%2',
    'a/b',
    'http://x/a',
    '*',
    '/a b',
    '/a#b',
  ])('finds %j ambiguous', (raw) => {
    expect(normalisePath(raw).ok).toBe(false);
  });
});

function glob(pattern: string): PathGlob {
  const compiled = compilePathGlob(pattern);
  if (!compiled.ok) throw new Error(compiled.problem);
  return compiled.glob;
}

function readingsOf(path: string): PathReadings {
  const normalised = normalisePath(path);
  if (!normalised.ok) throw new Error(normalised.problem);
  return normalised.readings;
}

/** As an allow rule judges: every reading, case included. */
const allows = (pattern: string, path: string): boolean =>
  Object.values(glob(pattern).matchEachReading(readingsOf(path))).every(Boolean);
/** As a deny rule judges on a host not marked case-sensitive: any reading, any case. */
const denies = (pattern: string, path: string): boolean => glob(pattern).matchesAnyReading(readingsOf(path), lowerCaseReadings(readingsOf(path)));

describe('compilePathGlob', () => {
  it.each([
    ['/*', '/', true],
    ['/*', '/api/v1/users/123', true],
    ['/api/*', '/api/v1/users', true],
    ['/api/*', '/api', true],
    ['/api/*', '/apix', false],
    ['/api/*/users', '/api/v1/users', true],
    ['/api/*/users', '/api/v1/v2/users', false],
    ['/api/**/users', '/api/v1/v2/users', true],
    ['/api/**/users', '/api/users', true],
    ['/**/users', '/users', true],
    ['/a/**', '/a', true],
    ['/a/**', '/a/', true],
    ['/**', '/', true],
    ['/a/*.json', '/a/.hidden.json', true],
    ['/a/*.json', '/a/x.json/y', false],
    ['/a/b*c*d', '/a/bxcyd', true],
    ['/a/b*c*d', '/a/bdc', false],
    ['/a/b**c', '/a/bxc', true],
    ['/a/b**c', '/a/b/c', false],
    ['/exact', '/exact', true],
    ['/exact', '/exact/more', false],
    ['/exact', '/exact/', false],
    ['/exact/', '/exact/', true],
    ['/exact', '/Exact', false],
    ['//a//b', '/a/b', true],
    ['/%61', '/a', true],
    ['/users/%40me', '/users/@me', true],
    ['/users/@me', '/users/%40me', true],
    ['/a/%2A', '/a/*', true],
    ['/a/%2A', '/a/b', false],
  ])('allow %s on %s → %s', (pattern, path, expected) => {
    expect(allows(pattern, path)).toBe(expected);
  });

  // Characters other globbing libraries treat as syntax match only themselves.
  it.each([
    ['/odata/Products(1)', '/odata/Products(1)', true],
    ['/odata/Products(1)', '/odata/Products1', false],
    ['/odata/Products(1)', '/odata/Products%281%29', true],
    ['/a/[ab]', '/a/[ab]', true],
    ['/a/[ab]', '/a/a', false],
    ['/a/{b,c}', '/a/b', false],
    ['/a/{b,c}', '/a/{b,c}', true],
    ['/a/!(b)', '/a/c', false],
    ['/a/+(b)', '/a/b', false],
    ['/a/@(b)', '/a/b', false],
    ['/a/!b', '/a/!b', true],
  ])('treats extglob characters literally: %s on %s → %s', (pattern, path, expected) => {
    expect(allows(pattern, path)).toBe(expected);
  });

  it.each([
    ['/user/**', '/User/repos', true],
    ['/admin', '/admin/', true],
    ['/admin/', '/admin', true],
    ['/users/@me', '/users/%40me', true],
    ['/v1/projects/*:delete', '/v1/projects/p1%3Adelete', true],
    ['/odata/$metadata', '/odata/%24metadata', true],
    ['/public/admin/**', '/public/admin%3B/secret', true],
    ['/public/admin/**', '/public/admin;x/secret', true],
    ['/public/secret', '/public/;x/secret', true],
    ['/admin', '/administrator', false],
  ])('deny %s catches %s → %s', (pattern, path, expected) => {
    expect(denies(pattern, path)).toBe(expected);
  });

  it('needs the written case for an allow, and ignores it for a deny only when asked to', () => {
    expect(allows('/repos/**', '/REPOS/x')).toBe(false);
    expect(denies('/repos/**', '/REPOS/x')).toBe(true);
    expect(glob('/repos/**').matchesAnyReading(readingsOf('/REPOS/x'), null)).toBe(false);
  });

  it.each(['', 'api', '/a/../b', '/a\\b', '/a?b', '/a%2fb', '/a/..%3B/b'])('refuses pattern %j', (pattern) => {
    expect(compilePathGlob(pattern).ok).toBe(false);
  });

  it('decides a three-** pattern on a 13 KB path, by segments rather than backtracking', () => {
    const pattern = glob('/**/orgs/**/members/**/delete');
    const filler = '/orgs/x/members/y'.repeat(800);
    expect(filler.length).toBeGreaterThan(13_000);
    expect(pattern.matchesAnyReading(readingsOf(`${filler}/nope`), null)).toBe(false);
    expect(pattern.matchesAnyReading(readingsOf(`${filler}/delete`), null)).toBe(true);
    expect(glob('/**/a*a*a*a*b').matchEachReading(readingsOf(`/${'a'.repeat(13_000)}`)).kept).toBe(false);
  });
});
