import { afterEach, describe, expect, it } from 'vitest';
import { readRegistryMetadata, type RegistryMetadata } from '../policies/index.ts';
import { MetadataReader } from './metadata-reader.ts';

/** A packument of `versions` versions, each naming a dependency and a tarball: about 150 bytes a version. */
function packument(versions: number): RegistryMetadata {
  const doc = {
    name: 'big',
    versions: Object.fromEntries(
      Array.from({ length: versions }, (_, i) => [`1.0.${i}`, { dependencies: { [`dep-${i % 50}`]: '^1.0.0' }, dist: { tarball: `https://registry.npmjs.org/big/-/big-1.0.${i}.tgz` } }]),
    ),
  };
  return { kind: 'npm-metadata', name: 'big', body: new TextEncoder().encode(JSON.stringify(doc)) };
}

describe('MetadataReader', () => {
  let reader: MetadataReader | undefined;
  afterEach(async () => {
    await reader?.close();
  });

  it('reads a small body on the calling thread', async () => {
    reader = new MetadataReader({ inlineMaxBytes: 1024 * 1024 });
    const metadata = packument(10);
    expect(await reader.read(metadata)).toEqual(readRegistryMetadata(metadata));
    expect(reader.offThread).toBe(0);
  });

  it('reads a large body on a worker thread, with the same facts, while the event loop goes on', async () => {
    reader = new MetadataReader({ inlineMaxBytes: 64 * 1024 });
    const metadata = packument(20_000);
    let loopTurned = false;
    setImmediate(() => {
      loopTurned = true;
    });
    const facts = await reader.read(metadata);
    // Read inline, the parse would finish (and the await resume) before the loop reached its next turn.
    expect(loopTurned).toBe(true);
    expect(reader.offThread).toBe(1);
    expect(facts).toEqual(readRegistryMetadata(metadata));
    expect(facts.fileUrls).toHaveLength(20_000);
  });

  it('answers concurrent reads each with its own facts', async () => {
    reader = new MetadataReader({ inlineMaxBytes: 0 });
    const small = { kind: 'npm-metadata', name: 'a', body: new TextEncoder().encode(JSON.stringify({ name: 'a', versions: { '1.0.0': { dependencies: { b: '1' } } } })) } as const;
    const [big, other] = await Promise.all([reader.read(packument(2_000)), reader.read(small)]);
    expect(big.fileUrls).toHaveLength(2_000);
    expect(other).toEqual({ npm: ['b'], pypi: [], fileUrls: [] });
  });

  it('teaches nothing when the worker runs out of heap, and reads again afterwards', async () => {
    reader = new MetadataReader({ inlineMaxBytes: 0, workerHeapMb: 32 });
    expect(await reader.read(packument(100_000))).toEqual({ npm: [], pypi: [], fileUrls: [] });
    const small = { kind: 'npm-metadata', name: 'a', body: new TextEncoder().encode(JSON.stringify({ name: 'a', versions: { '1.0.0': { dependencies: { b: '1' } } } })) } as const;
    expect((await reader.read(small)).npm).toEqual(['b']);
  });
});
