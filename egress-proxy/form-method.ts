/**
 * `_method` in a urlencoded form body: Rails, Laravel and Rack's
 * MethodOverride read it as the request method, so a POST carrying
 * `_method=DELETE` is a DELETE to them. The proxy reads small form bodies
 * before the request goes on, hands their `_method` values to the policy,
 * and puts the bytes back so the body is forwarded exactly as sent.
 */
import type { IncomingMessage } from 'node:http';

/** Bodies larger than this are not read (nor held): the method override lives in small forms. */
export const FORM_METHOD_MAX_BYTES = 64 * 1024;

export function isUrlencodedForm(req: IncomingMessage): boolean {
  return /^application\/x-www-form-urlencoded\b/iu.test(String(req.headers['content-type'] ?? ''));
}

/** The `_method` values of a form body (percent and `+` decoded). */
export function formMethodsOf(body: Buffer): string[] {
  return new URLSearchParams(body.toString('latin1')).getAll('_method');
}

/**
 * Reads the whole body when it is at most `limit` bytes, and puts it back
 * into the stream unread; null (and nothing consumed) when it is larger or
 * the client goes away first.
 */
export function peekBody(req: IncomingMessage, limit = FORM_METHOD_MAX_BYTES): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(null);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (whole: boolean) => {
      if (done) return;
      done = true;
      req.off('readable', onReadable);
      req.off('error', onGone);
      req.off('close', onGone);
      // Unshifted in the same tick as the last read, before the stream can report its end.
      if (size > 0) req.unshift(Buffer.concat(chunks));
      resolve(whole ? Buffer.concat(chunks) : null);
    };
    const onReadable = () => {
      for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > limit) {
          finish(false);
          return;
        }
      }
      if (req.complete) finish(true);
    };
    const onGone = () => finish(false);
    req.on('readable', onReadable);
    req.on('error', onGone);
    req.on('close', onGone);
    onReadable();
  });
}
