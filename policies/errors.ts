/**
 * One error type per failure family, each with a stable `code`, so callers and
 * tests branch on the code and never on message wording.
 */

export type PolicyErrorCode =
  | 'ERR_POLICY_INVALID'
  | 'ERR_POLICY_UNREACHABLE'
  | 'ERR_POLICY_TIMEOUT'
  | 'ERR_POLICY_HTTP_STATUS'
  | 'ERR_POLICY_NOT_FOUND'
  | 'ERR_POLICY_BAD_JSON';

export class PolicyError extends Error {
  readonly code: PolicyErrorCode;

  constructor(code: PolicyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyError';
    this.code = code;
  }
}

/** A policy that failed validation; `problems` holds every `path: message` line. */
export class PolicyValidationError extends PolicyError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('ERR_POLICY_INVALID', `Invalid policy:\n${problems.join('\n')}`);
    this.name = 'PolicyValidationError';
    this.problems = problems;
  }
}
