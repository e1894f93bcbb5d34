/**
 * Secret substitution in a request's head: the target (path and query) and
 * the headers. Runs after the policy allowed the request, never instead of
 * it. A placeholder toward a host its secret is not bound to, in a place its
 * `in` does not allow, in the path or in a host name refuses the whole
 * request: nothing of it may be forwarded.
 */
import { PLACEHOLDER_PREFIX, canonicalHost } from '../../policies/index.ts';
import type { BoundSecret, SecretBinding, SecretPlace } from '../../policies/index.ts';
import { misplacedSecret } from './refusal.ts';
import type { RequestPlace, SecretRefusal } from './refusal.ts';

/** A request head as the proxy will forward it. */
export interface RequestHead {
  /** Destination host (the CONNECT target inside a tunnel); raw or canonical. */
  host: string;
  port: number;
  /** Origin-form target: path and query, exactly as it will be forwarded. */
  target: string;
  /** Header pairs in order, as Node's rawHeaders gives them (values are latin1 views of the bytes). */
  headers: ReadonlyArray<readonly [string, string]>;
}

export type HeadSubstitution =
  | { ok: true; target: string; headers: Array<[string, string]>; used: string[] }
  | { ok: false; refusal: SecretRefusal };

/** Headers the proxy consumes itself and never forwards: neither searched nor rewritten. */
const HOP_HEADERS_NOT_FORWARDED = new Set(['proxy-authorization']);

/** Every secret whose placeholder occurs in `text` (case-insensitive with `anyCase`, for host names). */
export function placeholdersIn(binding: SecretBinding, text: string, anyCase = false): BoundSecret[] {
  const haystack = anyCase ? text.toLowerCase() : text;
  if (!haystack.includes(PLACEHOLDER_PREFIX)) return [];
  return binding.secrets.filter((secret) => haystack.includes(anyCase ? secret.placeholder.toLowerCase() : secret.placeholder));
}

/** A CONNECT target or request host carrying a placeholder: always refused. */
export function checkHostForPlaceholders(binding: SecretBinding, host: string): SecretRefusal | null {
  const [found] = placeholdersIn(binding, host, true);
  return found === undefined ? null : misplacedSecret(found.name, displayHost(host), 'host');
}

function displayHost(host: string): string {
  return canonicalHost(host) ?? host;
}

/** Latin1 view of the value's UTF-8 bytes: what a header value is in Node. */
const headerForm = (value: string): string => Buffer.from(value, 'utf8').toString('latin1');

class Substituter {
  readonly used = new Set<string>();
  refusal: SecretRefusal | null = null;
  readonly #canonical: string | null;

  constructor(
    private readonly binding: SecretBinding,
    private readonly host: string,
    private readonly port: number,
  ) {
    this.#canonical = canonicalHost(host);
  }

  /** Replaces each placeholder in `text` with `encode(value)`, or records the refusal and returns null. */
  substitute(text: string, place: SecretPlace, encode: (value: string) => string, detail?: string): string | null {
    let out = text;
    for (const secret of placeholdersIn(this.binding, text)) {
      const problem = this.check(secret, place, detail);
      if (problem !== null) {
        this.refusal = problem;
        return null;
      }
      out = out.split(secret.placeholder).join(encode(secret.value));
      this.used.add(secret.name);
    }
    return out;
  }

  check(secret: BoundSecret, place: RequestPlace, detail?: string): SecretRefusal | null {
    const host = this.#canonical ?? this.host;
    if (this.#canonical === null || !secret.allowsCanonicalHost(this.#canonical, this.port)) return misplacedSecret(secret.name, host, null);
    if (place === 'header' || place === 'query' || place === 'body') {
      return secret.allowsPlace(place) ? null : misplacedSecret(secret.name, host, place, detail);
    }
    return misplacedSecret(secret.name, host, place, detail);
  }
}

/**
 * Substitutes secrets into the target's query and the header values
 * (`Authorization: Basic` decoded, substituted and re-encoded), or refuses.
 * The body is handled by `createBodySubstitution`.
 */
export function substituteRequestHead(binding: SecretBinding, head: RequestHead): HeadSubstitution {
  if (binding.size === 0) return { ok: true, target: head.target, headers: head.headers.map(([n, v]) => [n, v]), used: [] };
  const substituter = new Substituter(binding, head.host, head.port);
  const refuse = (refusal: SecretRefusal): HeadSubstitution => ({ ok: false, refusal });

  const hostRefusal = checkHostForPlaceholders(binding, head.host);
  if (hostRefusal !== null) return refuse(hostRefusal);

  const queryAt = head.target.indexOf('?');
  const path = queryAt === -1 ? head.target : head.target.slice(0, queryAt);
  const [inPath] = placeholdersIn(binding, path);
  if (inPath !== undefined) return refuse(substituter.check(inPath, 'path') ?? misplacedSecret(inPath.name, displayHost(head.host), 'path'));
  let target = head.target;
  if (queryAt !== -1) {
    const query = substituter.substitute(head.target.slice(queryAt + 1), 'query', encodeURIComponent);
    if (query === null) return refuse(substituter.refusal ?? misplacedSecret('?', head.host, 'query'));
    target = `${path}?${query}`;
  }

  const headers: Array<[string, string]> = [];
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (HOP_HEADERS_NOT_FORWARDED.has(lower)) {
      headers.push([name, value]);
      continue;
    }
    const [inName] = placeholdersIn(binding, name, true);
    if (inName !== undefined) return refuse(substituter.check(inName, 'header-name') ?? misplacedSecret(inName.name, head.host, 'header-name'));
    let rewritten = lower === 'authorization' ? substituteBasicAuth(substituter, value) : value;
    if (rewritten === null) return refuse(substituter.refusal ?? misplacedSecret('?', head.host, 'header'));
    rewritten = substituter.substitute(rewritten, 'header', headerForm, name.toLowerCase());
    if (rewritten === null) return refuse(substituter.refusal ?? misplacedSecret('?', head.host, 'header'));
    headers.push([name, rewritten]);
  }
  return { ok: true, target, headers, used: [...substituter.used] };
}

const BASIC = /^(\s*basic\s+)([A-Za-z0-9+/]+={0,2})(\s*)$/i;

/** `Basic base64(user:placeholder)` → `Basic base64(user:value)`; other values are returned as they are. */
function substituteBasicAuth(substituter: Substituter, value: string): string | null {
  const match = BASIC.exec(value);
  if (match === null) return value;
  const decoded = Buffer.from(match[2] ?? '', 'base64').toString('latin1');
  const substituted = substituter.substitute(decoded, 'header', headerForm, 'authorization');
  if (substituted === null) return null;
  if (substituted === decoded) return value;
  return `${match[1] ?? ''}${Buffer.from(substituted, 'latin1').toString('base64')}${match[3] ?? ''}`;
}
