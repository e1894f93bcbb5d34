#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, resolved next to this file, so the
// command works from any working directory without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../policies/cli.ts', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
