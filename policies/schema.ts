/**
 * The policy formats: what the policy API returns (`PolicyApi`) and what the
 * rest of the service works with (`Policy`), the mapping between them, and the
 * default policy. Pattern checks run inside the schemas so one parse reports
 * every problem, each at its own path.
 */
import { z } from 'zod';
import { parseDomainEntry, parseHostPattern } from './host.ts';
import { compilePathGlob } from './path.ts';

// RFC 9110 token characters; `*` is both a token and our "any method".
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*(?:\/[a-z0-9._~-]+)?|[A-Za-z0-9][A-Za-z0-9._~-]*)$/;
const BINARY_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

/** Adds a custom issue when `check` returns a problem for the value. */
function refineWith(check: (value: string) => string | null) {
  return (value: string, ctx: z.RefinementCtx): void => {
    const problem = check(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  };
}

const hostPatternProblem = (value: string): string | null => {
  const parsed = parseHostPattern(value);
  return parsed.ok ? null : parsed.problem;
};

export const HostPatternSchema = z
  .string()
  .superRefine(refineWith(hostPatternProblem))
  .describe('Host pattern: "example.com" (that host only), "*.example.com" (any subdomain, not the apex) or "*" (every host).');

export const DomainEntrySchema = z
  .string()
  .superRefine(
    refineWith((value) => {
      const parsed = parseDomainEntry(value);
      return parsed.ok ? null : parsed.problem;
    }),
  )
  .describe('Allowed host pattern, optionally with one port ("api.example.com:8443"); without a port only 80 and 443 are allowed.');

export const MethodSchema = z
  .string()
  .regex(METHOD_TOKEN, { message: 'method must be an HTTP method token such as "GET", or "*"' })
  .describe('HTTP method the rule applies to, compared case-insensitively; "*" or absent means every method.');

export const PathPatternSchema = z
  .string()
  .superRefine(
    refineWith((value) => {
      const compiled = compilePathGlob(value);
      return compiled.ok ? null : compiled.problem;
    }),
  )
  .describe('Path glob on the normalised path without query: "*" within a segment, "**" across segments, a trailing "/*" covers the whole subtree.');

export const PolicyApiPathRuleSchema = z
  .strictObject({
    path: PathPatternSchema,
    allow: z.boolean().describe('true allows matching requests; false denies them, and a deny beats any allow.'),
    method: MethodSchema.optional(),
  })
  .describe('One path rule as the policy API sends it.');

/** Checks record keys without hiding the problems inside their values. */
function hostPatternRecord<V extends z.ZodType>(value: V) {
  return z.record(z.string(), value).check(
    z.superRefine(
      (record, ctx) => {
        for (const key of Object.keys(record)) {
          const problem = hostPatternProblem(key);
          if (problem !== null) ctx.addIssue({ code: 'custom', path: [key], message: problem, input: key });
        }
      },
      { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
    ),
  );
}

export const PolicyApiSchema = z
  .strictObject({
    allowedDomains: z.array(DomainEntrySchema).describe('Hosts the sandbox may reach; everything else is blocked.'),
    blockedDomains: z
      .array(HostPatternSchema)
      .optional()
      .describe('Hosts that are blocked even when allowedDomains matches them (checked first, all ports).'),
    apiPathRules: hostPatternRecord(z.array(PolicyApiPathRuleSchema))
      .optional()
      .describe('Per-host method and path rules, keyed by host pattern; rules of every matching key apply together.'),
    caseSensitivePaths: z.array(HostPatternSchema).optional().describe(
      'Hosts (patterns as in apiPathRules keys) whose servers treat paths case-sensitively: their rules compare case exactly. On every other host a deny rule also catches a path in any case ("/User/repos" meets a deny on "/user/**"), while an allow still needs the case it names.',
    ),
    allowedPackages: z
      .array(z.string().regex(PACKAGE_NAME, { message: 'not a package name or @scope' }))
      .optional()
      .describe('Installable packages: "lodash" names one package, "@okta" a whole npm scope.'),
    allowedBinaries: z
      .array(z.string().regex(BINARY_NAME, { message: 'not an executable name (no paths)' }))
      .optional()
      .describe('Executables beyond the language runtime that the sandbox may run, by name.'),
  })
  .describe('A user network policy as the policy API returns it.');
export type PolicyApi = z.infer<typeof PolicyApiSchema>;

export const PathRuleSchema = z
  .strictObject({
    method: MethodSchema,
    path: PathPatternSchema,
    allow: z.boolean().describe('true allows matching requests; false denies them.'),
  })
  .describe('One path rule in the internal policy; method is upper-case or "*".');
export type PathRule = z.infer<typeof PathRuleSchema>;

export const PolicySchema = z
  .strictObject({
    allowedDomains: z.array(DomainEntrySchema).describe('Hosts (optionally host:port) the sandbox may reach.'),
    blockedDomains: z.array(HostPatternSchema).describe('Hosts always blocked, checked before allowedDomains.'),
    apiPathRules: hostPatternRecord(z.array(PathRuleSchema)).describe(
      'Per-host method and path rules, keyed by host pattern.',
    ),
    caseSensitivePaths: z
      .array(HostPatternSchema)
      .optional()
      .describe('Hosts whose path rules compare case exactly; absent means none.'),
    allowedPackages: z.array(z.string()).describe('Installable packages and @scopes.'),
    allowedBinaries: z.array(z.string()).describe('Executables the sandbox may run, by name.'),
  })
  .describe('The internal policy every other module works with.');
export type Policy = z.infer<typeof PolicySchema>;

/** The seed's "Policy Format Mapping": fills what the API may omit and normalises methods. */
export function policyFromApi(api: PolicyApi): Policy {
  const apiPathRules: Record<string, PathRule[]> = {};
  for (const [hostPattern, rules] of Object.entries(api.apiPathRules ?? {})) {
    apiPathRules[hostPattern] = rules.map((rule) => ({
      method: (rule.method ?? '*').toUpperCase(),
      path: rule.path,
      allow: rule.allow,
    }));
  }
  return {
    allowedDomains: [...api.allowedDomains],
    blockedDomains: [...(api.blockedDomains ?? [])],
    apiPathRules,
    // Only when given, so policies written before the option map exactly as they always did.
    ...(api.caseSensitivePaths === undefined ? {} : { caseSensitivePaths: [...api.caseSensitivePaths] }),
    allowedPackages: [...(api.allowedPackages ?? [])],
    allowedBinaries: [...(api.allowedBinaries ?? [])],
  };
}

/**
 * Used when there is no token or the policy cannot be fetched: no network at
 * all (the `*` block makes that explicit rather than relying on an empty
 * allow list), no packages, no extra binaries.
 */
export const DEFAULT_POLICY: Policy = Object.freeze({
  allowedDomains: [],
  blockedDomains: ['*'],
  apiPathRules: {},
  allowedPackages: [],
  allowedBinaries: [],
});
