/**
 * Configuration from the environment, for every service this repository
 * starts: one schema per service, parsed at start-up, and every bad variable
 * named at once in one ConfigError, so an operator fixes them in one go
 * instead of one restart per mistake.
 */
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The environment read through `schema`; a ConfigError lists every `VARIABLE: problem`. */
export function loadEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || '(env)'}: ${issue.message}`));
  }
  return parsed.data;
}

/** A whole number above zero, `fallback` when unset. */
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** A TCP port (0 lets the system pick), `fallback` when unset. */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** Trimmed text; unset and blank both read as undefined, so `VAR=` in a compose file means "not set". */
export const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('log level');
