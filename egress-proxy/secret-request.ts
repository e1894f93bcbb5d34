/**
 * The secrets' part of one relayed request, applied after the policy allowed
 * it (never instead of it): the head substituted or the request refused, the
 * body streamed through the substitution, and the response scrubbed of every
 * value before the sandbox sees it. An upgrade request is never substituted:
 * after the upgrade nothing on the connection is inspected, so a placeholder
 * in one is refused.
 */
import type http from 'node:http';
import type { SecretBinding } from '../policies/index.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import type { RequestRewrite, ResponseTreatment } from './forward.ts';
import { forwardableHeaders } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { bodyNeedsSubstitution, chunkedBodyHeaders, createBodySubstitution, misplacedSecret, planResponseScrub, scrubHeaders, substituteRequestHead } from './secrets/index.ts';
import type { SecretRefusal } from './secrets/index.ts';

export type SecretPreparation = { refusal: Refusal } | { rewrite: RequestRewrite | undefined; path: string };

const asRefusal = (r: SecretRefusal): Refusal => refusal(403, r.code, r.reason);

const pairsOf = (flat: readonly string[]): Array<[string, string]> => {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i] ?? '', flat[i + 1] ?? '']);
  return pairs;
};

const hasBody = (req: http.IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

/**
 * How this request goes out under the execution's secrets. `onUsed` hears
 * the names substituted (the head's at once, the body's when it ended).
 */
export function prepareSecrets(
  binding: SecretBinding,
  req: http.IncomingMessage,
  dest: Destination,
  path: string,
  upgrade: boolean,
  onUsed: (names: readonly string[]) => void,
): SecretPreparation {
  if (binding.size === 0) return { rewrite: undefined, path };
  const head = substituteRequestHead(binding, { host: dest.host, port: dest.port, target: path, headers: pairsOf(forwardableHeaders(req.rawHeaders)) });
  if (!head.ok) return { refusal: asRefusal(head.refusal) };
  if (upgrade) {
    const [name] = head.used;
    if (name !== undefined) return { refusal: asRefusal(misplacedSecret(name, dest.host, null, 'a connection upgrade is never substituted')) };
    return { rewrite: undefined, path };
  }
  const used = new Set(head.used);
  onUsed([...used]);

  let headers = head.headers;
  const context = { host: dest.host, port: dest.port, contentType: req.headers['content-type'], contentEncoding: req.headers['content-encoding'] };
  const body = hasBody(req) && bodyNeedsSubstitution(binding, context) ? createBodySubstitution(binding, context) : undefined;
  if (body !== undefined) {
    headers = chunkedBodyHeaders(headers);
    body.once('end', () => {
      for (const name of body.used) used.add(name);
      onUsed([...used]);
    });
  } else if (req.headers['transfer-encoding'] !== undefined) {
    headers.push(['Transfer-Encoding', 'chunked']);
  }

  const response = (ures: http.IncomingMessage): ResponseTreatment => {
    const plan = planResponseScrub(binding, { host: dest.host, port: dest.port, contentEncoding: ures.headers['content-encoding'], carriedSecret: used.size > 0 });
    if (plan.kind === 'pass') return { kind: 'pass' };
    if (plan.kind === 'refuse') return { kind: 'refuse', refusal: refusal(403, plan.refusal.code, plan.refusal.reason), status: plan.refusal.status };
    const drop = new Set(plan.dropHeaders);
    const kept = pairsOf(forwardableHeaders(ures.rawHeaders)).filter(([name]) => !drop.has(name.toLowerCase()));
    return { kind: 'rewrite', headers: scrubHeaders(binding, kept).flat(), transforms: plan.createTransforms() };
  };

  return { rewrite: { headers: headers.flat(), ...(body === undefined ? {} : { body }), response }, path: head.target };
}
