/**
 * The MCP tools' inputs, cut from the schemas the HTTP API validates with,
 * so a tool and its HTTP counterpart cannot disagree about a field.
 */
import { z } from 'zod';
import { MethodSchema } from '../policies/index.ts';
import { ExecuteRequestSchema } from './execute-request.ts';

export const MCP_PATH = '/mcp';

/** The `/execute` fields an agent sets; env and secrets come from the MCP request's X-Env-* and X-Secret-* headers, and sealing has no place here. */
export const ExecuteToolInputSchema = ExecuteRequestSchema.pick({
  code: true,
  language: true,
  stdin: true,
  args: true,
  packages: true,
  timeoutMs: true,
  files: true,
  outputFiles: true,
});

export const CheckEgressInputSchema = z.strictObject({
  method: MethodSchema.describe('HTTP method of the request to check, e.g. GET or DELETE'),
  url: z.string().min(1).describe('full URL, http:// or https://'),
});

export const MCP_TOOL_NAMES = ['execute', 'check_egress', 'describe_policy'] as const;
