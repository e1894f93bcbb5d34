/**
 * Environment of the standalone egress proxy service (`npm run egress-proxy`,
 * the compose `egress-proxy` service). The variables it shares with the API
 * (DATA_DIR, EGRESS_HOST_MAP, EGRESS_UPSTREAM_CA, EGRESS_LOG_LIMIT) mean the
 * same thing in both. Every bad one is named at once.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { MIN_CONTROL_SECRET_LENGTH } from './control-protocol.ts';
import { EGRESS_SETTINGS_SHAPE } from './settings.ts';

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const EgressServiceConfigSchema = z
  .object({
    EGRESS_CONTROL_PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('control API port'),
    EGRESS_CONTROL_HOST: z.string().min(1).default('127.0.0.1').describe('control API address (0.0.0.0 in a container)'),
    EGRESS_CONTROL_SECRET: z
      .string({ error: 'is required' })
      .min(MIN_CONTROL_SECRET_LENGTH, `must be at least ${MIN_CONTROL_SECRET_LENGTH} characters`)
      .describe('shared secret the API presents as a bearer token'),
    DATA_DIR: z.string().min(1).default('./.data').describe('where the CA lives (`ca/`); keep it private to the proxy'),
    EGRESS_SANDBOXES_DIR: optionalText.describe('the directory shared with the API where sandbox sockets live (default DATA_DIR/sandboxes)'),
    ...EGRESS_SETTINGS_SHAPE,
    EGRESS_SESSION_MAX_MS: positiveInt(15 * 60_000).describe('a session the API never closes is closed after this long'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('log level'),
  })
  .transform((c) => {
    const dataDir = resolve(c.DATA_DIR);
    return { ...c, DATA_DIR: dataDir, EGRESS_SANDBOXES_DIR: resolve(c.EGRESS_SANDBOXES_DIR ?? resolve(dataDir, 'sandboxes')) };
  });

export type EgressServiceConfig = z.infer<typeof EgressServiceConfigSchema>;

export class EgressServiceConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'EgressServiceConfigError';
  }
}

export function loadEgressServiceConfig(env: NodeJS.ProcessEnv = process.env): EgressServiceConfig {
  const parsed = EgressServiceConfigSchema.safeParse(env);
  if (!parsed.success) {
    throw new EgressServiceConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return parsed.data;
}
