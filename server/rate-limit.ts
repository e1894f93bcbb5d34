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
