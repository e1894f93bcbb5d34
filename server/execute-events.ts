/**
 * The events of a streamed `/execute` (Accept: text/event-stream) as
 * schemas, for the OpenAPI document and for the code that sends them. Each
 * event's data is one line of JSON; `result` carries the plain call's body
 * (ExecuteSuccessSchema) and `network` one network-log entry
 * (NetworkLogEntrySchema).
 */
import { z } from 'zod';
import { ErrorBodySchema } from './execute-response.ts';

export const StreamStartEventSchema = z
  .strictObject({ executionId: z.string().describe('the execution\'s id, as in the result and the logs') })
  .describe('`start`: the execution has its slot and is about to run; the stream opens with it');

export const StreamOutputEventSchema = z
  .strictObject({ text: z.string().describe('the next piece of the stream, whole UTF-8 characters, secret values replaced by their placeholders') })
  .describe('`stdout` / `stderr`: output as the program writes it, within the same cap as the result\'s');

export const StreamErrorEventSchema = ErrorBodySchema.extend({
  status: z.number().int().describe('the HTTP status the plain call would have answered with'),
}).describe('`error`: the run failed after the stream opened (the last event); before that, failures are plain JSON errors with their status');

export type StreamStartEvent = z.infer<typeof StreamStartEventSchema>;
export type StreamOutputEvent = z.infer<typeof StreamOutputEventSchema>;
export type StreamErrorEvent = z.infer<typeof StreamErrorEventSchema>;
