/**
 * What happens to a CONNECT tunnel once it is accepted: the proxy never
 * relays opaque bytes. It peeks at the first byte: a TLS ClientHello (0x16)
 * is terminated with a leaf certificate for the CONNECT target, anything else
 * is read as plain HTTP. Either way the decrypted stream is handed to an HTTP
 * server, so every request on the tunnel is decided on its own.
 *
 * The SNI name must be the CONNECT target (after canonicalisation): a client
 * that tunnels to an allowed host and then names another in its ClientHello
 * is refused at the handshake.
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Destination } from './http-checks.ts';
import type { CanonicalHostFn } from './types.ts';

const TLS_HANDSHAKE_RECORD = 0x16;
/** A client that connects and then says nothing is let go after this long. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

export type TunnelOutcome =
  | { kind: 'tls'; socket: tls.TLSSocket }
  | { kind: 'plain'; socket: Socket }
  | { kind: 'refused'; code: 'sni-mismatch' | 'tls-handshake'; reason: string }
  | { kind: 'closed' };

/** Resolves with the first byte, left unread in the socket; null if the client leaves or stays silent. */
function peekFirstByte(socket: Socket): Promise<number | null> {
  return new Promise((resolve) => {
    const done = (value: number | null) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onGone);
      socket.off('end', onGone);
      resolve(value);
    };
    const onReadable = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null || chunk.length === 0) return;
      socket.unshift(chunk);
      done(chunk[0] ?? null);
    };
    const onGone = () => done(null);
    const timer = setTimeout(onGone, FIRST_BYTES_TIMEOUT_MS);
    socket.on('readable', onReadable);
    socket.on('close', onGone);
    socket.on('end', onGone);
    onReadable();
  });
}

export async function openTunnel(
  socket: Socket,
  dest: Destination,
  leafContext: tls.SecureContext,
  canonicalHost: CanonicalHostFn,
): Promise<TunnelOutcome> {
  const first = await peekFirstByte(socket);
  if (first === null) return { kind: 'closed' };
  if (first !== TLS_HANDSHAKE_RECORD) return { kind: 'plain', socket };

  return new Promise((resolve) => {
    let sniRefusal: string | undefined;
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: leafContext,
      // Only HTTP/1.1: the per-request checks run on an HTTP/1.1 parser.
      ALPNProtocols: ['http/1.1'],
      SNICallback: (servername, cb) => {
        const named = canonicalHost(servername);
        if (named !== dest.host) {
          sniRefusal = `TLS SNI names ${named ?? servername}, not the CONNECT target ${dest.host}`;
          cb(new Error(sniRefusal));
          return;
        }
        cb(null, leafContext);
      },
    });
    const timer = setTimeout(() => tlsSocket.destroy(new Error('TLS handshake timed out')), FIRST_BYTES_TIMEOUT_MS);
    const onError = (err: Error) => {
      clearTimeout(timer);
      tlsSocket.destroy();
      socket.destroy();
      if (sniRefusal !== undefined) resolve({ kind: 'refused', code: 'sni-mismatch', reason: sniRefusal });
      else resolve({ kind: 'refused', code: 'tls-handshake', reason: `TLS handshake failed: ${err.message}` });
    };
    tlsSocket.once('error', onError);
    tlsSocket.once('secure', () => {
      clearTimeout(timer);
      tlsSocket.off('error', onError);
      resolve({ kind: 'tls', socket: tlsSocket });
    });
  });
}
