/**
 * The front door of service-kit/: what every service entry point of this
 * repository shares (the API server and the standalone egress proxy):
 * environment loading with one ConfigError, the zod helpers for env
 * variables, and runMain with its signal handling. It imports nothing of
 * ours, so every folder allowed to start a service may use it.
 */
export { ConfigError, loadEnv, logLevel, optionalText, port, positiveInt } from './env.ts';
export { runMain } from './run-main.ts';
export type { MainLogger, MainProcess, RunMainOptions, Started, Stoppable } from './run-main.ts';
