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
import { CaptureBudget } from './capture-budget.ts';
import type { ResponseCapture } from './forward.ts';
import { formMethodsOf, isUrlencodedForm, peekBody } from './form-method.ts';
import { checkFraming } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { decodeBody } from './response-body.ts';
import { upstreamPath } from './route.ts';
import type { ProxyRuntime } from './proxy-runtime.ts';
import type { EgressSessionInfo } from './types.ts';

export type Verdict = { rule: string; reason: string; path?: string; learn?: boolean; learnTail?: number; wouldBlock?: boolean } | { refusal: Refusal; rule: string };

export type Admitted = { target: DialTarget; path: string; capture?: ResponseCapture };
export type Admission = Admitted | { refusal: Refusal } | { unreachable: string };

export class Admissions<TContext> {
  readonly #rt: ProxyRuntime<TContext>;
  readonly #info: EgressSessionInfo<TContext>;
  readonly #captures: CaptureBudget;

  constructor(rt: ProxyRuntime<TContext>, info: EgressSessionInfo<TContext>) {
    this.#rt = rt;
    this.#info = info;
    this.#captures = new CaptureBudget(rt.captureLimits, rt.captures);
  }

  /**
   * Returns where to dial, or why not. Records on `ex` which rule decided and
   * the policy's reason. `allowBody` lets the client send its body (answers
   * `Expect: 100-continue`): called only once the request line and headers
   * passed, before a small form body is read for its `_method`.
   */
  async admit(req: IncomingMessage, dest: Destination, pathPart: string, ex: Exchange, allowBody?: () => void): Promise<Admission> {
    const framing = checkFraming(req);
    if (framing !== null) return { refusal: framing };

    const request: EgressRequest = { method: req.method ?? '', host: dest.rawHost, port: dest.port, scheme: dest.scheme, path: pathPart, headers: req.headers };
    const verdict = await this.decide(request, dest);
    ex.rule = verdict.rule;
    if ('refusal' in verdict) return verdict;
    const formVerdict = allowBody === undefined ? null : await this.#decideFormMethods(req, request, dest, allowBody);
    if (formVerdict !== null) {
      ex.rule = formVerdict.rule;
      if ('refusal' in formVerdict) return formVerdict;
    }
    ex.policyReason = verdict.reason;
    if (verdict.wouldBlock === true) ex.wouldBlock = true;
    const sendPath = upstreamPath(request.path, verdict.path);
    if (sendPath === null) return { refusal: refusal(403, 'policy-error', 'Policy returned an unusable path') };
    const dial = this.#rt.upstreamProxy === undefined ? await dialTargetFor(dest, this.#rt.hostMap, this.#rt.addressGuard) : await dialTargetViaProxy(dest, this.#rt.hostMap, this.#rt.addressGuard);
    if (!('target' in dial)) return dial;
    const capture = verdict.learn === true ? this.#captureFor(request, verdict.learnTail) : undefined;
    return { ...dial, path: sendPath, ...(capture === undefined ? {} : { capture }) };
  }

  /** A small urlencoded form carrying `_method` asks for that method too: the policy is asked again, with it. */
  async #decideFormMethods(req: IncomingMessage, request: EgressRequest, dest: Destination, allowBody: () => void): Promise<Verdict | null> {
    if (!isUrlencodedForm(req)) return null;
    allowBody();
    const body = await peekBody(req);
    const formMethods = body === null ? [] : formMethodsOf(body);
    if (formMethods.length === 0) return null;
    return this.decide({ ...request, formMethods }, dest);
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
        ...(decision.learn === true && decision.learnTail !== undefined ? { learnTail: decision.learnTail } : {}),
        ...(decision.wouldBlock === true ? { wouldBlock: true } : {}),
      };
    } catch (err) {
      this.#rt.logger.error({ executionId: this.#info.executionId, err }, 'egress decide failed');
      return { refusal: refusal(403, 'policy-error', 'Policy evaluation failed'), rule: 'error' };
    }
  }

  /** The policy asked to read this response (registry metadata) before the client does. */
  #captureFor(request: EgressRequest, tailBytes: number | undefined): ResponseCapture | undefined {
    const learn = this.#rt.learn;
    if (learn === undefined || request.method.toUpperCase() === 'HEAD') return undefined;
    const maxBytes = this.#rt.learnMaxBytes;
    const executionId = this.#info.executionId;
    return {
      maxBytes,
      ...(tailBytes === undefined ? {} : { tailBytes }),
      budget: this.#captures,
      onBody: async (statusCode, headers, raw, bodyOffset) => {
        // A tail cannot be decoded without what came before it: only an identity-coded one is read.
        const body = bodyOffset > 0 && headers['content-encoding'] !== undefined ? null : await decodeBody(raw, headers['content-encoding'], maxBytes);
        if (body === null) {
          this.#rt.logger.warn({ executionId, host: request.host, path: request.path }, 'egress could not decode a response the policy asked to read');
          return;
        }
        try {
          await learn(request, { statusCode, contentType: headers['content-type'], body, ...(bodyOffset === 0 ? {} : { bodyOffset }) }, this.#info);
        } catch (err) {
          this.#rt.logger.error({ executionId, err }, 'egress learn failed');
        }
      },
    };
  }
}
