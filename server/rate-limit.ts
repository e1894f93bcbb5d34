/**
 * Per-caller rate limits on /execute (DESIGN §8): a fixed window per JWT
 * subject, and per client IP for anonymous callers (IPv6 callers by /56, so
 * one host cannot dodge the limit by rotating addresses). Over the limit the
 * answer is 429 with `Retry-After`; every answer carries the IETF draft's
 * `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
 * `RateLimit-Policy` headers. Counters live in this process.
 */
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { ApiError } from './errors.ts';

export interface RateLimitOptions {
  windowMs: number;
  /** Requests per window per subject; 0 turns the limit off. */
  subjectMax: number;
  /** Requests per window per anonymous client address; 0 turns the limit off. */
  ipMax: number;
  /** The verified subject of the request, known by the time the limiter runs. */
  subjectOf: (req: Request, res: Response) => string | undefined;
}

export const RATE_LIMITED = 'RATE_LIMITED';

export function executeRateLimit(options: RateLimitOptions): RequestHandler {
  const maxFor = (req: Request, res: Response): number => (options.subjectOf(req, res) === undefined ? options.ipMax : options.subjectMax);
  return rateLimit({
    windowMs: options.windowMs,
    limit: maxFor,
    skip: (req, res) => maxFor(req, res) === 0,
    // Subjects and addresses are separate namespaces: a subject named like an address shares nothing with it.
    keyGenerator: (req, res) => {
      const subject = options.subjectOf(req, res);
      return subject === undefined ? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}` : `sub:${subject}`;
    },
    standardHeaders: 'draft-6',
    legacyHeaders: false,
    // The refusal goes through the one error handler, so it is logged, shaped and (when asked) encrypted like any other.
    handler: (req, res, next) => {
      const retryAfter = res.getHeader('Retry-After');
      const who = options.subjectOf(req, res) === undefined ? 'this address' : 'this subject';
      next(new ApiError(429, RATE_LIMITED, `Too many executions for ${who}; retry after ${String(retryAfter)} s`, undefined, {
        'Retry-After': String(retryAfter ?? Math.ceil(options.windowMs / 1000)),
      }));
    },
  });
}

const addressKey = (req: Request): string => ipKeyGenerator(req.ip ?? 'unknown');

/**
 * The first thing a request meets: a counter per client address, before its
 * token is verified, its body read or its policy looked up, so a flood costs
 * us one map lookup per request. Its limit is well above what one honest
 * client sends; the per-subject and per-address limits above do the fine
 * work. No RateLimit-* headers of its own: those describe the finer limit.
 */
export function addressRateLimit(options: { windowMs: number; max: number }): RequestHandler {
  return rateLimit({
    windowMs: options.windowMs,
    limit: options.max,
    skip: () => options.max === 0,
    keyGenerator: (req) => `addr:${addressKey(req)}`,
    standardHeaders: false,
    legacyHeaders: false,
    handler: (req, _res, next) => {
      const resetsAt = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime?.getTime() ?? Date.now() + options.windowMs;
      const retryAfter = Math.max(1, Math.ceil((resetsAt - Date.now()) / 1000));
      next(new ApiError(429, RATE_LIMITED, `Too many requests from this address; retry after ${retryAfter} s`, undefined, { 'Retry-After': String(retryAfter) }));
    },
  });
}

export const AUTH_FAILURES_LIMITED = 'AUTH_FAILURES_LIMITED';

/**
 * Refused tokens (401 answers) counted per client address in fixed windows.
 * Past the limit the address is refused (429) before its next token is even
 * verified: guessing tokens or keys costs the guesser, not us.
 */
export function authFailureLimit(options: { windowMs: number; max: number }): RequestHandler {
  const windows = new Map<string, { count: number; resetsAt: number }>();
  const current = (key: string, now: number) => {
    const window = windows.get(key);
    if (window !== undefined && window.resetsAt > now) return window;
    // Expired windows go as they are met, and all of them now and then, so the map stays as small as the set of recent offenders.
    if (windows.size > 10_000) for (const [k, w] of windows) if (w.resetsAt <= now) windows.delete(k);
    const fresh = { count: 0, resetsAt: now + options.windowMs };
    windows.set(key, fresh);
    return fresh;
  };
  return (req, res, next) => {
    if (options.max === 0) {
      next();
      return;
    }
    const key = addressKey(req);
    const now = Date.now();
    const window = current(key, now);
    if (window.count >= options.max) {
      const retryAfter = Math.max(1, Math.ceil((window.resetsAt - now) / 1000));
      next(new ApiError(429, AUTH_FAILURES_LIMITED, `Too many refused tokens from this address; retry after ${retryAfter} s`, undefined, { 'Retry-After': String(retryAfter) }));
      return;
    }
    res.once('finish', () => {
      if (res.statusCode === 401) current(key, Date.now()).count += 1;
    });
    next();
  };
}
