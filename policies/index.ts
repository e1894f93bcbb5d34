/**
 * The front door of policies/: other modules import from here only.
 */
export type { Decision, EgressRequest, RegistryResponse } from './types.ts';
export {
  DEFAULT_POLICY,
  DomainEntrySchema,
  HostPatternSchema,
  MethodSchema,
  PathPatternSchema,
  PathRuleSchema,
  PolicyApiPathRuleSchema,
  PolicyApiSchema,
  PolicySchema,
  policyFromApi,
} from './schema.ts';
export type { PathRule, Policy, PolicyApi } from './schema.ts';
export { formatIssuePath, lintPolicy } from './lint.ts';
export type { LintResult } from './lint.ts';
export { DEFAULT_PORTS, canonicalHost, hostMatches, isIpLiteral, parseDomainEntry, parseHostPattern, parsePort } from './host.ts';
export type { DomainEntry, HostPattern } from './host.ts';
export { compilePathGlob, normalisePath } from './path.ts';
export type { NormalisedPath, PathGlob } from './path.ts';
export { METHOD_OVERRIDE_HEADERS, compilePolicy, createDecider, decide } from './matcher.ts';
export type { CompiledPolicy } from './matcher.ts';
export {
  DEFAULT_REGISTRY_HOSTS,
  checkRequestedPackages,
  normalisePypiName,
  packageAllowed,
  packageRules,
  parsePackageSpec,
} from './package-spec.ts';
export type { Ecosystem, PackageRules, PackageSpec, RegistryHosts, RequestedPackageProblem, RequestedPackagesResult } from './package-spec.ts';
export { PackageClosure } from './package-closure.ts';
export { decideWithPackages, sessionPackagePolicy } from './packages.ts';
export type { PolicySession } from './packages.ts';
export { PolicyError, PolicyValidationError } from './errors.ts';
export type { PolicyErrorCode } from './errors.ts';
export {
  DEFAULT_POLICY_TTL_MS,
  PolicyFetcher,
  defaultPolicyResult,
  tokenCacheKey,
  unverifiedExpiry,
} from './fetcher.ts';
export type { FetchPolicyOptions, PolicyCacheOptions, PolicyCacheStats, PolicyFetcherOptions, PolicyInfo, PolicyResult } from './fetcher.ts';
export type { PolicyRequest, PolicySource } from './source.ts';
export { DEFAULT_POLICY_FETCH_TIMEOUT_MS, HttpPolicySource, MAX_POLICY_BYTES } from './http-source.ts';
export type { HttpPolicySourceOptions, HttpRequest } from './http-source.ts';
export { DirectoryPolicySource, policyFileFor } from './directory-source.ts';
export type { DirectoryPolicySourceOptions } from './directory-source.ts';
