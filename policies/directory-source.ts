/**
 * Policies from a folder, one file per subject:
 * `<directory>/<encodeURIComponent(sub)>.json` in the policy API format. This
 * is the embedded policy service: the server reads the folder directly,
 * with the subject of the token it has already verified.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PolicyError } from './errors.ts';
import { describeError, MAX_POLICY_BYTES } from './http-source.ts';
import type { PolicyRequest, PolicySource } from './source.ts';

export interface DirectoryPolicySourceOptions {
  directory: string;
  /** Default: the file's UTF-8 text from disk; injectable so tests can count reads. */
  readFile?: (path: string) => Promise<string>;
}

/** The file holding a subject's policy; encoding keeps every subject inside the directory. */
export function policyFileFor(directory: string, subject: string): string {
  return join(directory, `${encodeURIComponent(subject)}.json`);
}

const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'EISDIR']);

export class DirectoryPolicySource implements PolicySource {
  readonly name = 'Policy folder';
  readonly #directory: string;
  readonly #readFile: (path: string) => Promise<string>;

  constructor(options: DirectoryPolicySourceOptions) {
    this.#directory = options.directory;
    this.#readFile = options.readFile ?? ((path) => readFile(path, 'utf8'));
  }

  get description(): string {
    return this.#directory;
  }

  async load({ subject }: PolicyRequest): Promise<unknown> {
    if (subject === undefined) throw new PolicyError('ERR_POLICY_NOT_FOUND', 'No subject to look a policy up by');
    let text: string;
    try {
      text = await this.#readFile(policyFileFor(this.#directory, subject));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (NOT_FOUND_CODES.has(code)) throw new PolicyError('ERR_POLICY_NOT_FOUND', `No policy for subject ${JSON.stringify(subject)}`, { cause: error });
      throw new PolicyError('ERR_POLICY_UNREACHABLE', `Policy folder unreadable: ${describeError(error)}`, { cause: error });
    }
    if (text.length > MAX_POLICY_BYTES) {
      throw new PolicyError('ERR_POLICY_BAD_JSON', `The policy file of subject ${JSON.stringify(subject)} is larger than ${MAX_POLICY_BYTES} bytes`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new PolicyError('ERR_POLICY_BAD_JSON', `The policy file of subject ${JSON.stringify(subject)} is not JSON: ${describeError(error)}`);
    }
  }
}
