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
const PACKAGE_NAME = /^(?:npm:|pypi:)?(?:@[a-z0-9][a-z0-9._~-]*(?:\/[a-z0-9._~-]+)?|[A-Za-z0-9][A-Za-z0-9._~-]*)$/;
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

/** Environment-variable names, the form a secret takes inside the sandbox. */
export const SECRET_NAME = /^[A-Z_][A-Z0-9_]*$/;
export const MAX_SECRET_NAME_LENGTH = 64;
/** Most secrets one policy declares, and one execution binds. */
export const MAX_SECRETS = 32;
/** Largest secret value, in UTF-8 bytes. */
export const MAX_SECRET_VALUE_BYTES = 8 * 1024;
/**
 * Smallest secret value, in UTF-8 bytes. Every response and the program's
 * output are scrubbed of the value, so a value of a few characters would
 * rewrite ordinary text; real credentials are far longer.
 */
export const MIN_SECRET_VALUE_BYTES = 8;
export const SECRET_PLACES = ['header', 'query', 'body'] as const;
export type SecretPlace = (typeof SECRET_PLACES)[number];
// Substituted into header values as they are: a line break would forge headers.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/u;

/** Why a secret value cannot be bound, or null. Shared by the policy source and the request. */
export function secretValueProblem(value: string): string | null {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_SECRET_VALUE_BYTES) return `value is ${bytes} bytes; the limit is ${MAX_SECRET_VALUE_BYTES}`;
  if (bytes < MIN_SECRET_VALUE_BYTES) return `value is ${bytes} bytes; at least ${MIN_SECRET_VALUE_BYTES} are needed to scrub it reliably`;
  if (CONTROL_CHARACTER.test(value)) return 'value contains a control character (line breaks and NUL are refused)';
  return null;
}

export const SecretNameSchema = z
  .string()
  .max(MAX_SECRET_NAME_LENGTH, { message: `secret name is longer than ${MAX_SECRET_NAME_LENGTH} characters` })
  .regex(SECRET_NAME, { message: 'secret name must be an environment-variable name ([A-Z_][A-Z0-9_]*)' })
  .describe('The environment variable that holds the secret\'s placeholder inside the sandbox.');

export const SecretPlaceSchema = z
  .enum(SECRET_PLACES)
  .describe('Where the proxy may substitute the value: "header" (header values, Basic auth included), "query", "body" (JSON, form and text bodies).');

export const SecretValueSchema = z
  .string()
  .superRefine(refineWith(secretValueProblem))
  .describe('The credential itself, held by the service and the proxy only; never returned, logged or written to disk.');

export const PolicyApiSecretSchema = z
  .strictObject({
    hosts: z
      .array(DomainEntrySchema)
      .min(1, { message: 'a secret needs at least one host' })
      .describe('Hosts the value may be sent to, in the allowedDomains syntax; each must be allowed by this policy.'),
    in: z
      .array(SecretPlaceSchema)
      .min(1, { message: 'in must name at least one place' })
      .optional()
      .describe('Where substitution may happen; default ["header"].'),
    value: SecretValueSchema.optional(),
    valueFromPolicy: z
      .boolean()
      .optional()
      .describe('Set by the redacted view (GET /api/user/policies) where the source holds a value it never returns; ignored when read back, so the request must then supply the value.'),
  })
  .describe('Where one secret may go, and optionally its value.');
export type PolicyApiSecret = z.infer<typeof PolicyApiSecretSchema>;

/** Checks record keys as secret names without hiding the problems inside their values. */
function secretRecord<V extends z.ZodType>(value: V) {
  return z
    .record(z.string(), value)
    .check(
      z.superRefine(
        (record, ctx) => {
          const names = Object.keys(record);
          if (names.length > MAX_SECRETS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_SECRETS} secrets may be declared`, input: record });
          for (const name of names) {
            const parsed = SecretNameSchema.safeParse(name);
            if (!parsed.success) ctx.addIssue({ code: 'custom', path: [name], message: parsed.error.issues[0]?.message ?? 'bad secret name', input: name });
          }
        },
        { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
      ),
    );
}

export const IsolationRequirementSchema = z
  .enum(['gvisor'])
  .describe('The isolation tier this user\'s programs need: "gvisor" runs them only under gVisor, and a deployment without it refuses them (503 ISOLATION_UNAVAILABLE) rather than run them weaker. Absent: the deployment\'s tier.');
export type IsolationRequirement = z.infer<typeof IsolationRequirementSchema>;

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
    webSocketDomains: z.array(HostPatternSchema).optional().describe(
      'Hosts (patterns as in allowedDomains, without ports) to which WebSocket upgrades are relayed; absent means none. Each must also be allowed by allowedDomains, and the upgrade request itself passes path rules like any GET. After the upgrade the proxy relays frames both ways and inspects nothing.',
    ),
    allowedPackages: z
      .array(z.string().regex(PACKAGE_NAME, { message: 'not a package name or @scope, optionally prefixed npm: or pypi:' }))
      .optional()
      .describe('Installable packages: "lodash" names one package (on npm and on PyPI), "npm:lodash" or "pypi:requests" one ecosystem\'s, "@okta" a whole npm scope.'),
    allowedBinaries: z
      .array(z.string().regex(BINARY_NAME, { message: 'not an executable name (no paths)' }))
      .optional()
      .describe('Executables beyond the language runtime that the sandbox may run, by name.'),
    secrets: secretRecord(PolicyApiSecretSchema)
      .optional()
      .describe('Credentials bound to hosts, keyed by environment-variable name: the sandbox sees a placeholder, the proxy substitutes the value toward these hosts only.'),
    isolation: IsolationRequirementSchema.optional(),
    enforcement: z
      .enum(['enforce', 'audit'])
      .optional()
      .describe('audit: learn mode, requests the rules would block are let through and logged with wouldBlock and the reason (the proxy\'s own checks still refuse); enforce (default): the rules block.'),
    version: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe('The source\'s own name for this revision of the policy, reported as policyInfo.version and stored with each execution (the policy API\'s ETag serves when absent).'),
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

export const SecretRuleSchema = z
  .strictObject({
    hosts: z.array(DomainEntrySchema).min(1).describe('Hosts (optionally host:port) the value may be sent to.'),
    in: z.array(SecretPlaceSchema).min(1).describe('Where substitution may happen, without repeats.'),
    value: SecretValueSchema.optional(),
  })
  .describe('One secret in the internal policy: where it may go, and its value when the policy source holds it.');
export type SecretRule = z.infer<typeof SecretRuleSchema>;

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
    webSocketDomains: z.array(HostPatternSchema).optional().describe('Hosts WebSocket upgrades are relayed to; absent means none.'),
    allowedPackages: z.array(z.string()).describe('Installable packages and @scopes.'),
    allowedBinaries: z.array(z.string()).describe('Executables the sandbox may run, by name.'),
    secrets: secretRecord(SecretRuleSchema).optional().describe('Credentials bound to hosts, keyed by name; absent when none are declared.'),
    isolation: IsolationRequirementSchema.optional(),
    enforcement: z.literal('audit').optional().describe('Present only for a policy in audit (learn) mode.'),
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
  const policy: Policy = {
    allowedDomains: [...api.allowedDomains],
    blockedDomains: [...(api.blockedDomains ?? [])],
    apiPathRules,
    // Only when given, so policies written before the option map exactly as they always did.
    ...(api.caseSensitivePaths === undefined ? {} : { caseSensitivePaths: [...api.caseSensitivePaths] }),
    ...(api.webSocketDomains === undefined ? {} : { webSocketDomains: [...api.webSocketDomains] }),
    allowedPackages: [...(api.allowedPackages ?? [])],
    allowedBinaries: [...(api.allowedBinaries ?? [])],
  };
  if (api.secrets !== undefined) policy.secrets = secretRulesFromApi(api.secrets);
  if (api.isolation !== undefined) policy.isolation = api.isolation;
  // Only when asked for, so an enforcing policy's hash is what it always was.
  if (api.enforcement === 'audit') policy.enforcement = 'audit';
  return policy;
}

/** Fills `in` (default header), drops repeated places, keeps a value only where one was given. */
export function secretRulesFromApi(secrets: Readonly<Record<string, PolicyApiSecret>>): Record<string, SecretRule> {
  const rules: Record<string, SecretRule> = {};
  for (const [name, secret] of Object.entries(secrets)) {
    const rule: SecretRule = { hosts: [...secret.hosts], in: [...new Set<SecretPlace>(secret.in ?? ['header'])] };
    if (secret.value !== undefined) rule.value = secret.value;
    rules[name] = rule;
  }
  return rules;
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
