/**
 * One pipeline for every request the proxy relays, plain or upgrade, on the
 * proxy's socket or inside a tunnel: route, admit (framing, policy, address),
 * then forward; every answer the proxy gives by itself goes through the
 * responder. Also the two refusals that never reach the pipeline: CONNECT
 * inside a tunnel, and requests llhttp could not parse.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { refusal } from './errors.ts';
import { forwardRequest, forwardUpgrade } from './forward.ts';
import type { ForwardOutcome, UpstreamRoute } from './forward.ts';
import { checkWebSocketUpgrade, requestLineOf, urlOf } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import type { Responder, Sink } from './responder.ts';
import { absoluteDestination, parseErrorRefusal } from './route.ts';
import { prepareSecrets } from './secret-request.ts';
import type { Route } from './route.ts';
import type { SessionScope } from './runtime.ts';

/** An upgrade request arrives with its socket and the bytes read past its head. */
export type RequestSink = { kind: 'response'; res: http.ServerResponse } | { kind: 'socket'; socket: Duplex; head: Buffer };

export async function serveRequest<TContext>(
  scope: SessionScope<TContext>,
  req: http.IncomingMessage,
  sink: RequestSink,
  route: Route,
  fallbackUrl: string,
): Promise<void> {
  const method = req.method ?? '';
  if (route.kind === 'refused') {
    scope.respond(sink, { method, dest: route.dest ?? null, url: fallbackUrl, rawHostname: fallbackUrl }).refuse(route.refusal);
    return;
  }
  const { dest, path } = route;
  const out = scope.respond(sink, { method, dest, url: urlOf(dest, path), path });
  const badUpgrade = sink.kind === 'socket' ? checkWebSocketUpgrade(req) : null;
  if (badUpgrade !== null) {
    out.refuse(badUpgrade);
    return;
  }
  let continued = false;
  // Only with the request admitted (or its form body needed to admit it) may the client send its body.
  const allowBody = () => {
    if (continued || sink.kind !== 'response') return;
    continued = true;
    if (/^100-continue$/iu.test(String(req.headers.expect ?? ''))) sink.res.writeContinue();
  };
  const admitted = await scope.admissions.admit(req, dest, path, out.exchange, sink.kind === 'response' ? allowBody : undefined);
  if ('refusal' in admitted) {
    out.refuse(admitted.refusal);
    return;
  }
  if ('unreachable' in admitted) {
    out.upstreamFailed(502, admitted.unreachable);
    return;
  }
  // Only now, with the policy's allow in hand, may secrets be substituted.
  const secrets = prepareSecrets(scope.secrets, req, dest, admitted.path, sink.kind === 'socket', (names) => {
    out.exchange.secrets = names;
  });
  if ('refusal' in secrets) {
    out.refuse(secrets.refusal);
    return;
  }
  const upstreamRoute: UpstreamRoute = {
    dest,
    path: secrets.path,
    target: admitted.target,
    secureContext: scope.rt.upstreamTls,
    ...(scope.rt.upstreamProxy === undefined || admitted.target.mapped ? {} : { via: scope.rt.upstreamProxy }),
  };
  const report = forwardReport(out);
  if (sink.kind === 'response') {
    const { res } = sink;
    if (res.destroyed) {
      out.ended({ statusCode: 0, blocked: false, reason: 'client closed the connection' });
      return;
    }
    allowBody();
    // Not tracked here: the session's agents own these connections and cut them when it closes. A per-request
    // entry in a session-wide collection, short-lived but touched on every request, kept whole requests alive
    // through minor GCs (see OnceOutcome) and made them cost several times as much.
    forwardRequest(req, res, upstreamRoute, scope.agentFor(dest.scheme, upstreamRoute.via !== undefined), report, admitted.capture, secrets.rewrite);
    return;
  }
  // An upgraded connection is long-lived by design; the idle limit no longer applies.
  if (typeof (sink.socket as Partial<Socket>).setTimeout === 'function') (sink.socket as Socket).setTimeout(0);
  const upstream = forwardUpgrade(req, sink.socket, sink.head, upstreamRoute, report);
  // No agent owns an upgrade's connection: the session cuts it itself.
  if (upstream !== null && !out.exchange.done) scope.trackUpgrade(upstream);
}

function forwardReport(out: Responder): ForwardOutcome {
  return {
    failed: (status, reason) => out.upstreamFailed(status, reason),
    refused: (r, status) => out.refuse(r, { status }),
    ended: (r) => out.ended({ statusCode: r.statusCode, blocked: false, ...(r.error === undefined ? {} : { reason: r.error }) }),
  };
}

/** CONNECT inside a tunnel is never relayed. */
export function refuseNestedConnect<TContext>(scope: SessionScope<TContext>, req: http.IncomingMessage, socket: Duplex): void {
  const dest = scope.tunnelOf(socket);
  const url = `${dest === undefined ? '' : urlOf(dest, '')} CONNECT ${req.url ?? ''}`;
  scope.respond({ kind: 'socket', socket }, { method: 'CONNECT', dest: dest ?? null, url }).refuse(refusal(400, 'unsupported-request', 'CONNECT inside a tunnel is not allowed'));
}

/** llhttp refused to parse the request (bad method, CL+TE, oversized headers…): answer, log, close. */
export function refuseUnparsed<TContext>(
  scope: SessionScope<TContext>,
  err: NodeJS.ErrnoException & { rawPacket?: Buffer },
  socket: Duplex,
  tunnel: Destination | null,
): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const { method, target } = requestLineOf(err.rawPacket);
  // Nothing was received at all (a silent client timing out): no request to log.
  if (method === '' && err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy();
    return;
  }
  const { refusal: r, status } = parseErrorRefusal(err);
  const url = tunnel === null ? target : urlOf(tunnel, target.startsWith('/') ? target : '/');
  // On the proxy's own socket the request line is the only hint of the host: log it when it parses.
  const dest = tunnel ?? absoluteDestination(target, scope.rt.canonicalHost);
  const sink: Sink = { kind: 'socket', socket };
  scope.respond(sink, { method, dest, url, rawHostname: tunnel === null ? target : '' }).refuse(r, { status });
}
