/**
 * A small, strict zip reader over a Buffer, enough to pull one file out of a
 * wheel: the end-of-central-directory record, the central directory, and one
 * entry's data, stored or deflated. Anything it is not sure about (ZIP64,
 * multi-disk, encryption, offsets or sizes outside the buffer, a local header
 * that disagrees with the central one, a wrong CRC) is a problem, not a guess:
 * its caller learns nothing from an archive it cannot read exactly.
 *
 * The buffer may be only the archive's tail: `base` is where it starts in
 * the whole file. Offsets stay the archive's own; anything before `base` is
 * out of reach, which is a problem like any other.
 */
import zlib from 'node:zlib';

export interface ZipEntry {
  /** The name as stored (UTF-8, or CP437 read as Latin-1 without the UTF-8 flag). */
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

export type ZipResult<T> = { ok: true; value: T } | { ok: false; problem: string };

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

const fail = <T>(problem: string): ZipResult<T> => ({ ok: false, problem });

/**
 * The end-of-central-directory record: the last signature in the final
 * 64 KiB, as Python's zipfile (pip's reader) takes it, and only if its
 * comment then runs exactly to the end of the buffer. Otherwise two readers
 * could disagree about where the directory is.
 */
function findEndRecord(zip: Buffer): number | null {
  const lowest = Math.max(0, zip.length - EOCD_SIZE - MAX_COMMENT);
  for (let at = zip.length - EOCD_SIZE; at >= lowest; at -= 1) {
    if (zip.readUInt32LE(at) === EOCD_SIGNATURE) return at + EOCD_SIZE + zip.readUInt16LE(at + 20) === zip.length ? at : null;
  }
  return null;
}

/** Every entry of the central directory, in order. `zip` is the archive from offset `base` to its end. */
export function listZipEntries(zip: Buffer, base = 0): ZipResult<ZipEntry[]> {
  if (zip.length < EOCD_SIZE) return fail('too short to be a zip archive');
  const end = findEndRecord(zip);
  if (end === null) return fail('no end of central directory record');
  if (end >= 20 && zip.readUInt32LE(end - 20) === ZIP64_LOCATOR_SIGNATURE) return fail('ZIP64 archives are not read');
  const disk = zip.readUInt16LE(end + 4);
  const cdDisk = zip.readUInt16LE(end + 6);
  const onDisk = zip.readUInt16LE(end + 8);
  const count = zip.readUInt16LE(end + 10);
  const cdSize = zip.readUInt32LE(end + 12);
  const cdOffset = zip.readUInt32LE(end + 16);
  if (disk !== 0 || cdDisk !== 0 || onDisk !== count) return fail('multi-disk archives are not read');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) return fail('ZIP64 archives are not read');
  if (cdOffset + cdSize > base + end) return fail('central directory lies outside the archive');
  if (cdOffset < base) return fail('central directory starts before the part of the archive that was kept');

  const entries: ZipEntry[] = [];
  const cdStart = cdOffset - base;
  let at = cdStart;
  for (let i = 0; i < count; i += 1) {
    if (at + CENTRAL_SIZE > cdStart + cdSize || zip.readUInt32LE(at) !== CENTRAL_SIGNATURE) return fail(`central directory entry ${i} is malformed`);
    const flags = zip.readUInt16LE(at + 8);
    const nameLength = zip.readUInt16LE(at + 28);
    const next = at + CENTRAL_SIZE + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    if (next > cdStart + cdSize) return fail(`central directory entry ${i} runs past the directory`);
    if (zip.readUInt16LE(at + 34) !== 0) return fail('multi-disk archives are not read');
    const rawName = zip.subarray(at + CENTRAL_SIZE, at + CENTRAL_SIZE + nameLength);
    entries.push({
      name: rawName.toString((flags & FLAG_UTF8) !== 0 ? 'utf8' : 'latin1'),
      method: zip.readUInt16LE(at + 10),
      flags,
      crc32: zip.readUInt32LE(at + 16),
      compressedSize: zip.readUInt32LE(at + 20),
      uncompressedSize: zip.readUInt32LE(at + 24),
      localHeaderOffset: zip.readUInt32LE(at + 42),
    });
    at = next;
  }
  if (at !== cdStart + cdSize) return fail('central directory size does not match its entries');
  return { ok: true, value: entries };
}

/**
 * One entry's content, at most `maxBytes` once uncompressed. The declared
 * size is checked before inflating and the output is capped while inflating,
 * so a small archive cannot expand into unbounded memory.
 */
export function readZipEntry(zip: Buffer, entry: ZipEntry, maxBytes: number, base = 0): ZipResult<Buffer> {
  if ((entry.flags & FLAG_ENCRYPTED) !== 0) return fail(`${entry.name} is encrypted`);
  if (entry.method !== METHOD_STORED && entry.method !== METHOD_DEFLATE) return fail(`${entry.name} uses compression method ${entry.method}`);
  if (entry.uncompressedSize > maxBytes) return fail(`${entry.name} declares ${entry.uncompressedSize} bytes, more than ${maxBytes}`);
  if (entry.localHeaderOffset < base) return fail(`${entry.name} starts before the part of the archive that was kept`);
  const local = entry.localHeaderOffset - base;
  if (local + LOCAL_SIZE > zip.length || zip.readUInt32LE(local) !== LOCAL_SIGNATURE) return fail(`${entry.name} has no local header`);
  const nameLength = zip.readUInt16LE(local + 26);
  const localName = zip.subarray(local + LOCAL_SIZE, local + LOCAL_SIZE + nameLength);
  // A local header naming another file, or compressing differently, is how two readers are made to see two archives.
  if (!localName.equals(Buffer.from(entry.name, (entry.flags & FLAG_UTF8) !== 0 ? 'utf8' : 'latin1')) || zip.readUInt16LE(local + 8) !== entry.method) {
    return fail(`${entry.name}: local header disagrees with the central directory`);
  }
  const start = local + LOCAL_SIZE + nameLength + zip.readUInt16LE(local + 28);
  if (start + entry.compressedSize > zip.length) return fail(`${entry.name} runs past the end of the archive`);
  const data = zip.subarray(start, start + entry.compressedSize);
  let content: Buffer;
  if (entry.method === METHOD_STORED) {
    content = data;
  } else {
    try {
      content = zlib.inflateRawSync(data, { maxOutputLength: maxBytes });
    } catch {
      return fail(`${entry.name} does not inflate within ${maxBytes} bytes`);
    }
  }
  if (content.length !== entry.uncompressedSize) return fail(`${entry.name} is not the size its header declares`);
  if (zlib.crc32(content) !== entry.crc32) return fail(`${entry.name} fails its CRC check`);
  return { ok: true, value: content };
}
