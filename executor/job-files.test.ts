import { describe, expect, it } from 'vitest';
import { conflictingPaths, globSource, maxFilesRecordBytes, outputFilesMatcher, relativePathProblem } from './job-files.ts';

describe('relativePathProblem', () => {
  it.each(['a.txt', 'data/in.csv', 'a b/c-d_e.f', '.hidden', 'a/.b/c', '…/ü.txt', 'x*?'])('accepts %j', (path) => {
    expect(relativePathProblem(path)).toBeNull();
  });

  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['../x', /\.\./],
    ['a/../../x', /\.\./],
    ['a/..', /\.\./],
    ['./a', /\. segments/],
    ['a//b', /empty segments/],
    ['a/', /empty segments/],
    ['a\\b', /separator/],
    ['a\0b', /NUL/],
    ['x'.repeat(256), /segment/],
    [`${'a/'.repeat(600)}b`, /at most 1024 bytes/],
  ])('refuses %j', (path, problem) => {
    expect(relativePathProblem(path)).toMatch(problem);
  });
});

describe('conflictingPaths', () => {
  it('names a duplicate and a file another path needs as a directory', () => {
    expect(conflictingPaths(['a/b', 'c', 'c', 'a'])).toEqual([
      { index: 2, problem: 'duplicates files[1].path' },
      { index: 3, problem: 'is a file, but another path needs "a" as a directory' },
    ]);
  });

  it('accepts files side by side in shared directories', () => {
    expect(conflictingPaths(['a/b', 'a/c', 'a/d/e', 'ab'])).toEqual([]);
  });
});

describe('output globs', () => {
  const matches = (patterns: string[], path: string): boolean => new RegExp(`^(?:${outputFilesMatcher(patterns)})$`).test(path);

  it.each([
    [['*.png'], 'chart.png', true],
    [['*.png'], 'out/chart.png', false],
    [['*.png'], '.png', true],
    [['*.png'], 'chartXpng', false],
    [['out/**'], 'out/a', true],
    [['out/**'], 'out/a/b/c.txt', true],
    [['out/**'], 'output/a', false],
    [['out/**'], 'out', false],
    [['**/*.csv'], 'a.csv', true],
    [['**/*.csv'], 'a/b/c.csv', true],
    [['**'], 'any/thing\nwith newline', true],
    [['a?c'], 'abc', true],
    [['a?c'], 'a/c', false],
    [['(x)+[y]{1}|z$.txt'], '(x)+[y]{1}|z$.txt', true],
    [['(x)+[y]{1}|z$.txt'], 'xx[y]z.txt', false],
    [['a.txt', 'b/*'], 'b/c', true],
    [['a.txt', 'b/*'], 'c', false],
  ])('%j matches %j: %s', (patterns, path, expected) => {
    expect(matches(patterns, path)).toBe(expected);
  });

  it('uses only syntax JavaScript and Python read alike', () => {
    expect(globSource('out/**')).toBe('out/(?:[^/]*/)*[^/]*');
    expect(globSource('**/x.*')).toBe('(?:[^/]*/)*x\\.[^/]*');
  });

  it('sizes the largest files record from the limits', () => {
    expect(maxFilesRecordBytes({ patterns: ['*'], maxFiles: 1, maxBytes: 3 })).toBeGreaterThan(4 + 1024);
  });
});
