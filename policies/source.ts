/**
 * Where a caller's policy comes from. The policy API over HTTP and a folder
 * of files (the embedded service) both implement this; the fetcher in front
 * of either validates what they return, once per load, and caches it.
 */

export interface PolicyRequest {
  /** The caller's bearer token, already verified. */
  token: string;
  /** Its verified subject: a source that stores policies per subject looks them up by it. */
  subject?: string;
}

export interface PolicySource {
  /** Names the source in reasons: "Policy API returned an invalid policy: …". */
  readonly name: string;
  /** Where it reads from, for the start-up log (a URL or a folder). */
  readonly description: string;
  /** The policy document in the policy API format, not yet validated; throws PolicyError when it cannot be had. */
  load(request: PolicyRequest): Promise<unknown>;
}
