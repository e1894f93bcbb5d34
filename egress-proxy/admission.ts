/**
 * Everything between "this request goes to dest/path" and "connect to this
 * address": framing, the policy, the address guard. The proxy decides
 * nothing itself: it asks `decide`, fails closed when the policy throws or
 * answers about another host, and only then resolves and checks the address.
 */
import type { IncomingMessage } from 'node:http';
import type { EgressRequest } from '../policies/index.ts';
import { dialTargetFor, dialTargetViaProxy } from './dial-target.ts';
import type { DialTarget } from './dial-target.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import type { Exchange } from './exchange.ts';
import type { ResponseCapture } from './forward.ts';
import { checkFraming } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { decodeBody } from './response-body.ts';
import { upstreamPath } from './route.ts';
import type { ProxyRuntime } from './runtime.ts';
import type { EgressSessionInfo } from './types.ts';

export type Verdict = { rule: string; reason: string; path?: string; learn?: boolean; wouldBlock?: boolean } | { refusal: Refusal; rule: string };

export type Admitted = { target: DialTarget; path: string; capture?: ResponseCapture };
export type Admission = Admitted | { refusal: Refusal } | { unreachable: string };

export class Admissions<TContext> {
  readonly #rt: ProxyRuntime<TContext>;
  readonly #info: EgressSessionInfo<TContext>;

  constructor(rt: ProxyRuntime<TContext>, info: EgressSessionInfo<TContext>) {
    this.#rt = rt;
    this.#info = info;
  }

  /** Returns where to dial, or why not. Records on `ex` which rule decided and the policy's reason. */
  async admit(req: IncomingMessage, dest: Destination, pathPart: string, ex: Exchange): Promise<Admission> {
    const framing = checkFraming(req);
    if (framing !== null) return { refusal: framing };

    const request: EgressRequest = { method: req.method ?? '', host: dest.rawHost, port: dest.port, scheme: dest.scheme, path: pathPart, headers: req.headers };
    const verdict = await this.decide(request, dest);
    ex.rule = verdict.rule;
    if ('refusal' in verdict) return verdict;
    ex.policyReason = verdict.reason;
    if (verdict.wouldBlock === true) ex.wouldBlock = true;
    const sendPath = upstreamPath(request.path, verdict.path);
    if (sendPath === null) return { refusal: refusal(403, 'policy-error', 'Policy returned an unusable path') };
    const dial = this.#rt.upstreamProxy === undefined ? await dialTargetFor(dest, this.#rt.hostMap) : await dialTargetViaProxy(dest, this.#rt.hostMap);
    if (!('target' in dial)) return dial;
    const capture = verdict.learn === true ? this.#captureFor(request) : undefined;
    return { ...dial, path: sendPath, ...(capture === undefined ? {} : { capture }) };
  }

  /** Asks the policy; a throwing policy or one that decided about another host fails closed. */
  async decide(request: EgressRequest, dest: Destination): Promise<Verdict> {
    try {
      const decision = await this.#rt.decide(request, this.#info);
      if (!decision.allowed) return { refusal: refusal(403, 'policy', decision.reason), rule: decision.rule };
      if (decision.host !== null && decision.host !== dest.host) {
        return { refusal: refusal(403, 'policy-error', `Policy decided on host ${decision.host}, request is for ${dest.host}`), rule: decision.rule };
      }
      return {
        rule: decision.rule,
        reason: decision.reason,
        ...(decision.path === undefined ? {} : { path: decision.path }),
        ...(decision.learn === true ? { learn: true } : {}),
        ...(decision.wouldBlock === true ? { wouldBlock: true } : {}),
      };
    } catch (err) {
      this.#rt.logger.error({ executionId: this.#info.executionId, err }, 'egress decide failed');
      return { refusal: refusal(403, 'policy-error', 'Policy evaluation failed'), rule: 'error' };
    }
  }

  /** The policy asked to read this response (registry metadata) before the client does. */
  #captureFor(request: EgressRequest): ResponseCapture | undefined {
    const learn = this.#rt.learn;
    if (learn === undefined || request.method.toUpperCase() === 'HEAD') return undefined;
    const maxBytes = this.#rt.learnMaxBytes;
    const executionId = this.#info.executionId;
    return {
      maxBytes,
      onBody: async (statusCode, headers, raw) => {
        const body = decodeBody(raw, headers['content-encoding'], maxBytes);
        if (body === null) {
          this.#rt.logger.warn({ executionId, host: request.host, path: request.path }, 'egress could not decode a response the policy asked to read');
          return;
        }
        try {
          await learn(request, { statusCode, contentType: headers['content-type'], body }, this.#info);
        } catch (err) {
          this.#rt.logger.error({ executionId, err }, 'egress learn failed');
        }
      },
    };
  }
}
