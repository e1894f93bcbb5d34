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
  /** The policy API's HTTP status, for ERR_POLICY_HTTP_STATUS. */
  readonly status: number | undefined;

  constructor(code: PolicyErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.name = 'PolicyError';
    this.code = code;
    this.status = options?.status;
  }
}

/**
 * What a caller is told about a policy that could not be had: stable words
 * per failure, never the cause (addresses, ports, parser messages), which
 * goes to the operator's log instead.
 */
export function publicPolicyReason(error: PolicyError): string {
  switch (error.code) {
    case 'ERR_POLICY_UNREACHABLE':
      return 'policy service unreachable';
    case 'ERR_POLICY_TIMEOUT':
      return 'policy service timed out';
    case 'ERR_POLICY_HTTP_STATUS':
      return `policy service answered ${error.status ?? 'an error'}`;
    case 'ERR_POLICY_NOT_FOUND':
      // The directory source's message names the caller's own subject, nothing of ours.
      return error.message;
    case 'ERR_POLICY_BAD_JSON':
    case 'ERR_POLICY_INVALID':
      return 'invalid policy';
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
