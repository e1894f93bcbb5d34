/**
 * The administrator's console: a single-page app built from console/ at
 * set-up (scripts/build-console.mjs) into console/dist and served here at
 * /admin/ui/. It is mounted only when ADMIN_TOKEN is set, so without one
 * /admin/ui/ answers 404 like the rest of /admin.
 *
 * Its files are public (a browser cannot send a bearer token while it
 * navigates); they hold no data. Every datum the console shows comes from
 * the /admin API with the token the administrator typed, so the console has
 * no power the API does not. The token travels in an Authorization header,
 * never in a cookie, so no other site can make the browser use it (no CSRF),
 * and the Content-Security-Policy allows only this origin's scripts, styles
 * and API: no inline script or style, nothing from elsewhere.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express, { Router, type RequestHandler } from 'express';
import { ApiError } from './errors.ts';

export const ADMIN_CONSOLE_PATH = '/admin/ui';
export const CONSOLE_BUILD_DIR = fileURLToPath(new URL('../console/dist', import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', CONSOLE_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  next();
};

export interface AdminConsoleOptions {
  /** The built console (index.html and assets/); console/dist unless a test says otherwise. */
  directory?: string;
}

export function adminConsoleRouter({ directory = CONSOLE_BUILD_DIR }: AdminConsoleOptions = {}): Router {
  const router = Router();
  router.use(ADMIN_CONSOLE_PATH, securityHeaders);
  router.get(ADMIN_CONSOLE_PATH, (req, res, next) => {
    // Relative asset URLs need the trailing slash; the redirect stays on this origin.
    if (req.originalUrl === ADMIN_CONSOLE_PATH) res.redirect(301, `${ADMIN_CONSOLE_PATH}/`);
    else next();
  });
  router.use(ADMIN_CONSOLE_PATH, (_req, _res, next) => {
    if (existsSync(`${directory}/index.html`)) next();
    else next(new ApiError(503, 'CONSOLE_NOT_BUILT', 'The console is not built: run `npm run build:console` (npm start does it)'));
  });
  router.use(
    ADMIN_CONSOLE_PATH,
    express.static(directory, {
      index: 'index.html',
      redirect: false,
      dotfiles: 'ignore',
      setHeaders(res, path) {
        // Assets carry a content hash in their names; the page that names them must always be fresh.
        res.setHeader('Cache-Control', path.endsWith('.html') ? 'no-store' : 'public, max-age=31536000, immutable');
      },
    }),
  );
  // Anything else under /admin/ui is not a file of the console: 404 here, not the API's 401.
  router.use(ADMIN_CONSOLE_PATH, (req, _res, next) => {
    next(new ApiError(404, 'NOT_FOUND', `No console file ${req.path}`));
  });
  return router;
}
