/**
 * How long a connection inside a tunnel stays open once idle, and what its
 * responses announce about it.
 *
 * Two forces meet here. Node's https client behind a proxy cannot unref the
 * TCP socket under an idle TLS tunnel, so a program stays alive for as long
 * as an idle tunnel of its own is open: a connection kept for reuse delays
 * the program's exit by as long as its client keeps it. And a connection the
 * proxy closes while the client still counts on it races the client's next
 * request, which then fails with the connection. So:
 *
 * - the proxy never closes an idle connection before the keep-alive timeout
 *   its last response announced has passed (plus a grace);
 * - the announcement depends on demand. A request that arrives alone (none
 *   other in flight on the session, none ended just before) is told 1 s:
 *   Node's http Agent and undici (fetch) retire a connection at least a
 *   second before the announced timeout, so they close it after the
 *   response, and a program that made one request exits at once. A request
 *   among others is told 2 s: Node's Agent then keeps the connection for a
 *   second of idleness and sends the next request on it instead of opening a
 *   tunnel and a TLS handshake per request; undici (which retires 2 s early)
 *   still closes it. A program that made a burst of requests through Node's
 *   Agent is kept alive up to that second after its last one.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';

/** Announced to a request that arrives alone: Node's clients close the connection after the response. */
export const LONE_KEEP_ALIVE_S = 1;
/** Announced to a request among others: Node's http Agent may keep the connection for (this − 1) s. */
export const BUSY_KEEP_ALIVE_S = 2;
/** A request is among others when another is in flight, or the last one ended less than this before it arrived. */
const RECENT_MS = 1_000;
/** An idle connection is closed this long after its announced timeout has passed, so a client's late next request still lands. */
export const CLOSE_GRACE_MS = 500;
/** Node's own keep-alive close (it adds a second to this) stays behind ours as a backstop. */
export const TUNNEL_SERVER_KEEP_ALIVE_MS = BUSY_KEEP_ALIVE_S * 1000 + CLOSE_GRACE_MS;

/** ServerResponse announces `Keep-Alive: timeout=` from this (whole seconds), copied from the server's keepAliveTimeout per response. */
type AnnouncingResponse = http.ServerResponse & { _keepAliveTimeout: number };

interface ConnectionState {
  inFlight: number;
  /** The keep-alive of the response that ended last on this connection. */
  announcedS: number;
  timer: NodeJS.Timeout | undefined;
}

/** One per session: demand is judged across all the session's tunnels, since a client pools them together. */
export class TunnelKeepAlive {
  readonly #connections = new WeakMap<Duplex, ConnectionState>();
  #inFlight = 0;
  #lastEndedAt = Number.NEGATIVE_INFINITY;

  /** Called as a request arrives on a tunnel's connection, before its response head is written. */
  track(socket: Duplex, res: http.ServerResponse): void {
    const now = performance.now();
    const announcedS = this.#inFlight > 0 || now - this.#lastEndedAt < RECENT_MS ? BUSY_KEEP_ALIVE_S : LONE_KEEP_ALIVE_S;
    (res as AnnouncingResponse)._keepAliveTimeout = announcedS * 1000;
    let state = this.#connections.get(socket);
    if (state === undefined) {
      state = { inFlight: 0, announcedS, timer: undefined };
      this.#connections.set(socket, state);
    }
    const connection = state;
    clearTimeout(connection.timer);
    connection.inFlight += 1;
    this.#inFlight += 1;
    // A ServerResponse emits 'close' once, whether it finished or its connection went away first.
    res.once('close', () => {
      this.#inFlight -= 1;
      this.#lastEndedAt = performance.now();
      connection.inFlight -= 1;
      connection.announcedS = announcedS;
      if (connection.inFlight > 0 || socket.destroyed) return;
      connection.timer = setTimeout(() => {
        if (connection.inFlight === 0) socket.destroy();
      }, connection.announcedS * 1000 + CLOSE_GRACE_MS);
      connection.timer.unref();
    });
  }
}
