/**
 * CONNECT on the proxy's socket. The policy's tunnel question comes first,
 * before any TLS work: refused outright when the target can never be right
 * (not a host, an IP literal the guard forbids, a host or port the policy
 * refuses under every method and path). A refused host on 80/443 is still
 * intercepted while the session's small budget lasts, so a blocked HTTPS
 * request gets a readable 403 inside the tunnel instead of a failed
 * handshake; past it, the CONNECT gets the 403. Leaf issuance is capped per
 * session and per second across the proxy (429 with Retry-After beyond).
 * Every request inside is then decided on its own.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type tls from 'node:tls';
import type { EgressRequest } from '../policies/index.ts';
import { ipLiteralOf, splitHostPort } from './canonical-host.ts';
import { rateLimited, refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import { urlOf } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { openTunnel } from './intercept.ts';
import { checkHostForPlaceholders } from './secrets/index.ts';
import type { SessionScope } from './runtime.ts';

/** The log line of every tunnel accepted (refused ones are decisions, like any refusal). */
export const TUNNEL_LOG_MESSAGE = 'egress tunnel';

export async function serveConnect<TContext>(scope: SessionScope<TContext>, req: http.IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  const { rt } = scope;
  const authority = req.url ?? '';
  const hp = splitHostPort(authority);
  const host = hp === null ? null : rt.canonicalHost(hp.host);
  const refuse = (r: Refusal, dest: Destination | null, rule?: string) => {
    const url = dest === null ? authority : urlOf(dest, '');
    scope.respond({ kind: 'socket', socket }, { method: 'CONNECT', dest, url, rawHostname: authority }).refuse(r, rule === undefined ? {} : { rule });
  };
  if (hp === null || host === null) {
    refuse(refusal(400, 'invalid-host', `CONNECT target "${authority.slice(0, 200)}" is not a host:port`), null);
    return;
  }
  const scheme = hp.port === 80 ? 'http' : 'https';
  const dest: Destination = { scheme, rawHost: hp.host, host, port: hp.port };

  const literal = ipLiteralOf(host);
  if (literal !== null && rt.hostMap.lookup(host, hp.port) === undefined) {
    const why = rt.addressGuard.reasonFor(literal);
    if (why !== null) {
      refuse(refusal(403, 'destination-address', `Destination ${host} is a forbidden address: ${why}`), dest);
      return;
    }
  }
  // The tunnel question first, for every port: a host the policy refuses here is refused under every method and path.
  const request: EgressRequest = { method: 'CONNECT', host: hp.host, port: hp.port, scheme: 'https', path: '', headers: req.headers };
  const verdict = await scope.admissions.decide(request, dest);
  const refused = 'refusal' in verdict;
  // Ports 80/443 of a refused host are still intercepted, within a small budget, only so the
  // program can read the 403 (and its reason) on its request; anywhere else the CONNECT is the answer.
  if (refused && hp.port !== 80 && hp.port !== 443) {
    refuse(verdict.refusal, dest, verdict.rule);
    return;
  }
  const grant = rt.leaves.acquire(host, scope, refused);
  if (!('context' in grant)) {
    if (refused) {
      // Beyond the budget a refused host costs no TLS and no leaf: the CONNECT carries the refusal.
      refuse(verdict.refusal, dest, verdict.rule);
    } else {
      const where = grant.limited === 'session' ? 'this execution' : 'the proxy';
      refuse(rateLimited(`Too many new hosts for ${where}: no certificate is issued for ${host} now`, grant.retryAfterS), dest, `proxy:leaf-limit-${grant.limited}`);
    }
    return;
  }

  // A placeholder in the target would reach DNS and the TLS handshake, never substituted: refused whatever the policy says.
  const secretInTarget = checkHostForPlaceholders(scope.secrets, authority);
  if (secretInTarget !== null) {
    refuse(refusal(403, secretInTarget.code, secretInTarget.reason), dest);
    return;
  }

  let leaf: tls.SecureContext;
  try {
    leaf = await grant.context;
  } catch (err) {
    rt.logger.error({ executionId: scope.executionId, host, err }, 'egress leaf certificate failed');
    refuse(refusal(400, 'tls-handshake', 'Cannot intercept this host'), dest);
    return;
  }
  // Each request inside is decided (and logged) on its own; the tunnel itself gets a line too.
  rt.logger.info({ executionId: scope.executionId, method: 'CONNECT', host, port: hp.port, allowed: !refused, rule: verdict.rule }, TUNNEL_LOG_MESSAGE);
  if (!socket.writable) return;
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) socket.unshift(head);

  const outcome = await openTunnel(socket, dest, leaf, rt.canonicalHost);
  switch (outcome.kind) {
    case 'tls':
      scope.serveTunnel(outcome.socket, dest, true);
      return;
    case 'plain':
      // A tunnel carrying plain HTTP is checked the same way, as http:// to the target.
      scope.serveTunnel(outcome.socket, { ...dest, scheme: 'http' }, false);
      return;
    case 'refused':
      scope.respond({ kind: 'socket', socket }, { method: 'CONNECT', dest, url: urlOf(dest, '') }).refuseUnanswered(outcome.code, outcome.reason);
      return;
    case 'closed':
      socket.destroy();
      return;
  }
}
