/**
 * CONNECT on the proxy's socket: refused outright only when the target can
 * never be right (not a host, an IP literal the guard forbids, a port the
 * policy does not open); otherwise accepted and intercepted, so a blocked
 * HTTPS request gets a readable 403 inside the tunnel instead of a failed
 * handshake. Every request inside is then decided on its own.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type tls from 'node:tls';
import type { EgressRequest } from '../policies/index.ts';
import { forbiddenAddressReason } from './address-guard.ts';
import { ipLiteralOf, splitHostPort } from './canonical-host.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import { urlOf } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { openTunnel } from './intercept.ts';
import { checkHostForPlaceholders } from './secrets/index.ts';
import type { SessionScope } from './runtime.ts';

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
    const why = forbiddenAddressReason(literal);
    if (why !== null) {
      refuse(refusal(403, 'destination-address', `Destination ${host} is a forbidden address: ${why}`), dest);
      return;
    }
  }
  if (hp.port !== 80 && hp.port !== 443) {
    const request: EgressRequest = { method: 'CONNECT', host: hp.host, port: hp.port, scheme: 'https', path: '', headers: req.headers };
    const verdict = await scope.admissions.decide(request, dest);
    if ('refusal' in verdict) {
      refuse(verdict.refusal, dest, verdict.rule);
      return;
    }
  }

  // A placeholder in the target would reach DNS and the TLS handshake, never substituted: refused whatever the policy says.
  const secretInTarget = checkHostForPlaceholders(scope.secrets, authority);
  if (secretInTarget !== null) {
    refuse(refusal(403, secretInTarget.code, secretInTarget.reason), dest);
    return;
  }

  let leaf: tls.SecureContext;
  try {
    leaf = await rt.leaves.contextFor(host);
  } catch (err) {
    rt.logger.error({ executionId: scope.executionId, host, err }, 'egress leaf certificate failed');
    refuse(refusal(400, 'tls-handshake', 'Cannot intercept this host'), dest);
    return;
  }
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
