import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, PolicyValidationError, compilePolicy, createDecider, decide, lintPolicy, policyFromApi } from './index.ts';
import { MAX_RULED_PATH_LENGTH } from './path.ts';
import type { CompiledPolicy, EgressRequest, Policy } from './index.ts';

function loadPolicy(relativePath: string): CompiledPolicy {
  const json: unknown = JSON.parse(readFileSync(new URL(`../${relativePath}`, import.meta.url), 'utf8'));
  const linted = lintPolicy(json);
  if (!linted.ok) throw new Error(linted.problems.join('\n'));
  return compilePolicy(linted.policy);
}

const policies = {
  seed: loadPolicy('examples/policies/seed.json'),
  files: loadPolicy('test/fixtures/policies/files.json'),
  open: loadPolicy('test/fixtures/policies/open.json'),
  githubReadonly: loadPolicy('examples/policies/github-readonly.json'),
  customPort: loadPolicy('test/fixtures/policies/custom-port.json'),
  spellings: loadPolicy('test/fixtures/policies/path-spellings.json'),
  default: compilePolicy(DEFAULT_POLICY),
};
type PolicyName = keyof typeof policies;

interface Row {
  policy: PolicyName;
  method: string;
  host: string;
  path?: string;
  port?: number;
  headers?: Record<string, string | string[]>;
  allowed: boolean;
  reason: string;
  rule?: string;
}

function run(row: Row) {
  const request: EgressRequest = {
    method: row.method,
    host: row.host,
    port: row.port ?? 443,
    scheme: 'https',
    path: row.path ?? '/',
    headers: row.headers ?? {},
  };
  return decide(policies[row.policy], request);
}

const OKTA_ALLOW = 'apiPathRules["*.okta.com"][0]';
const OKTA_DENY = 'apiPathRules["*.okta.com"][1]';
const FILES = 'apiPathRules["files.example.org"]';

// The seed guide's scenarios and wildcard examples, verbatim.
const seedRows: Row[] = [
  { policy: 'seed', method: 'GET', host: 'api.stripe.com', path: '/v1/products', allowed: true, reason: 'Domain api.stripe.com is allowed', rule: 'allowedDomains[0]' },
  { policy: 'seed', method: 'DELETE', host: 'dev-123.okta.com', path: '/api/v1/users/123', allowed: false, reason: 'Method DELETE not allowed for *.okta.com', rule: OKTA_DENY },
  { policy: 'seed', method: 'GET', host: 'api.github.com', path: '/users/github', allowed: false, reason: 'Domain api.github.com is not in allowed list', rule: 'allowedDomains' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/api/v1/users/123', allowed: true, reason: 'Path /api/v1/users/123 is allowed for *.okta.com', rule: OKTA_ALLOW },
  { policy: 'seed', method: 'GET', host: 'test.okta.com', allowed: true, reason: 'Path / is allowed for *.okta.com', rule: OKTA_ALLOW },
  { policy: 'seed', method: 'GET', host: 'prod-456.okta.com', path: '/x', allowed: true, reason: 'Path /x is allowed for *.okta.com', rule: OKTA_ALLOW },
  { policy: 'seed', method: 'GET', host: 'okta.com', allowed: false, reason: 'Domain okta.com is not in allowed list' },
  { policy: 'seed', method: 'GET', host: 'api.okta.com.evil.com', allowed: false, reason: 'Domain api.okta.com.evil.com is not in allowed list' },
];

// Precedence and rule semantics on the richer fixture.
const semanticRows: Row[] = [
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/secret/x', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[1]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/secret/x/y/z', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[1]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/a', allowed: true, reason: 'Path /public/a is allowed for files.example.org', rule: `${FILES}[0]` },
  { policy: 'files', method: 'PATCH', host: 'files.example.org', path: '/public/a/b/c', allowed: true, reason: 'Path /public/a/b/c is allowed for files.example.org', rule: `${FILES}[0]` },
  { policy: 'files', method: 'POST', host: 'files.example.org', path: '/docs/readme.md', allowed: false, reason: 'No rule allows POST /docs/readme.md for files.example.org', rule: FILES },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/docs/a/readme.md', allowed: false, reason: 'No rule allows GET /docs/a/readme.md for files.example.org', rule: FILES },
  { policy: 'files', method: 'PUT', host: 'files.example.org', path: '/users/42/profile', allowed: true, reason: 'Path /users/42/profile is allowed for files.example.org', rule: `${FILES}[4]` },
  { policy: 'files', method: 'PUT', host: 'files.example.org', path: '/users/42/x/profile', allowed: false, reason: 'No rule allows PUT /users/42/x/profile for files.example.org' },
  { policy: 'files', method: 'GET', host: 'evil.okta.com', allowed: false, reason: 'Domain evil.okta.com is blocked by policy', rule: 'blockedDomains[0]' },
  { policy: 'files', method: 'GET', host: 'a.b.internal.github.com', allowed: false, reason: 'Domain a.b.internal.github.com is blocked by policy', rule: 'blockedDomains[1]' },
  { policy: 'files', method: 'GET', host: 'internal.github.com', path: '/repos/a/b', allowed: true, reason: 'Path /repos/a/b is allowed for *.github.com', rule: 'apiPathRules["*.github.com"][0]' },
  // Rules of every matching key apply together: the exact key's deny beats the wildcard key's scope.
  { policy: 'files', method: 'POST', host: 'api.github.com', path: '/repos/a/b', allowed: false, reason: 'Method POST not allowed for api.github.com', rule: 'apiPathRules["api.github.com"][0]' },
  { policy: 'files', method: 'PUT', host: 'api.github.com', path: '/repos/a/b', allowed: false, reason: 'No rule allows PUT /repos/a/b for *.github.com', rule: 'apiPathRules["*.github.com"]' },
  { policy: 'files', method: 'GET', host: 'example.com', path: '/anything/at/all', allowed: true, reason: 'Domain example.com is allowed', rule: 'allowedDomains[2]' },
  { policy: 'files', method: 'GET', host: 'www.example.com', allowed: false, reason: 'Domain www.example.com is not in allowed list' },
  { policy: 'open', method: 'GET', host: 'anything.example.net', allowed: true, reason: 'Domain anything.example.net is allowed', rule: 'allowedDomains[0]' },
  { policy: 'open', method: 'GET', host: 'x.corp.example', allowed: false, reason: 'Domain x.corp.example is blocked by policy', rule: 'blockedDomains[2]' },
  { policy: 'default', method: 'GET', host: 'api.stripe.com', allowed: false, reason: 'Domain api.stripe.com is blocked by policy', rule: 'blockedDomains[0]' },
  { policy: 'githubReadonly', method: 'HEAD', host: 'api.github.com', path: '/repos/o/r', allowed: true, reason: 'Path /repos/o/r is allowed for api.github.com' },
  { policy: 'githubReadonly', method: 'GET', host: 'api.github.com', path: '/user/emails', allowed: false, reason: 'Method GET not allowed for api.github.com', rule: 'apiPathRules["api.github.com"][2]' },
];

// Attempts to reach a destination, or a path, the policy does not allow by spelling it differently.
const adversarialRows: Row[] = [
  // host spelling
  { policy: 'seed', method: 'GET', host: 'API.STRIPE.COM', allowed: true, reason: 'Domain api.stripe.com is allowed' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com.', allowed: true, reason: 'Domain api.stripe.com is allowed' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com..', allowed: false, reason: 'Host "api.stripe.com.." is not a valid host name', rule: 'default' },
  { policy: 'seed', method: 'DELETE', host: 'DEV-123.OKTA.COM.', path: '/x', allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'a.b.c.okta.com', allowed: true, reason: 'Path / is allowed for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'okta.com.', allowed: false, reason: 'Domain okta.com is not in allowed list' },
  { policy: 'seed', method: 'GET', host: 'evilokta.com', allowed: false, reason: 'Domain evilokta.com is not in allowed list' },
  { policy: 'seed', method: 'GET', host: 'user@api.stripe.com', allowed: false, reason: 'Host "user@api.stripe.com" is not a valid host name', rule: 'default' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com@evil.com', allowed: false, reason: 'Host "api.stripe.com@evil.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com\\@evil.com', allowed: false, reason: 'Host "api.stripe.com\\\\@evil.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'evil.com\\.api.stripe.com', allowed: false, reason: 'Host "evil.com\\\\.api.stripe.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'evil.com/.api.stripe.com', allowed: false, reason: 'Host "evil.com/.api.stripe.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com:443', allowed: false, reason: 'Host "api.stripe.com:443" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'api%2estripe.com', allowed: false, reason: 'Host "api%2estripe.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com\u0000.evil.com', allowed: false, reason: 'Host "api.stripe.com\\u0000.evil.com" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: '', allowed: false, reason: 'Host "" is not a valid host name' },
  { policy: 'seed', method: 'GET', host: '*.okta.com', allowed: false, reason: 'Host "*.okta.com" is not a valid host name' },
  // IDN: a Cyrillic "о" makes a different name; it must not ride on *.okta.com
  { policy: 'seed', method: 'GET', host: 'dev-123.\u043ekta.com', allowed: false, reason: 'Domain dev-123.xn--kta-red.com is not in allowed list' },
  { policy: 'seed', method: 'GET', host: '\u0430pi.stripe.com', allowed: false, reason: 'Domain xn--pi-6kc.stripe.com is not in allowed list' },
  { policy: 'files', method: 'GET', host: 'b\u00fccher.example', allowed: true, reason: 'Domain xn--bcher-kva.example is allowed', rule: 'allowedDomains[8]' },
  { policy: 'files', method: 'GET', host: 'XN--BCHER-KVA.EXAMPLE', allowed: true, reason: 'Domain xn--bcher-kva.example is allowed' },
  // IP literal spellings
  { policy: 'files', method: 'GET', host: '2130706433', allowed: true, reason: 'Domain 127.0.0.1 is allowed', rule: 'allowedDomains[4]' },
  { policy: 'files', method: 'GET', host: '0x7f.1', allowed: true, reason: 'Domain 127.0.0.1 is allowed' },
  { policy: 'files', method: 'GET', host: '0177.0.0.1', allowed: true, reason: 'Domain 127.0.0.1 is allowed' },
  { policy: 'files', method: 'GET', host: '127.1', allowed: true, reason: 'Domain 127.0.0.1 is allowed' },
  { policy: 'files', method: 'GET', host: '[::ffff:7f00:1]', allowed: true, reason: 'Domain 127.0.0.1 is allowed' },
  { policy: 'files', method: 'GET', host: '::ffff:127.0.0.1', allowed: true, reason: 'Domain 127.0.0.1 is allowed' },
  { policy: 'files', method: 'GET', host: '127.0.0.2', allowed: false, reason: 'Domain 127.0.0.2 is not in allowed list' },
  { policy: 'files', method: 'GET', host: 'localhost', allowed: false, reason: 'Domain localhost is not in allowed list' },
  { policy: 'files', method: 'GET', host: '[0:0:0:0:0:0:0:1]', allowed: true, reason: 'Domain [::1] is allowed', rule: 'allowedDomains[5]' },
  { policy: 'files', method: 'GET', host: '::1', allowed: true, reason: 'Domain [::1] is allowed' },
  { policy: 'open', method: 'GET', host: '0xa9fea9fe', allowed: false, reason: 'Domain 169.254.169.254 is blocked by policy', rule: 'blockedDomains[0]' },
  { policy: 'open', method: 'GET', host: '[::ffff:a9fe:a9fe]', allowed: false, reason: 'Domain 169.254.169.254 is blocked by policy' },
  { policy: 'open', method: 'GET', host: '169.254.43518', allowed: false, reason: 'Domain 169.254.169.254 is blocked by policy' },
  { policy: 'open', method: 'GET', host: 'METADATA.google.internal.', allowed: false, reason: 'Domain metadata.google.internal is blocked by policy' },
  // ports
  { policy: 'seed', method: 'GET', host: 'api.stripe.com', port: 8443, allowed: false, reason: 'Port 8443 is not allowed for api.stripe.com', rule: 'allowedDomains[0]' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com', port: 80, allowed: true, reason: 'Domain api.stripe.com is allowed' },
  { policy: 'seed', method: 'GET', host: 'api.stripe.com', port: 0, allowed: false, reason: 'Port 0 is not a valid port' },
  { policy: 'files', method: 'GET', host: 'api.example.com', port: 8443, allowed: true, reason: 'Domain api.example.com is allowed', rule: 'allowedDomains[3]' },
  { policy: 'files', method: 'GET', host: 'api.example.com', port: 443, allowed: false, reason: 'Port 443 is not allowed for api.example.com', rule: 'allowedDomains[3]' },
  { policy: 'open', method: 'GET', host: 'x.example', port: 8080, allowed: true, reason: 'Domain x.example is allowed', rule: 'allowedDomains[1]' },
  { policy: 'open', method: 'GET', host: 'x.example', port: 22, allowed: false, reason: 'Port 22 is not allowed for x.example', rule: 'allowedDomains[0]' },
  // paths: dot segments, encodings, slashes
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/../admin', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[2]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/%2e%2e/admin', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[2]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/.%2E/admin', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/../../../admin', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/./secret/x', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '//public//secret///x', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/%73ecret/x', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/%64ocs/readme.md', allowed: true, reason: 'Path /docs/readme.md is allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public%2fsecret/x', allowed: false, reason: 'Ambiguous path /public%2fsecret/x blocked for files.example.org', rule: FILES },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/..%2Fadmin', allowed: false, reason: 'Ambiguous path /public/..%2Fadmin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public\\..\\admin', allowed: false, reason: 'Ambiguous path /public\\..\\admin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/%5c../admin', allowed: false, reason: 'Ambiguous path /public/%5c../admin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/a%00.md', allowed: false, reason: 'Ambiguous path /public/a%00.md blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/%252e%252e/admin', allowed: false, reason: 'Ambiguous path /public/%252e%252e/admin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/%zz', allowed: false, reason: 'Ambiguous path /public/%zz blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: 'http://files.example.org/public/a', allowed: false, reason: 'Ambiguous path http://files.example.org/public/a blocked for files.example.org' },
  { policy: 'files', method: 'OPTIONS', host: 'files.example.org', path: '*', allowed: false, reason: 'Ambiguous path * blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/a#/../../admin', allowed: false, reason: 'Ambiguous path /public/a#/../../admin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/docs/readme.md?next=/admin&x=%2f', allowed: true, reason: 'Path /docs/readme.md is allowed for files.example.org' },
  // an ambiguous path is fine where the host has no path rules
  { policy: 'files', method: 'GET', host: 'example.com', path: '/a%2fb', allowed: true, reason: 'Domain example.com is allowed' },
  // ;params: cannot dodge a deny, cannot borrow an allow
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/admin;jsessionid=1', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[2]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/..;/admin', allowed: false, reason: 'Ambiguous path /public/..;/admin blocked for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public;x/a', allowed: false, reason: 'No rule allows GET /public;x/a for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/a;v=1', allowed: true, reason: 'Path /public/a;v=1 is allowed for files.example.org' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/secret;x/y', allowed: false, reason: 'Method GET not allowed for files.example.org' },
  // method case and override headers
  { policy: 'seed', method: 'delete', host: 'dev-123.okta.com', path: '/api/v1/users/123', allowed: false, reason: 'Method DELETE not allowed for *.okta.com', rule: OKTA_DENY },
  { policy: 'seed', method: 'DeLeTe', host: 'dev-123.okta.com', allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  { policy: 'files', method: 'get', host: 'files.example.org', path: '/docs/readme.md', allowed: true, reason: 'Path /docs/readme.md is allowed for files.example.org', rule: `${FILES}[3]` },
  { policy: 'seed', method: 'POST', host: 'dev-123.okta.com', path: '/api/v1/users/123', allowed: false, reason: 'No rule allows POST /api/v1/users/123 for *.okta.com', rule: 'apiPathRules["*.okta.com"]' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/api/v1/users/123', headers: { 'x-http-method-override': 'DELETE' }, allowed: false, reason: 'Method DELETE not allowed for *.okta.com', rule: OKTA_DENY },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-http-method': 'delete' }, allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-method-override': ' Delete ' }, allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-http-method-override': ['GET', 'DELETE'] }, allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-http-method-override': 'GET, PUT' }, allowed: false, reason: 'No rule allows PUT /u for *.okta.com' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-http-method-override': 'GET' }, allowed: true, reason: 'Path /u is allowed for *.okta.com' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/docs/readme.md', headers: { 'x-http-method-override': 'PUT' }, allowed: false, reason: 'No rule allows PUT /docs/readme.md for files.example.org' },
  { policy: 'seed', method: 'GET', host: 'dev-123.okta.com', path: '/u', headers: { 'x-http-method-override': 'DEL ETE' }, allowed: false, reason: 'Method "DEL ETE" is not a valid HTTP method' },
];

// The proxy's question before opening a tunnel to a port other than 80/443: CONNECT with an empty path.
const tunnelRows: Row[] = [
  { policy: 'customPort', method: 'CONNECT', host: 'api.example.com', port: 8443, path: '', allowed: true, reason: 'Domain api.example.com is allowed', rule: 'allowedDomains[0]' },
  { policy: 'customPort', method: 'CONNECT', host: 'API.EXAMPLE.COM.', port: 8443, path: '', allowed: true, reason: 'Domain api.example.com is allowed' },
  { policy: 'customPort', method: 'CONNECT', host: 'dev-1.okta.com', port: 9443, path: '', allowed: true, reason: 'Domain dev-1.okta.com is allowed', rule: 'allowedDomains[2]' },
  // override headers on the CONNECT itself mean nothing: there is no request to override yet
  { policy: 'customPort', method: 'CONNECT', host: 'dev-1.okta.com', port: 9443, path: '', headers: { 'x-http-method-override': 'DELETE' }, allowed: true, reason: 'Domain dev-1.okta.com is allowed' },
  // domain and port rules still apply
  { policy: 'customPort', method: 'CONNECT', host: 'api.example.com', port: 22, path: '', allowed: false, reason: 'Port 22 is not allowed for api.example.com', rule: 'allowedDomains[0]' },
  { policy: 'customPort', method: 'CONNECT', host: 'api.example.com', port: 9443, path: '', allowed: false, reason: 'Port 9443 is not allowed for api.example.com' },
  { policy: 'customPort', method: 'CONNECT', host: 'dev-1.okta.com', port: 22, path: '', allowed: false, reason: 'Port 22 is not allowed for dev-1.okta.com', rule: 'allowedDomains[1]' },
  { policy: 'customPort', method: 'CONNECT', host: 'evil.okta.com', port: 9443, path: '', allowed: false, reason: 'Domain evil.okta.com is blocked by policy', rule: 'blockedDomains[0]' },
  { policy: 'customPort', method: 'CONNECT', host: 'other.example', port: 8443, path: '', allowed: false, reason: 'Domain other.example is not in allowed list' },
  { policy: 'customPort', method: 'CONNECT', host: '2130706433', port: 8443, path: '', allowed: false, reason: 'Domain 127.0.0.1 is not in allowed list' },
  { policy: 'seed', method: 'CONNECT', host: 'dev-123.okta.com', port: 8443, path: '', allowed: false, reason: 'Port 8443 is not allowed for dev-123.okta.com' },
  // every request inside the tunnel is decided on its own
  { policy: 'customPort', method: 'GET', host: 'api.example.com', port: 8443, path: '/v1/charges', allowed: true, reason: 'Path /v1/charges is allowed for api.example.com', rule: 'apiPathRules["api.example.com"][0]' },
  { policy: 'customPort', method: 'GET', host: 'api.example.com', port: 8443, path: '/admin', allowed: false, reason: 'No rule allows GET /admin for api.example.com' },
  { policy: 'customPort', method: 'DELETE', host: 'dev-1.okta.com', port: 9443, path: '/api/v1/users/1', allowed: false, reason: 'Method DELETE not allowed for *.okta.com' },
  // only the empty path asks the tunnel question; anything else is a request and meets the path rules
  { policy: 'customPort', method: 'CONNECT', host: 'api.example.com', port: 8443, path: '/v1/x', allowed: false, reason: 'No rule allows CONNECT /v1/x for api.example.com' },
  { policy: 'customPort', method: 'GET', host: 'api.example.com', port: 8443, path: '', allowed: false, reason: 'Ambiguous path  blocked for api.example.com' },
];

const API = 'apiPathRules["api.example.com"]';

// Other spellings of a path a deny rule names: each must still meet the deny, and none may borrow an allow.
const spellingRows: Row[] = [
  { policy: 'githubReadonly', method: 'GET', host: 'api.github.com', path: '/User/repos', allowed: false, reason: 'Method GET not allowed for api.github.com', rule: 'apiPathRules["api.github.com"][2]' },
  { policy: 'githubReadonly', method: 'GET', host: 'api.github.com', path: '/USER/emails/', allowed: false, reason: 'Method GET not allowed for api.github.com', rule: 'apiPathRules["api.github.com"][2]' },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/admin/', allowed: false, reason: 'Method GET not allowed for api.example.com', rule: `${API}[1]` },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/users/%40me', allowed: false, reason: 'Method GET not allowed for api.example.com', rule: `${API}[2]` },
  { policy: 'spellings', method: 'POST', host: 'api.example.com', path: '/v1/projects/p1%3Adelete', allowed: false, reason: 'Method POST not allowed for api.example.com', rule: `${API}[3]` },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/odata/%24metadata', allowed: false, reason: 'Method GET not allowed for api.example.com', rule: `${API}[4]` },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/secret%3B/x', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: `${FILES}[1]` },
  { policy: 'spellings', method: 'GET', host: 'files.example.org', path: '/public/admin%3B/secret', allowed: false, reason: 'Method GET not allowed for files.example.org', rule: 'apiPathRules["files.example.org"][1]' },
  { policy: 'spellings', method: 'GET', host: 'files.example.org', path: '/public/..%3B/admin', allowed: false, reason: 'Ambiguous path /public/..%3B/admin blocked for files.example.org', rule: 'apiPathRules["files.example.org"]' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/public/..%3b/admin', allowed: false, reason: 'Ambiguous path /public/..%3b/admin blocked for files.example.org' },
  { policy: 'spellings', method: 'HEAD', host: 'api.example.com', path: '/reports/q1', allowed: false, reason: 'Method HEAD not allowed for api.example.com', rule: `${API}[6]` },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/odata/Products(1)', allowed: false, reason: 'Method GET not allowed for api.example.com', rule: `${API}[5]` },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/odata/Products%281%29', allowed: false, reason: 'Method GET not allowed for api.example.com', rule: `${API}[5]` },
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/odata/Products1', allowed: true, reason: 'Path /odata/Products1 is allowed for api.example.com', rule: `${API}[0]` },
  // a host marked case-sensitive compares case exactly
  { policy: 'spellings', method: 'GET', host: 'cs.example.com', path: '/Admin/x', allowed: true, reason: 'Path /Admin/x is allowed for cs.example.com' },
  { policy: 'spellings', method: 'GET', host: 'cs.example.com', path: '/admin/x', allowed: false, reason: 'Method GET not allowed for cs.example.com' },
  // the forwarded path keeps the client's spelling; only the matching reads it otherwise
  { policy: 'spellings', method: 'GET', host: 'api.example.com', path: '/Users/me/', allowed: true, reason: 'Path /Users/me/ is allowed for api.example.com' },
  // an allow must cover every reading: case as written, and the trailing slash
  { policy: 'githubReadonly', method: 'GET', host: 'raw.githubusercontent.com', path: '/o/r/main/README.md', allowed: true, reason: 'Path /o/r/main/README.md is allowed for raw.githubusercontent.com' },
  { policy: 'files', method: 'GET', host: 'files.example.org', path: '/Docs/readme.md', allowed: false, reason: 'No rule allows GET /Docs/readme.md for files.example.org' },
  { policy: 'files', method: 'PUT', host: 'files.example.org', path: '/users/42/profile/', allowed: false, reason: 'No rule allows PUT /users/42/profile/ for files.example.org' },
];

describe('decide', () => {
  it.each(seedRows)('seed: $method $host$path → $reason', (row) => {
    const decision = run(row);
    expect({ allowed: decision.allowed, reason: decision.reason }).toEqual({ allowed: row.allowed, reason: row.reason });
    if (row.rule !== undefined) expect(decision.rule).toBe(row.rule);
  });

  it.each(semanticRows)('semantics [$policy]: $method $host$path → $reason', (row) => {
    const decision = run(row);
    expect({ allowed: decision.allowed, reason: decision.reason }).toEqual({ allowed: row.allowed, reason: row.reason });
    if (row.rule !== undefined) expect(decision.rule).toBe(row.rule);
  });

  it('has at least 40 adversarial rows', () => {
    expect(adversarialRows.length).toBeGreaterThanOrEqual(40);
  });

  it.each(adversarialRows)('adversarial [$policy]: $method $host :$port $path → $reason', (row) => {
    const decision = run(row);
    expect({ allowed: decision.allowed, reason: decision.reason }).toEqual({ allowed: row.allowed, reason: row.reason });
    if (row.rule !== undefined) expect(decision.rule).toBe(row.rule);
  });

  it.each(spellingRows)('path spelling [$policy]: $method $host $path → $reason', (row) => {
    const decision = run(row);
    expect({ allowed: decision.allowed, reason: decision.reason }).toEqual({ allowed: row.allowed, reason: row.reason });
    if (row.rule !== undefined) expect(decision.rule).toBe(row.rule);
  });

  it('decides a three-** deny on a 13 KB path', () => {
    const filler = '/orgs/x/members/y'.repeat(800);
    expect(filler.length).toBeGreaterThan(13_000);
    const base = { policy: 'spellings', method: 'GET', host: 'api.example.com', allowed: false, reason: '' } as const;
    expect(run({ ...base, path: `${filler}/delete` })).toMatchObject({ allowed: false, rule: `${API}[7]` });
    expect(run({ ...base, path: `${filler}/keep` })).toMatchObject({ allowed: true, rule: `${API}[0]` });
  });

  it('blocks a path longer than the cap as ambiguous on a host with path rules only', () => {
    const path = `/${'a'.repeat(MAX_RULED_PATH_LENGTH)}?q=1`;
    expect(run({ policy: 'spellings', method: 'GET', host: 'api.example.com', path, allowed: false, reason: '' })).toEqual({
      allowed: false,
      reason: `Ambiguous path blocked for api.example.com: ${MAX_RULED_PATH_LENGTH + 1} characters, longer than the ${MAX_RULED_PATH_LENGTH} judged on a host with path rules`,
      rule: API,
      host: 'api.example.com',
    });
    expect(run({ policy: 'spellings', method: 'GET', host: 'api.example.com', path: `/${'a'.repeat(MAX_RULED_PATH_LENGTH - 1)}`, allowed: true, reason: '' }).allowed).toBe(true);
    expect(run({ policy: 'files', method: 'GET', host: 'example.com', path, allowed: true, reason: '' }).allowed).toBe(true);
  });

  it.each(tunnelRows)('tunnel question [$policy]: $method $host :$port "$path" → $reason', (row) => {
    const decision = run(row);
    expect({ allowed: decision.allowed, reason: decision.reason }).toEqual({ allowed: row.allowed, reason: row.reason });
    if (row.rule !== undefined) expect(decision.rule).toBe(row.rule);
  });

  it('answers the tunnel question without a path', () => {
    const decision = run({ policy: 'customPort', method: 'CONNECT', host: 'api.example.com', port: 8443, path: '', allowed: true, reason: '' });
    expect(decision).toEqual({ allowed: true, reason: 'Domain api.example.com is allowed', rule: 'allowedDomains[0]', host: 'api.example.com' });
  });

  it('reports the canonical host and the checked path', () => {
    const decision = run({ policy: 'files', method: 'GET', host: 'FILES.example.org.', path: '//docs/./x/../%72eadme.md?q', allowed: true, reason: '' });
    expect(decision).toMatchObject({ allowed: true, host: 'files.example.org', path: '/docs/readme.md' });
    expect(run({ policy: 'seed', method: 'GET', host: 'a@b', allowed: false, reason: '' }).host).toBeNull();
  });
});

describe('createDecider', () => {
  it('binds a compiled policy, or compiles a plain one once', () => {
    const request: EgressRequest = { method: 'DELETE', host: 'dev-123.okta.com', port: 443, scheme: 'https', path: '/api/v1/users/123', headers: {} };
    expect(createDecider(policies.seed)(request).reason).toBe('Method DELETE not allowed for *.okta.com');
    const plain: Policy = { ...DEFAULT_POLICY, blockedDomains: [], allowedDomains: ['dev-123.okta.com'] };
    expect(createDecider(plain)(request)).toMatchObject({ allowed: true, rule: 'allowedDomains[0]' });
  });
});

describe('compilePolicy', () => {
  it('refuses a hand-built policy with bad patterns, naming each', () => {
    const bad: Policy = { ...DEFAULT_POLICY, allowedDomains: ['api.*.com'], apiPathRules: { 'x.com': [{ method: 'GET', path: 'nope', allow: true }] } };
    expect(() => compilePolicy(bad)).toThrow(PolicyValidationError);
    try {
      compilePolicy(bad);
    } catch (error) {
      const problems = (error as PolicyValidationError).problems.join('\n');
      expect(problems).toContain('allowedDomains[0]: "api.*.com"');
      expect(problems).toContain('apiPathRules["x.com"][0].path: path pattern "nope" must start with "/"');
      expect((error as PolicyValidationError).code).toBe('ERR_POLICY_INVALID');
    }
  });
});

describe('webSocketDomains', () => {
  const decideFor = createDecider(policyFromApi({ allowedDomains: ['*.example.com'], webSocketDomains: ['ws.example.com'] }));
  const upgrade = { connection: 'Upgrade', upgrade: 'websocket' };
  it.each([
    ['ws.example.com', upgrade, true, 'Domain ws.example.com is allowed'],
    ['api.example.com', upgrade, false, 'WebSocket upgrades to api.example.com are not allowed: the host is not in webSocketDomains'],
    ['api.example.com', { connection: 'keep-alive, Upgrade', upgrade: 'h2c' }, false, 'WebSocket upgrades to api.example.com are not allowed: the host is not in webSocketDomains'],
    // Without Connection: Upgrade the header is hop-by-hop noise and upgrades nothing.
    ['api.example.com', { upgrade: 'websocket' }, true, 'Domain api.example.com is allowed'],
  ])('%s %j → %s', (host, headers, allowed, reason) => {
    expect(decideFor({ method: 'GET', host, port: 443, scheme: 'https', path: '/chat', headers })).toMatchObject({ allowed, reason });
  });

  it('opts no host in by default', () => {
    const none = createDecider(policyFromApi({ allowedDomains: ['*'] }));
    expect(none({ method: 'GET', host: 'ws.example.com', port: 443, scheme: 'https', path: '/', headers: upgrade })).toMatchObject({ allowed: false, rule: 'webSocketDomains' });
  });
});

describe('method overrides in other spellings', () => {
  const decideFor = createDecider(policyFromApi({ allowedDomains: ['api.example.com'], apiPathRules: { 'api.example.com': [{ path: '/**', allow: true }, { path: '/items/**', allow: false, method: 'DELETE' }] } }));
  const ask = (path: string, headers: Record<string, string> = {}, formMethods?: string[]) =>
    decideFor({ method: 'POST', host: 'api.example.com', port: 443, scheme: 'https', path, headers, ...(formMethods === undefined ? {} : { formMethods }) });
  it.each([
    ['x_http_method_override header', ask('/items/1', { x_http_method_override: 'DELETE' })],
    ['X_Method_Override header', ask('/items/1', { x_method_override: 'delete' })],
    ['_method query', ask('/items/1?_method=DELETE')],
    ['encoded _method query', ask('/items/1?a=1&%5Fmethod=De%6Cete')],
    ['form _method', ask('/items/1', {}, ['DELETE'])],
  ])('%s is checked as the method', (_case, decision) => {
    expect(decision).toMatchObject({ allowed: false, reason: 'Method DELETE not allowed for api.example.com' });
  });

  it('leaves other query parameters and allowed overrides alone', () => {
    expect(ask('/items/1?method=DELETE&x_method=DELETE')).toMatchObject({ allowed: true });
    expect(ask('/items/1?_method=PATCH', {}, ['PUT'])).toMatchObject({ allowed: true });
  });
});
