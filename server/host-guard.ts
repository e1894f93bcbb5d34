/**
 * DNS rebinding: a web page on `evil.example` can make its own name resolve
 * to 127.0.0.1 and then drive a service listening there from the victim's
 * browser, same-origin. The `Host` header still says `evil.example:3000`,
 * so a service bound to loopback answers only the names it is known by.
 */
import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { ApiError } from './errors.ts';

export const HOST_NOT_ALLOWED = 'HOST_NOT_ALLOWED';

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/** Whether HOST only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (name === 'localhost' || name === '::1') return true;
  return isIP(name) === 4 && name.startsWith('127.');
}

/** The name part of a Host header: `[::1]:3000` → `[::1]`, `localhost:3000` → `localhost`. */
const nameOf = (host: string): string => host.toLowerCase().replace(/:\d*$/, '');

/**
 * Accepts the loopback names, the listen name and `extra`, on any port (only
 * the name tells a rebinding page apart: it cannot make a browser send
 * another site's name); refuses every other Host with 403 before any route
 * runs.
 */
export function loopbackHostGuard(listenHost: string, extra: readonly string[] = []): RequestHandler {
  const listenName = listenHost.includes(':') && !listenHost.startsWith('[') ? `[${listenHost}]` : listenHost;
  const names = new Set([...LOOPBACK_NAMES, listenName, ...extra].map(nameOf));
  return (req, _res, next) => {
    if (names.has(nameOf(req.headers.host ?? ''))) {
      next();
      return;
    }
    const port = req.socket.localPort ?? 0;
    next(new ApiError(403, HOST_NOT_ALLOWED, `Host ${JSON.stringify(req.headers.host ?? '')} is not a name this service answers to; use 127.0.0.1:${port} or localhost:${port}, or add the name to ALLOWED_HOSTS`));
  };
}
