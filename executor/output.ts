/**
 * Output capture for a sandbox's stdout and stderr.
 *
 * Docker multiplexes both streams on one connection in frames of an 8-byte
 * header (stream type, 3 zero bytes, big-endian length) and a payload. The
 * demuxer parses frames incrementally and hands each payload slice to a
 * capped sink: bytes past the cap are counted and dropped, never buffered,
 * so a program writing 200 MB costs the server at most the cap.
 */

/** Where the demuxer hands each stream's bytes. */
export interface OutputSink {
  write(chunk: Buffer): void;
}

export class CappedSink implements OutputSink {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private listener: ((chunk: Buffer) => void) | undefined;
  /** Total bytes the program wrote, including those dropped past the cap. */
  total = 0;

  constructor(private readonly limit: number) {}

  write(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.limit - this.kept;
    if (room <= 0) return;
    const piece = chunk.length <= room ? chunk : chunk.subarray(0, room);
    // Copy when slicing so the dropped remainder of a large frame can be freed.
    this.chunks.push(piece === chunk ? chunk : Buffer.from(piece));
    this.kept += piece.length;
    this.listener?.(piece);
  }

  /** Hands every byte kept from now on to `listener` too, as it arrives (a live view; the cap applies to it as well). */
  listen(listener: (chunk: Buffer) => void): void {
    this.listener = listener;
  }

  get truncated(): boolean {
    return this.total > this.limit;
  }

  /** Decodes the kept bytes; a multi-byte character cut by the cap becomes U+FFFD. */
  text(): string {
    return Buffer.concat(this.chunks, this.kept).toString('utf8');
  }
}

const HEADER_BYTES = 8;
const STREAM_STDOUT = 1;
const STREAM_STDERR = 2;

export class DockerStreamDemuxer {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private remaining = 0;
  private target: OutputSink | null = null;

  constructor(
    private readonly stdout: OutputSink,
    private readonly stderr: OutputSink,
  ) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining === 0) {
        const take = Math.min(HEADER_BYTES - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        const type = this.header.readUInt8(0);
        this.remaining = this.header.readUInt32BE(4);
        this.target = type === STREAM_STDOUT ? this.stdout : type === STREAM_STDERR ? this.stderr : null;
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - offset);
      this.target?.write(chunk.subarray(offset, offset + take));
      this.remaining -= take;
      offset += take;
    }
  }
}
