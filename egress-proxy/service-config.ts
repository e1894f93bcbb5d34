/**
 * Environment of the standalone egress proxy service (`npm run egress-proxy`,
 * the compose `egress-proxy` service). The variables it shares with the API
 * (DATA_DIR, EGRESS_HOST_MAP, EGRESS_UPSTREAM_CA, EGRESS_DENY_CIDRS, EGRESS_LOG_LIMIT) mean the
 * same thing in both. Every bad one is named at once.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { loadEnv, logLevel, optionalText, port, positiveInt } from '../service-kit/index.ts';
import { MIN_CONTROL_SECRET_LENGTH } from './control-protocol.ts';
import { EGRESS_SETTINGS_SHAPE } from './settings.ts';


export const EgressServiceConfigSchema = z
  .object({
    EGRESS_CONTROL_PORT: port(8080).describe('control API port'),
    EGRESS_CONTROL_HOST: z.string().min(1).default('127.0.0.1').describe('control API address (0.0.0.0 in a container)'),
    EGRESS_CONTROL_SECRET: z
      .string({ error: 'is required' })
      .min(MIN_CONTROL_SECRET_LENGTH, `must be at least ${MIN_CONTROL_SECRET_LENGTH} characters`)
      .describe('shared secret the API presents as a bearer token'),
    DATA_DIR: z.string().min(1).default('./.data').describe('where the CA lives (`ca/`); keep it private to the proxy'),
    EGRESS_SANDBOXES_DIR: optionalText.describe('the directory shared with the API where sandbox sockets live (default DATA_DIR/sandboxes)'),
    ...EGRESS_SETTINGS_SHAPE,
    EGRESS_SESSION_MAX_MS: positiveInt(15 * 60_000).describe('a session the API never closes is closed after this long'),
    LOG_LEVEL: logLevel,
  })
  .transform((c) => {
    const dataDir = resolve(c.DATA_DIR);
    return { ...c, DATA_DIR: dataDir, EGRESS_SANDBOXES_DIR: resolve(c.EGRESS_SANDBOXES_DIR ?? resolve(dataDir, 'sandboxes')) };
  });

export type EgressServiceConfig = z.infer<typeof EgressServiceConfigSchema>;

/** Throws the shared ConfigError, naming every bad variable. */
export function loadEgressServiceConfig(env: NodeJS.ProcessEnv = process.env): EgressServiceConfig {
  return loadEnv(EgressServiceConfigSchema, env);
}
