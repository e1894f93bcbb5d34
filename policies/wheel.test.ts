import { describe, expect, it } from 'vitest';
import { buildWheel } from '../test/fixtures/registry.ts';
import { buildZip } from '../test/support/zip.ts';
import type { TestZipEntry } from '../test/support/zip.ts';
import { MAX_WHEEL_METADATA_BYTES, parseRequirement, readWheelMetadata, requiresDist } from './wheel.ts';
import type { Requirement } from './wheel.ts';

const METADATA = 'Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: dep\n';
const files = (...extra: TestZipEntry[]): TestZipEntry[] => [
  { name: 'demo/__init__.py', data: 'X = 1\n' },
  { name: 'demo-1.0.dist-info/METADATA', data: METADATA },
  { name: 'demo-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\n' },
  ...extra,
];

describe('readWheelMetadata', () => {
  it('reads the METADATA of a wheel written by python3 zipfile', () => {
    const wheel = buildWheel({ name: 'Tiny_Thing', version: '2.0', module: 'tiny_thing', init: '', requires: ['dep>=1'] });
    const read = readWheelMetadata(wheel);
    expect(read).toMatchObject({ ok: true, value: { distInfo: 'Tiny_Thing-2.0.dist-info', name: 'tiny-thing' } });
    expect(read.ok && requiresDist(read.value.metadata).map((r) => r.name)).toEqual(['dep']);
  });

  it('reads a hand-made wheel, METADATA stored or deflated', () => {
    expect(readWheelMetadata(buildZip(files()))).toEqual({ ok: true, value: { distInfo: 'demo-1.0.dist-info', name: 'demo', metadata: METADATA } });
    const stored = files().map((f) => ({ ...f, method: 0 }));
    expect(readWheelMetadata(buildZip(stored))).toMatchObject({ ok: true, value: { metadata: METADATA } });
  });

  it.each<[string, Buffer, RegExp]>([
    ['a path-traversal name', buildZip(files({ name: '../evil.py', data: '' })), /unsafe entry name "..\/evil.py"/],
    ['a traversal name inside the tree', buildZip(files({ name: 'demo/../../x', data: '' })), /unsafe entry name/],
    ['an absolute name', buildZip(files({ name: '/etc/x', data: '' })), /unsafe entry name/],
    ['a backslash name', buildZip(files({ name: 'demo\\..\\x', data: '' })), /unsafe entry name/],
    ['a drive-letter name', buildZip(files({ name: 'C:/x', data: '' })), /unsafe entry name/],
    ['a NUL in a name', buildZip(files({ name: 'demo/x\0.py', data: '' })), /unsafe entry name/],
    ['two METADATA entries with the same name', buildZip(files({ name: 'demo-1.0.dist-info/METADATA', data: 'Requires-Dist: other\n' })), /ambiguous demo-1.0.dist-info\/METADATA \(2 entries\)/],
    ['METADATA and metadata', buildZip(files({ name: 'demo-1.0.dist-info/metadata', data: '' })), /ambiguous/],
    ['only a lower-case metadata', buildZip([{ name: 'demo-1.0.dist-info/metadata', data: METADATA }]), /ambiguous|no demo/],
    ['two .dist-info directories', buildZip(files({ name: 'other-1.0.dist-info/METADATA', data: METADATA })), /more than one \.dist-info/],
    ['no .dist-info directory', buildZip([{ name: 'demo/__init__.py', data: '' }]), /no \.dist-info/],
    ['no METADATA', buildZip([{ name: 'demo-1.0.dist-info/WHEEL', data: '' }]), /no demo-1.0.dist-info\/METADATA/],
    ['a nameless .dist-info', buildZip([{ name: '-1.0.dist-info/METADATA', data: METADATA }]), /does not name a distribution/],
    ['a huge declared METADATA size', buildZip([{ name: 'demo-1.0.dist-info/METADATA', data: METADATA, declaredSize: 0x7fffffff }]), /declares 2147483647 bytes/],
    ['a METADATA that inflates past the cap', buildZip([{ name: 'demo-1.0.dist-info/METADATA', data: Buffer.alloc(MAX_WHEEL_METADATA_BYTES + 1, 0x20) }]), /more than|does not inflate/],
    ['a truncated wheel', buildZip(files()).subarray(0, 200), /no end of central directory/],
    ['a wheel cut before its central directory', (() => {
      const whole = buildZip(files());
      return Buffer.concat([whole.subarray(0, 40), whole.subarray(whole.length - 22)]);
    })(), /outside the archive|malformed/],
  ])('refuses %s', (_label, wheel, problem) => {
    const read = readWheelMetadata(wheel);
    expect(read.ok).toBe(false);
    expect(read.ok ? '' : read.problem).toMatch(problem);
  });
});

describe('parseRequirement', () => {
  it.each<[string, Requirement | null]>([
    ['requests', { name: 'requests', extras: [], marker: null }],
    ['charset_normalizer (<4,>=2)', { name: 'charset-normalizer', extras: [], marker: null }],
    ['Foo.Bar[Socks, security]>=1.0', { name: 'foo-bar', extras: ['socks', 'security'], marker: null }],
    ['PySocks!=1.5.7,>=1.5.6; extra == "socks"', { name: 'pysocks', extras: [], marker: 'extra == "socks"' }],
    ['colorama ; sys_platform == "win32"', { name: 'colorama', extras: [], marker: 'sys_platform == "win32"' }],
    ['pkg @ https://example.com/p.whl;v=1 ; python_version >= "3"', { name: 'pkg', extras: [], marker: 'python_version >= "3"' }],
    ['pkg @ https://example.com/p.whl;v=1', { name: 'pkg', extras: [], marker: null }],
    ['  spaced  ', { name: 'spaced', extras: [], marker: null }],
    ['', null],
    ['>=1.0', null],
    ['-leading-dash', null],
  ])('%j', (text, expected) => {
    expect(parseRequirement(text)).toEqual(expected);
  });
});

describe('requiresDist', () => {
  it.each<[string, string, string[]]>([
    ['one per line', 'Name: a\nRequires-Dist: b\nRequires-Dist: c>=1\n', ['b', 'c']],
    ['field names are case-insensitive', 'name: a\nrequires-dist: B_B\n', ['b-b']],
    ['CRLF line ends', 'Name: a\r\nRequires-Dist: b\r\n\r\nRequires-Dist: body\r\n', ['b']],
    ['extra-only and marker-guarded names count too', 'Requires-Dist: x; extra == "socks"\nRequires-Dist: y; python_version < "3.8"\n', ['x', 'y']],
    ['the description after the blank line is not headers', 'Name: a\n\nRequires-Dist: not-a-header\n', []],
    ['a folded value is joined', 'Requires-Dist: b\n  ; extra == "x"\n', ['b']],
    ['other fields that mention it are ignored', 'Summary: Requires-Dist: no\nX-Requires-Dist: no\nProvides-Extra: socks\n', []],
    ['an empty value is skipped', 'Requires-Dist:\nRequires-Dist: ok\n', ['ok']],
  ])('%s', (_label, metadata, names) => {
    expect(requiresDist(metadata).map((r) => r.name)).toEqual(names);
  });

  it('keeps markers and extras for whoever wants to narrow later', () => {
    expect(requiresDist('Requires-Dist: b[fast]; extra == "x"\n  and python_version >= "3"\n')).toEqual([{ name: 'b', extras: ['fast'], marker: 'extra == "x" and python_version >= "3"' }]);
  });
});
