/**
 * `sandbox-policy audit …` and `sandbox-policy suggest …`: the audit trail
 * from the command line, read through the service's administrator API
 * (SANDBOX_URL, ADMIN_TOKEN), so the CLI needs no database driver and
 * sees exactly what the endpoints show.
 */

export const AUDIT_USAGE = `  sandbox-policy audit executions [--subject S] [--outcome O] [--since T] [--until T] [--blocked] [--limit N] [--cursor C]
      List executions, newest first (GET /admin/executions). T is an ISO
      date-time or epoch milliseconds. Prints JSON; "nextCursor" pages on.
  sandbox-policy audit execution <ID>
      One execution with its egress decisions (GET /admin/executions/ID).
  sandbox-policy audit summary [--subject S] [--since T] [--until T]
      Decision counts by subject, host, method, decision and reason
      (GET /admin/egress/summary), as a table.
  sandbox-policy suggest <SUBJECT> [--since T] [--until T] [--blocked-only]
      The smallest policy change that allows what SUBJECT's code was seen
      doing (GET /admin/policies/SUBJECT/suggestion): the linted policy, the
      diff against the current one, and the requests each rule covers.

  The audit and suggest commands call the service at SANDBOX_URL (default
  http://127.0.0.1:3000) with Authorization: Bearer $ADMIN_TOKEN.`;

export interface AuditCliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
}

export class AuditUsageError extends Error {}

/** `--name value` and bare `--flag` options; everything else is positional. */
function parseOptions(args: readonly string[], values: readonly string[], flags: readonly string[]): { positional: string[]; query: URLSearchParams } {
  const query = new URLSearchParams();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const name = arg.slice(2);
    if (flags.includes(name)) {
      query.set(name === 'blocked-only' ? 'blockedOnly' : name, 'true');
    } else if (values.includes(name)) {
      const value = args[i + 1];
      if (value === undefined) throw new AuditUsageError(`--${name} needs a value`);
      query.set(name, value);
      i += 1;
    } else {
      throw new AuditUsageError(`unknown option ${arg}`);
    }
  }
  return { positional, query };
}

async function get(io: AuditCliIo, path: string, query?: URLSearchParams): Promise<{ status: number; body: { success?: boolean; data?: unknown; error?: string } }> {
  const base = io.env.SANDBOX_URL ?? 'http://127.0.0.1:3000';
  const token = io.env.ADMIN_TOKEN;
  if (token === undefined || token === '') throw new AuditUsageError('ADMIN_TOKEN is not set (the service\'s administrator token)');
  const url = new URL(path, base);
  if (query !== undefined) url.search = query.toString();
  const response = await (io.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  return { status: response.status, body: (await response.json()) as { success?: boolean; data?: unknown; error?: string } };
}

function summaryTable(rows: ReadonlyArray<Record<string, unknown>>): string[] {
  const columns = ['count', 'decision', 'subject', 'method', 'host', 'reason'] as const;
  const cells = rows.map((row) => columns.map((c) => (row[c] === null || row[c] === undefined ? '-' : String(row[c] as string | number))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (values: readonly string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns), ...cells.map(line)];
}

/** Runs an audit or suggest command; returns its exit status (0 ok, 1 the service refused or failed). */
export async function auditMain(command: 'audit' | 'suggest', args: readonly string[], io: AuditCliIo): Promise<number> {
  let path: string;
  let query: URLSearchParams;
  let table = false;
  if (command === 'suggest') {
    const parsed = parseOptions(args, ['since', 'until'], ['blocked-only']);
    const [subject, ...extra] = parsed.positional;
    if (subject === undefined || extra.length > 0) throw new AuditUsageError('suggest needs exactly one <SUBJECT>');
    path = `/admin/policies/${encodeURIComponent(subject)}/suggestion`;
    query = parsed.query;
  } else {
    const [what, ...rest] = args;
    if (what === 'executions') {
      const parsed = parseOptions(rest, ['subject', 'outcome', 'since', 'until', 'limit', 'cursor'], ['blocked']);
      if (parsed.positional.length > 0) throw new AuditUsageError(`unexpected ${parsed.positional[0]}`);
      path = '/admin/executions';
      query = parsed.query;
    } else if (what === 'execution') {
      const parsed = parseOptions(rest, [], []);
      if (parsed.positional.length !== 1) throw new AuditUsageError('audit execution needs exactly one <ID>');
      path = `/admin/executions/${encodeURIComponent(parsed.positional[0])}`;
      query = parsed.query;
    } else if (what === 'summary') {
      const parsed = parseOptions(rest, ['subject', 'since', 'until'], []);
      if (parsed.positional.length > 0) throw new AuditUsageError(`unexpected ${parsed.positional[0]}`);
      path = '/admin/egress/summary';
      query = parsed.query;
      table = true;
    } else {
      throw new AuditUsageError(`audit needs executions, execution or summary${what === undefined ? '' : `, not "${what}"`}`);
    }
  }
  let answer: Awaited<ReturnType<typeof get>>;
  try {
    answer = await get(io, path, query);
  } catch (error) {
    if (error instanceof AuditUsageError) throw error;
    io.err(`sandbox-policy: cannot reach the service: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  if (answer.status !== 200 || answer.body.success !== true) {
    io.err(`sandbox-policy: the service answered ${answer.status}: ${answer.body.error ?? JSON.stringify(answer.body)}`);
    return 1;
  }
  if (table) {
    for (const line of summaryTable((answer.body.data as { rows: Array<Record<string, unknown>> }).rows)) io.out(line);
  } else {
    io.out(JSON.stringify(answer.body.data, null, 2));
  }
  return 0;
}
