/**
 * Relays a response the policy must read before the client sees it (registry
 * metadata, a wheel's tail), within the session's capture budget and at the
 * client's pace.
 */
import type http from 'node:http';
import type { CaptureBudget, CaptureTicket } from './capture-budget.ts';
import { forwardableHeaders } from './http-checks.ts';
import { describe, type ForwardOutcome } from './forward-outcome.ts';
import type { UpstreamFailureStatus } from './responder.ts';

/**
 * Hold the response (up to `maxBytes` on the wire), or only its last
 * `tailBytes` (the rest streams on as it comes), and hand what was held to
 * `onBody` before the client gets it. Only for responses a policy must read
 * (registry metadata, wheels); everything else streams. What is held counts
 * against the session's `budget` until the client has taken it.
 */
export interface ResponseCapture {
  maxBytes: number;
  tailBytes?: number;
  budget: CaptureBudget;
  /** `bodyOffset`: where `body` starts in the whole response (non-zero when only the tail was held). */
  onBody(statusCode: number, headers: http.IncomingHttpHeaders, body: Buffer, bodyOffset: number): Promise<void>;
}

/** Pieces a held body is written in, so the client's pace sets how fast it goes. */
const WRITE_SLICE_BYTES = 64 * 1024;

/** Ends the capture's share of the budget with the exchange. */
export function closingTicket(report: ForwardOutcome, ticket: CaptureTicket): ForwardOutcome {
  return {
    failed(status, reason) {
      ticket.close();
      report.failed(status, reason);
    },
    refused(refusal, status) {
      ticket.close();
      report.refused(refusal, status);
    },
    ended(result) {
      ticket.close();
      report.ended(result);
    },
  };
}

function budgetExceeded(capture: ResponseCapture): string {
  return `registry responses being read by the policy for this sandbox would hold more than ${capture.budget.limits.sessionBytes} bytes; retry when the client has read the others`;
}

/**
 * Writes `pieces` to the client as fast as it reads them: the next piece
 * only after the previous one drained, each piece's bytes given back to the
 * budget once the socket has taken them (`release` false: given back at
 * the end, because they are slices of one buffer freed only as a whole).
 */
function writePaced(res: http.ServerResponse, pieces: Buffer[], ticket: CaptureTicket, release: boolean, done: () => void): void {
  const next = (): void => {
    while (pieces.length > 0) {
      if (res.destroyed) return;
      const piece = pieces.shift() as Buffer;
      const more = res.write(piece, () => {
        if (release) ticket.release(piece.length);
      });
      if (!more) {
        res.once('drain', next);
        return;
      }
    }
    done();
  };
  next();
}

function slices(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += WRITE_SLICE_BYTES) out.push(body.subarray(at, at + WRITE_SLICE_BYTES));
  return out;
}

/**
 * Holds the whole upstream answer (within `maxBytes` and the session's
 * budget), lets `capture` read it, then sends it on unchanged, paced by the
 * client. The chunks are joined once and dropped, so the body is held once.
 */
export function relayCaptured(ures: http.IncomingMessage, res: http.ServerResponse, capture: ResponseCapture, ticket: CaptureTicket, outcome: ForwardOutcome): void {
  const statusCode = ures.statusCode ?? 502;
  let chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const fail = (status: UpstreamFailureStatus, reason: string) => {
    if (failed) return;
    failed = true;
    chunks = [];
    ures.destroy();
    outcome.failed(status, reason);
  };
  ures.on('data', (chunk: Buffer) => {
    if (failed) return;
    size += chunk.length;
    if (size > capture.maxBytes) {
      fail(502, `response the policy must read (registry metadata or a wheel) exceeds ${capture.maxBytes} bytes`);
      return;
    }
    if (!ticket.reserve(chunk.length)) {
      fail(503, budgetExceeded(capture));
      return;
    }
    chunks.push(chunk);
  });
  ures.on('error', (err) => fail(502, `upstream broke off: ${describe(err)}`));
  ures.on('end', () => {
    if (failed) return;
    const body = chunks.length === 1 ? (chunks[0]) : Buffer.concat(chunks, size);
    chunks = [];
    void capture
      .onBody(statusCode, ures.headers, body, 0)
      .catch(() => undefined)
      .then(() => {
        if (res.destroyed) return;
        try {
          const headers = forwardableHeaders(ures.rawHeaders).filter((_, i, all) => !isFramingHeader(all, i));
          if (statusCode !== 204 && statusCode !== 304) headers.push('Content-Length', String(body.length));
          res.writeHead(statusCode, ures.statusMessage, headers);
        } catch (err) {
          outcome.failed(502, `upstream response rejected: ${describe(err)}`);
          return;
        }
        res.on('finish', () => outcome.ended({ statusCode }));
        writePaced(res, slices(body), ticket, false, () => res.end());
      });
  });
}

/**
 * Streams the upstream answer to the client, paced by the client, holding
 * back only its last `tailBytes`: when the upstream has ended, `capture`
 * reads that tail, and only then does the client get it. Memory per
 * capture stays near `tailBytes` whatever the size of the file.
 */
export function relayTail(ures: http.IncomingMessage, res: http.ServerResponse, capture: ResponseCapture, tailBytes: number, ticket: CaptureTicket, outcome: ForwardOutcome): void {
  const statusCode = ures.statusCode ?? 502;
  const held: Buffer[] = [];
  let heldSize = 0;
  let total = 0;
  let failed = false;
  let headSent = false;
  const fail = (status: UpstreamFailureStatus, reason: string) => {
    if (failed) return;
    failed = true;
    held.length = 0;
    ures.destroy();
    // Once the head is out only cutting the connection can tell the client.
    if (headSent) {
      res.destroy();
      outcome.ended({ statusCode, error: reason });
    } else outcome.failed(status, reason);
  };
  const sendHead = (): boolean => {
    if (headSent) return true;
    try {
      res.writeHead(statusCode, ures.statusMessage, forwardableHeaders(ures.rawHeaders));
    } catch (err) {
      fail(502, `upstream response rejected: ${describe(err)}`);
      return false;
    }
    headSent = true;
    res.on('finish', () => outcome.ended({ statusCode }));
    return true;
  };
  ures.on('data', (chunk: Buffer) => {
    if (failed) return;
    if (!ticket.reserve(chunk.length)) {
      fail(503, budgetExceeded(capture));
      return;
    }
    total += chunk.length;
    held.push(chunk);
    heldSize += chunk.length;
    // Everything older than the tail goes on now; the client's pace decides when the next chunk is read.
    const ahead: Buffer[] = [];
    while (held.length > 0 && heldSize - (held[0]).length >= tailBytes) {
      const piece = held.shift() as Buffer;
      heldSize -= piece.length;
      ahead.push(piece);
    }
    if (ahead.length === 0 || !sendHead()) return;
    ures.pause();
    writePaced(res, ahead, ticket, true, () => ures.resume());
  });
  ures.on('error', (err) => fail(502, `upstream broke off: ${describe(err)}`));
  ures.on('end', () => {
    if (failed) return;
    const tail = held.length === 1 ? (held[0]) : Buffer.concat(held, heldSize);
    held.length = 0;
    void capture
      .onBody(statusCode, ures.headers, tail, total - tail.length)
      .catch(() => undefined)
      .then(() => {
        if (res.destroyed || !sendHead()) return;
        writePaced(res, slices(tail), ticket, false, () => res.end());
      });
  });
}

/** Content-Length is set again from the buffered body, so the upstream's (and any chunking) is dropped. */
function isFramingHeader(pairs: readonly string[], index: number): boolean {
  const nameIndex = index % 2 === 0 ? index : index - 1;
  const name = pairs[nameIndex]?.toLowerCase();
  return name === 'content-length' || name === 'transfer-encoding';
}
