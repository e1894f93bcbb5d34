/**
 * The seam between a sandbox and its egress route. The executor defines it;
 * the egress proxy implements it (in-process or as its own service), and the
 * server wires the two, so the executor never knows which proxy it talks to.
 *
 * Every sandbox gets a host directory bind-mounted read-only at
 * SANDBOX_EGRESS_DIR. The egress session creates its Unix socket there
 * (`proxy.sock`) and the CA certificate sits beside it (`ca.pem`); the
 * in-sandbox agent forwards 127.0.0.1:3128 to the socket. A container made
 * ahead of time (warm pool) therefore has no route out until a session
 * creates the socket in its directory.
 */

export const SANDBOX_EGRESS_DIR = '/run/egress';
/** File names inside the egress directory, the same on the host and in the sandbox. */
export const PROXY_SOCKET_FILE = 'proxy.sock';
export const CA_CERT_FILE = 'ca.pem';
export const SANDBOX_PROXY_SOCKET = `${SANDBOX_EGRESS_DIR}/${PROXY_SOCKET_FILE}`;
export const SANDBOX_CA_CERT = `${SANDBOX_EGRESS_DIR}/${CA_CERT_FILE}`;
export const SANDBOX_PROXY_URL = 'http://127.0.0.1:3128';

/** Environment every sandboxed program gets so ordinary clients use the proxy and trust its CA. */
export const SANDBOX_PROXY_ENV: Readonly<Record<string, string>> = {
  HTTP_PROXY: SANDBOX_PROXY_URL,
  HTTPS_PROXY: SANDBOX_PROXY_URL,
  http_proxy: SANDBOX_PROXY_URL,
  https_proxy: SANDBOX_PROXY_URL,
  NO_PROXY: '',
  no_proxy: '',
  NODE_USE_ENV_PROXY: '1',
  NODE_EXTRA_CA_CERTS: SANDBOX_CA_CERT,
  SSL_CERT_FILE: SANDBOX_CA_CERT,
  REQUESTS_CA_BUNDLE: SANDBOX_CA_CERT,
  CURL_CA_BUNDLE: SANDBOX_CA_CERT,
  PIP_CERT: SANDBOX_CA_CERT,
};
