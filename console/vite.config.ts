/**
 * Builds the administrator's console into console/dist, served by the API at
 * /admin/ui/ (server/admin-console.ts). Everything is bundled: no CDN, no
 * inline script or style, so the page runs under a strict CSP offline.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/admin/ui/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The polyfill would be an inline script; every browser we support has modulepreload.
    modulePreload: { polyfill: false },
    // Data URIs would need img-src data:; keep every asset a file of its own.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
