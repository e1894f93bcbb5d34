/**
 * The proxy's settings from the environment, shared by the API (which runs
 * the proxy in-process by default) and the standalone proxy service, so the
 * same variable means the same thing and is checked the same way in both;
 * createPolicyEgressProxy (index.ts) builds the same proxy from them.
 */
import { z } from 'zod';
import { canonicalHost, DEFAULT_REGISTRY_HOSTS } from '../policies/index.ts';
import { optionalText } from '../service-kit/index.ts';
import { parseCidr } from './address-guard.ts';
import { parseUpstreamProxy } from './upstream-proxy.ts';

/** Comma-separated host names, each canonicalised; a bad one is named. */
function hostList(fallback: readonly string[]) {
  return z
    .string()
    .default(fallback.join(','))
    .transform((value, ctx) => {
      const hosts = value.split(',').map((h) => h.trim()).filter((h) => h !== '');
      if (hosts.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one host name' });
      return hosts.flatMap((h) => {
        const host = canonicalHost(h);
        if (host === null) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(h)} is not a host name` });
        return host === null ? [] : [host];
      });
    });
}

/** Spread into a service's env schema. */
export const EGRESS_SETTINGS_SHAPE = {
  EGRESS_HOST_MAP: optionalText.describe('operator host mapping host[:port]=address:port, comma-separated'),
  EGRESS_UPSTREAM_CA: optionalText.describe('path of extra PEM certificates trusted for upstream TLS'),
  EGRESS_UPSTREAM_PROXY: optionalText
    .superRefine((value, ctx) => {
      if (value === undefined) return;
      try {
        parseUpstreamProxy(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
      }
    })
    .describe("the operator's upstream proxy, http://[user:pass@]host:port: allowed traffic to hosts not in EGRESS_HOST_MAP leaves through it"),
  EGRESS_DENY_CIDRS: optionalText
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const ranges = value.split(',').map((c) => c.trim()).filter((c) => c !== '');
      for (const range of ranges) {
        const parsed = parseCidr(range);
        if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
      }
      return ranges;
    })
    .describe("the operator's own address ranges, comma-separated CIDRs (10.20.0.0/16, 2001:db8::/32): refused like private addresses unless EGRESS_HOST_MAP maps the host"),
  EGRESS_LOG_LIMIT: z.coerce.number().int().positive().default(1000).describe('network-log entries kept per execution; the log is flagged when capped'),
  NPM_REGISTRY_HOST: hostList(DEFAULT_REGISTRY_HOSTS.npm)
    .refine((hosts) => hosts.length === 1, { message: 'must be one host name' })
    .describe('npm registry host: installs use it, and the egress proxy governs it by allowedPackages (it need not be in allowedDomains)'),
  PYPI_HOSTS: hostList(DEFAULT_REGISTRY_HOSTS.pypi).describe(
    'PyPI index and file hosts, comma-separated; the first is the index installs use; governed by allowedPackages like the npm registry',
  ),
};

export interface EgressSettings {
  /** The CA lives in `${DATA_DIR}/ca/`. */
  DATA_DIR: string;
  EGRESS_HOST_MAP?: string | undefined;
  EGRESS_UPSTREAM_CA?: string | undefined;
  EGRESS_UPSTREAM_PROXY?: string | undefined;
  EGRESS_DENY_CIDRS?: string[] | undefined;
  EGRESS_LOG_LIMIT: number;
  NPM_REGISTRY_HOST: string[];
  PYPI_HOSTS: string[];
}
