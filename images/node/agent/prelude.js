'use strict';
// Preloaded (--require) into the program's node process, which the agent
// starts before the job arrives so that node's own start-up (about as long
// as a hello-world run) is off the job's path. It blocks here, before the
// main module loads, until the agent writes the job's env and args to fd 3
// as one JSON line; the program's code is already at the main module's path
// by then. Whatever the program then sees (argv, env, require.main, ESM or
// CommonJS) is what a fresh `node main.js args` would have given it.
//
// A job whose env node reads only at start-up (NODE_OPTIONS and the like)
// never comes here: the agent starts a fresh process for it instead.

const fs = require('node:fs');

const JOB_FD = 3;

// Node sets up NODE_USE_ENV_PROXY's fetch dispatcher after the preloads, and
// loading the undici bundle for it is most of a start-up's cost; touching a
// global that undici provides loads it here, ahead of the job. http and https
// are what a program reaching the network loads first.
void globalThis.Headers;
require('node:http');
require('node:https');

function readLine() {
  // The agent writes it (from a header it has already bounded): no cap here.
  const chunks = [];
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    let read;
    try {
      read = fs.readSync(JOB_FD, buffer, 0, buffer.length, null);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      continue;
    }
    // The agent went away without a job: nothing to run.
    if (read === 0) process.exit(0);
    const newline = buffer.subarray(0, read).indexOf(10);
    chunks.push(Buffer.from(buffer.subarray(0, newline === -1 ? read : newline)));
    if (newline !== -1) return Buffer.concat(chunks).toString('utf8');
  }
}

const job = JSON.parse(readLine());
fs.closeSync(JOB_FD);
// fork() starts children with process.execArgv: they must not load this file.
process.execArgv.length = 0;
// Nor should the program find it among its modules.
delete require.cache[__filename];
process.argv.push(...job.args);
for (const [name, value] of Object.entries(job.env)) process.env[name] = value;
