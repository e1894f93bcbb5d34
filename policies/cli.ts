/**
 * `sandbox-policy`: check a policy file, or ask what it would decide for one
 * request, with the same code the proxy runs.
 */
import { readFileSync } from 'node:fs';
import { AUDIT_USAGE, auditMain, AuditUsageError } from './audit-cli.ts';
import { lintPolicy } from './lint.ts';
import { compilePolicy, decide } from './matcher.ts';
import type { Policy } from './schema.ts';
import { compileSecretRules, secretsFor } from './secrets.ts';
import { EgressUrlError, egressRequestFromUrl } from './request-url.ts';
import type { EgressRequest } from './types.ts';

export const USAGE = `Usage:
  sandbox-policy lint <policy.json>
      Validate a policy (policy API format). Prints "ok", or every problem
      as "path: message". A valid policy may also get "warning: path: message"
      lines, such as a wildcard over names anyone can register; they do not
      change the exit status.
  sandbox-policy explain <policy.json> <METHOD> <URL> [-H 'Name: value']...
      Show what the egress proxy would decide for one request: "allowed" or
      "blocked", the reason, and the rule that decided, and, when the policy
      declares secrets, which of them would be substituted into it and where.
      URL is http:// or https://; its host, port and path are used exactly
      as written.
${AUDIT_USAGE}

Exit status:
  0  lint: the policy is valid       explain: the request is allowed
  1  lint: the policy has problems   explain: the request is blocked
  2  usage error, unreadable file or invalid policy (explain)
  audit, suggest: 0 answered, 1 the service refused or could not be reached`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

class UsageError extends Error {}

/** Runs one command and returns its exit status (asynchronously for the commands that call the service). */
export function main(argv: readonly string[], io: CliIo = consoleIo): number | Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'lint':
        return lintCommand(rest, io);
      case 'explain':
        return explainCommand(rest, io);
      case 'audit':
      case 'suggest':
        return auditMain(command, rest, { env: process.env, ...io }).catch((error: unknown) => {
          if (!(error instanceof AuditUsageError)) throw error;
          io.err(`sandbox-policy: ${error.message}\n\n${USAGE}`);
          return 2;
        });
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`sandbox-policy: ${error.message}\n\n${USAGE}`);
    return 2;
  }
}

function readPolicyFile(file: string | undefined): unknown {
  if (file === undefined) throw new UsageError('missing <policy.json>');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${file} is not JSON: ${(error as Error).message}`);
  }
}

function lintCommand(args: readonly string[], io: CliIo): number {
  const [file] = args;
  const result = lintPolicy(readPolicyFile(file));
  if (result.ok) {
    for (const warning of result.warnings) io.out(`warning: ${warning}`);
    io.out('ok');
    return 0;
  }
  for (const problem of result.problems) io.out(problem);
  io.err(`${file ?? ''}: ${result.problems.length} problem(s)`);
  return 1;
}

function explainCommand(args: readonly string[], io: CliIo): number {
  const positional: string[] = [];
  const headers: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    if (arg === '-H' || arg === '--header') {
      const header = args[i + 1];
      const colon = header?.indexOf(':') ?? -1;
      if (header === undefined || colon <= 0) throw new UsageError(`${arg} needs 'Name: value'`);
      const name = header.slice(0, colon).trim().toLowerCase();
      (headers[name] ??= []).push(header.slice(colon + 1).trim());
      i += 1;
    } else {
      positional.push(arg);
    }
  }
  const [file, method, url] = positional;
  if (method === undefined || url === undefined || positional.length > 3) {
    throw new UsageError('explain needs <policy.json> <METHOD> <URL>');
  }
  const linted = lintPolicy(readPolicyFile(file));
  if (!linted.ok) {
    for (const problem of linted.problems) io.err(problem);
    return 2;
  }
  const request = requestFromUrlOrUsage(method, url, headers);
  const decision = decide(compilePolicy(linted.policy satisfies Policy), request);
  io.out(decision.allowed ? 'allowed' : 'blocked');
  io.out(`reason: ${decision.reason}`);
  io.out(`rule:   ${decision.rule}`);
  io.out(`host:   ${decision.host ?? '(invalid)'}`);
  if (decision.path !== undefined) io.out(`path:   ${decision.path}`);
  if (linted.policy.secrets !== undefined) io.out(`secrets: ${explainSecrets(linted.policy, request, decision.allowed)}`);
  return decision.allowed ? 0 : 1;
}

/** Which declared secrets the proxy would substitute into this request, and where. */
function explainSecrets(policy: Policy, request: EgressRequest, allowed: boolean): string {
  if (!allowed) return 'none (the request is blocked; secrets never override the policy)';
  const allowances = secretsFor(compileSecretRules(policy), request);
  if (allowances.length === 0) return 'none bound to this host';
  return allowances.map((allowance) => `${allowance.name} (${allowance.places.join(', ')})`).join(', ');
}

function requestFromUrlOrUsage(method: string, url: string, headers: Record<string, string[]>): EgressRequest {
  try {
    return egressRequestFromUrl(method, url, headers);
  } catch (error) {
    if (error instanceof EgressUrlError) throw new UsageError(error.message);
    throw error;
  }
}
