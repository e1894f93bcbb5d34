import { describe, expect, it } from 'vitest';
import { compilePathGlob, normalisePath } from './index.ts';

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
  ])('%s → %s', (raw, expected) => {
    expect(normalisePath(raw)).toMatchObject({ ok: true, path: expected });
  });

  it('strips ;params for the second reading', () => {
    expect(normalisePath('/a;p=1/b;q')).toEqual({ ok: true, path: '/a;p=1/b;q', strippedPath: '/a/b' });
  });

  it.each(['/a%2fb', '/a%2Fb', '/a%5cb', '/a\\b', '/a%00', '/a/..;/b', '/a%252e', '/a%g0', '/a%2', 'a/b', 'http://x/a', '*', '/a b', '/a#b'])(
    'finds %j ambiguous',
    (raw) => {
      expect(normalisePath(raw).ok).toBe(false);
    },
  );
});

describe('compilePathGlob', () => {
  const matches = (pattern: string, path: string) => {
    const compiled = compilePathGlob(pattern);
    if (!compiled.ok) throw new Error(compiled.problem);
    return compiled.glob.test(path);
  };

  it.each([
    ['/*', '/', true],
    ['/*', '/api/v1/users/123', true],
    ['/api/*', '/api/v1/users', true],
    ['/api/*', '/apix', false],
    ['/api/*/users', '/api/v1/users', true],
    ['/api/*/users', '/api/v1/v2/users', false],
    ['/api/**/users', '/api/v1/v2/users', true],
    ['/a/*.json', '/a/.hidden.json', true],
    ['/exact', '/exact', true],
    ['/exact', '/exact/more', false],
    ['//a//b', '/a/b', true],
  ])('%s on %s → %s', (pattern, path, expected) => {
    expect(matches(pattern, path)).toBe(expected);
  });

  it.each(['', 'api', '/a/../b', '/a\\b', '/a?b', '/a%2fb'])('refuses pattern %j', (pattern) => {
    expect(compilePathGlob(pattern).ok).toBe(false);
  });
});
