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
export type { IsolationRequirement, PathRule, Policy, PolicyApi } from './schema.ts';
export {
  MAX_SECRETS,
  MAX_SECRET_NAME_LENGTH,
  MAX_SECRET_VALUE_BYTES,
  MIN_SECRET_VALUE_BYTES,
  PolicyApiSecretSchema,
  SECRET_NAME,
  SECRET_PLACES,
  SecretNameSchema,
  SecretPlaceSchema,
  SecretRuleSchema,
  secretRulesFromApi,
  secretValueProblem,
} from './schema.ts';
export type { PolicyApiSecret, SecretPlace, SecretRule } from './schema.ts';
export {
  assertSecretsCovered,
  compileSecretHosts,
  compileSecretRules,
  hasSecretValues,
  hostPatternCovers,
  redactSecretValues,
  secretCoverageProblems,
  secretSummary,
  secretsFor,
} from './secrets.ts';
export type { CompiledSecretRule, SecretAllowance, SecretHostMatcher } from './secrets.ts';
export {
  BoundSecret,
  PLACEHOLDER_PATTERN,
  PLACEHOLDER_PREFIX,
  PLACEHOLDER_RANDOM_LENGTH,
  SecretBinding,
  SecretBindingWireSchema,
  makePlaceholder,
} from './secrets-binding.ts';
export type { SecretBindingWire, SecretSource, SecretSpec } from './secrets-binding.ts';
export {
  RequestSecretObjectSchema,
  RequestSecretsSchema,
  SECRET_HEADER_PREFIX,
  resolveRequestSecrets,
  variableNameFromHeader,
} from './secrets-request.ts';
export type { RequestSecrets, RequestSecretsInput, RequestSecretsResult, SecretProblem, SecretProblemCode } from './secrets-request.ts';
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
  parseAllowedPackage,
  parsePackageSpec,
} from './package-spec.ts';
export { WHEEL_TAIL_BYTES } from './wheel.ts';
export type { AllowedPackageEntry, Ecosystem, PackageRules, PackageSpec, RegistryHosts, RequestedPackageProblem, RequestedPackagesResult } from './package-spec.ts';
export { PackageClosure } from './package-closure.ts';
export type { PendingMetadata } from './package-closure.ts';
export { readRegistryMetadata } from './registry-metadata.ts';
export type { MetadataFacts, MetadataKind, RegistryMetadata } from './registry-metadata.ts';
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
export type { Clock, FetchPolicyOptions, PolicyCacheOptions, PolicyCacheStats, PolicyFetcherOptions, PolicyInfo, PolicyResult } from './fetcher.ts';
export type { PolicyRequest, PolicySource } from './source.ts';
export { DEFAULT_POLICY_FETCH_TIMEOUT_MS, HttpPolicySource, MAX_POLICY_BYTES } from './http-source.ts';
export { canonicalJson, policyHash } from './identity.ts';
export { applyEnforcement, enforcementOf } from './enforcement.ts';
export type { Enforcement } from './enforcement.ts';
export { generalisePath, suggestPolicy, SUBTREE_MIN_CHILDREN } from './suggest.ts';
export type { ObservedRequest, SuggestedRule, Suggestion } from './suggest.ts';
export type { HttpPolicySourceOptions, HttpRequest } from './http-source.ts';
export { DirectoryPolicySource, policyFileFor } from './directory-source.ts';
export type { DirectoryPolicySourceOptions } from './directory-source.ts';
export { EgressUrlError, egressRequestFromUrl } from './request-url.ts';
