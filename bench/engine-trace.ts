/**
 * Where an execution's engine time goes: every Docker API call this process
 * makes (through dockerode's transport, so nothing has to be wired in), with
 * its method, route and how long the engine took to answer. Bench only: it
 * patches the transport of every dockerode client in the process.
 */
import { createRequire } from 'node:module';

export interface EngineCall {
  /** e.g. `POST /containers/{id}/start` */
  route: string;
  startedAt: number;
  ms: number;
}

interface DialOptions {
  method?: string;
  path?: string;
}

type Dial = (this: unknown, options: DialOptions, callback: (error: unknown, result: unknown) => void) => unknown;

const require = createRequire(import.meta.url);

/** `/containers/3f2a…/start?x=1` → `/containers/{id}/start`. */
function routeOf(method: string, path: string): string {
  const bare = path.split('?')[0] ?? path;
  return `${method} ${bare.replace(/^\/v[\d.]+/, '').replace(/\/containers\/(?!create|json|prune)[^/]+/, '/containers/{id}').replace(/\/images\/.+\/json$/, '/images/{name}/json')}`;
}

/** Records every engine call until the returned stop() is called. */
export function traceEngineCalls(): { calls: EngineCall[]; stop(): void } {
  const Modem = require('docker-modem') as { prototype: { dial: Dial } };
  const original = Modem.prototype.dial;
  const calls: EngineCall[] = [];
  Modem.prototype.dial = function (this: unknown, options: DialOptions, callback) {
    const startedAt = performance.now();
    const route = routeOf(options.method ?? 'GET', options.path ?? '');
    return original.call(this, options, (error, result) => {
      calls.push({ route, startedAt, ms: Math.round((performance.now() - startedAt) * 10) / 10 });
      callback(error, result);
    });
  };
  return {
    calls,
    stop() {
      Modem.prototype.dial = original;
    },
  };
}

export interface RouteProfile {
  route: string;
  count: number;
  perExecution: number;
  p50Ms: number;
  totalMs: number;
}

/** Calls grouped by route: how many per execution and how long the engine took. */
export function profileCalls(calls: readonly EngineCall[], executions: number): RouteProfile[] {
  const byRoute = new Map<string, number[]>();
  for (const call of calls) byRoute.set(call.route, [...(byRoute.get(call.route) ?? []), call.ms]);
  return [...byRoute.entries()]
    .map(([route, times]) => {
      const sorted = [...times].sort((a, b) => a - b);
      return {
        route,
        count: times.length,
        perExecution: Math.round((times.length / Math.max(1, executions)) * 100) / 100,
        p50Ms: sorted[Math.floor((sorted.length - 1) / 2)] ?? 0,
        totalMs: Math.round(times.reduce((sum, t) => sum + t, 0)),
      };
    })
    .sort((a, b) => b.totalMs - a.totalMs);
}
