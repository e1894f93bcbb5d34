import { describe, expect, it } from 'vitest';
import { buildZip } from '../test/support/zip.ts';
import type { TestZipEntry } from '../test/support/zip.ts';
import { listZipEntries, readZipEntry } from './zip.ts';
import type { ZipResult } from './zip.ts';

const MAX = 1024 * 1024;

/** The content of the first entry, or the problem on the way to it. */
function readFirst(zip: Buffer, maxBytes = MAX): ZipResult<string> {
  const listed = listZipEntries(zip);
  if (!listed.ok) return listed;
  const first = listed.value[0];
  if (first === undefined) return { ok: false, problem: 'empty' };
  const read = readZipEntry(zip, first, maxBytes);
  return read.ok ? { ok: true, value: read.value.toString() } : read;
}

const one = (entry: Partial<TestZipEntry> = {}, options?: Parameters<typeof buildZip>[1]) => buildZip([{ name: 'a.txt', data: 'hello', ...entry }], options);
const valid = one();

describe('listZipEntries', () => {
  it('lists every entry of an archive, in order', () => {
    const listed = listZipEntries(buildZip([{ name: 'a/b.txt', data: 'x' }, { name: 'c', data: 'yy', method: 0 }]));
    expect(listed.ok && listed.value.map((e) => [e.name, e.method, e.uncompressedSize])).toEqual([['a/b.txt', 8, 1], ['c', 0, 2]]);
  });

  it('reads an archive with a comment', () => {
    const zip = one({}, { comment: 'a comment' });
    expect(readFirst(zip)).toEqual({ ok: true, value: 'hello' });
  });
});

describe('readZipEntry', () => {
  it.each<[string, Buffer, ZipResult<string>]>([
    ['deflated', valid, { ok: true, value: 'hello' }],
    ['stored', one({ method: 0 }), { ok: true, value: 'hello' }],
    ['empty file', one({ data: '' }), { ok: true, value: '' }],
  ])('%s', (_label, zip, expected) => {
    expect(readFirst(zip)).toEqual(expected);
  });

  it.each<[string, Buffer, RegExp]>([
    ['nothing at all', Buffer.alloc(0), /too short/],
    ['not a zip', Buffer.alloc(100, 1), /no end of central directory/],
    ['truncated: end record cut', valid.subarray(0, valid.length - 5), /no end of central directory/],
    ['truncated: head cut off', valid.subarray(10), /central directory lies outside|malformed/],
    ['truncated: data cut, directory kept', Buffer.concat([valid.subarray(0, 32), valid.subarray(valid.length - 22 - 47)]), /outside|malformed|past|local header/],
    ['an end record signature inside the comment', one({}, { comment: `PK\x05\x06${'a'.repeat(30)}` }), /no end of central directory/],
    ['bytes after the end record', Buffer.concat([valid, Buffer.from('x')]), /no end of central directory/],
    ['more entries declared than present', one({}, { declaredCount: 2 }), /entry 1 is malformed/],
    ['huge declared size', one({ declaredSize: 0xfffffff0 }), /declares 4294967280 bytes/],
    ['size lies (smaller than the data)', one({ declaredSize: 3 }), /not the size its header declares/],
    ['wrong CRC', one({ crc: 1234 }), /CRC/],
    ['local header names another file', one({ localName: 'b.txt' }), /local header disagrees/],
    ['encrypted', one({ flags: 0x801 }), /encrypted/],
    ['bzip2', one({ method: 12 }), /compression method 12/],
  ])('refuses %s', (_label, zip, problem) => {
    const result = readFirst(zip);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.problem).toMatch(problem);
  });

  it('stops inflating at the cap, whatever the header declares', () => {
    // A deflate stream that expands 4 MiB from a few KiB, declared as 10 bytes.
    const zip = buildZip([{ name: 'bomb', data: Buffer.alloc(4 * MAX), declaredSize: 10 }]);
    expect(zip.length).toBeLessThan(10_000);
    expect(readFirst(zip)).toEqual({ ok: false, problem: `bomb does not inflate within ${MAX} bytes` });
  });

  it('refuses ZIP64 archives rather than guessing', () => {
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    const zip = Buffer.concat([valid.subarray(0, valid.length - 22), locator, valid.subarray(valid.length - 22)]);
    // The locator shifts the end record; its directory offset no longer matters, the locator alone refuses.
    expect(listZipEntries(zip)).toEqual({ ok: false, problem: 'ZIP64 archives are not read' });
  });
});
