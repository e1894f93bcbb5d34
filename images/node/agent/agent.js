'use strict';
// In-sandbox agent: PID 2 under docker's init, uid 1000, read-only root, no
// network but loopback. It turns one job header on stdin into one program run.
//
// Protocol (the executor depends on it exactly; images/python/agent/agent.py
// speaks the same one, keep the two in step):
//   stdin  = one JSON line {"v":1,"token":"…","code":"…","args":[…],"env":{…},"packages":[…],
//            "files":[…],"outputFiles":{…}} (at most MAX_HEADER_BYTES)
//            then the program's own stdin, streamed through until EOF;
//            `packages` (optional, npm specs the server has checked against
//            the policy) are installed from `registry` (a host, default
//            registry.npmjs.org) before the program starts;
//            `files` (optional, [{"path":"data/in.csv","content":"<base64>"}],
//            paths relative and checked by the server) are written into the
//            working directory WORK_DIR, the program's cwd, before it starts:
//            directories made as needed, each file created new (O_EXCL) and
//            never through a symbolic link (O_NOFOLLOW);
//            `outputFiles` (optional, {"match":"<regex>","maxFiles":N,"maxBytes":N})
//            asks for the regular files under WORK_DIR whose relative path
//            the regular expression matches whole, after the program exits;
//   stdout = the program's stdout, untouched, then (with outputFiles) the
//            files record, then the exit record;
//   stderr = the started record, the program's stderr, then the exit record;
//            or at most one `sandbox-agent: …` line when the agent itself
//            fails (exit status 125, no exit record); a failed package
//            install is such a failure, with npm's last output lines after it;
//   status = the program's exit code, or 128 + signal number.
// Records exist only when the header has a `token` (32 hex digits, fresh per
// job; the program never sees it, it is read before the program exists):
//   \0sandbox:<token>:started\n               once the header is read;
//   \0sandbox:<token>:files:<length>\n<JSON>  after the program exits, when
//            the header asked for outputFiles: <length> bytes of
//            {"files":[{"path","size","content"(base64)}],"truncated":bool},
//            in path order, at most maxFiles files and maxBytes bytes (a
//            file that does not fit is left out, and truncated says so).
//            Before collecting, every process the program left behind is
//            killed, so nothing can change the directory under the walk or
//            write into the record. Only regular files are read: symbolic
//            links are never followed, and a file whose opened path is not
//            the one walked (a directory swapped for a link) is skipped;
//   \0sandbox:<token>:exit:<code>:<signal>\n  after the program exits, on both
//            streams (the engine copies them over separate pipes, so each says
//            "everything before me has arrived"); code or signal is empty.
// With them the executor answers without waiting for the engine to see the
// container stop (executor/agent-records.ts strips them).
//
// It is on the hot path of every execution: built-in modules only, and as
// little work as possible between the header and the program. The program's
// node process is started while the agent waits for its job (prelude.js
// holds it before the main module loads), so node's own start-up is not on
// that path either.

const net = require('node:net');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { constants } = require('node:os');

// Mirrors executor/egress.ts (the agent runs inside the image and cannot
// import TypeScript from the repository); keep the two in step.
const PROXY_SOCKET = '/run/egress/proxy.sock';
const CA_CERT = '/run/egress/ca.pem';
const PROXY_URL = 'http://127.0.0.1:3128';
const PROXY_PORT = 3128;
const PROXY_ENV = {
  HTTP_PROXY: PROXY_URL,
  HTTPS_PROXY: PROXY_URL,
  http_proxy: PROXY_URL,
  https_proxy: PROXY_URL,
  NO_PROXY: '',
  no_proxy: '',
  NODE_USE_ENV_PROXY: '1',
  NODE_EXTRA_CA_CERTS: CA_CERT,
  SSL_CERT_FILE: CA_CERT,
  REQUESTS_CA_BUNDLE: CA_CERT,
  CURL_CA_BUNDLE: CA_CERT,
  PIP_CERT: CA_CERT,
};

// npm ships in the image as scripts for node (images/node/recipe.ts NPM_CLI).
const NPM_CLI = '/usr/local/lib/node_modules/npm/bin/npm-cli.js';
const DEFAULT_NPM_REGISTRY_HOST = 'registry.npmjs.org';
// Packages land in /tmp/node_modules, which Node's resolution finds from the
// program at /tmp/.job/main.js, for require() and import alike.
const PACKAGES_PREFIX = '/tmp';
const NPM_CACHE = '/tmp/.npm';
const INSTALL_OUTPUT_TAIL = 4096;
// Registry specs only, as the server checks them (policies/packages.ts): a
// second lock so nothing reaches npm's command line as an option.
const PACKAGE_SPEC = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[A-Za-z0-9][A-Za-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=|*+ -]*)?$/;
const JOB_DIR = '/tmp/.job';
// The program's cwd, where `files` land and `outputFiles` are collected
// (executor/job-files.ts SANDBOX_WORK_DIR); HOME stays /tmp, so caches and
// packages do not mix with the program's files.
const WORK_DIR = '/tmp/work';
// Entries looked at while collecting output files: a program that leaves a
// million files behind costs a bounded walk (the rest count as truncated).
const MAX_WALK_ENTRIES = 10000;
// How long the processes a program left behind get to die before collection.
const LEFTOVER_WAIT_MS = 2000;
const JOB_FILE = `${JOB_DIR}/main.js`;
const PRELUDE = `${__dirname}/prelude.js`;
// What node reads only while it starts: a job setting any of these gets a
// process started for it, not the one waiting in the prelude.
const STARTUP_ENV = /^(?:NODE_|UV_|OPENSSL_|SSL_|LC_)|^(?:LANG|LANGUAGE|ICU_DATA)$/;
const AGENT_FAILURE = 125;
// The server caps code at 1 MiB, which JSON escaping can grow several times
// over (\u00XX is six bytes per byte), and uploads at 24 MiB (32 in base64):
// headroom for both, but never unbounded memory.
const MAX_HEADER_BYTES = 64 * 1024 * 1024;
const TOKEN = /^[0-9a-f]{32}$/;

let child = null;
// The program's process, started ahead of its job: { process, env }.
let waiting = null;

// Blocking, whole writes: a record must not interleave with or be cut by
// anything else on the stream.
function writeRecord(fd, text) {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  let written = 0;
  while (written < bytes.length) {
    try {
      written += fs.writeSync(fd, bytes, written);
    } catch (err) {
      if (err.code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function fail(message) {
  process.stderr.write(`sandbox-agent: ${message}\n`);
  process.exit(AGENT_FAILURE);
}

function parseHeader(line) {
  let job;
  try {
    job = JSON.parse(line);
  } catch (err) {
    fail(`job header is not valid JSON (${err.message})`);
  }
  if (job === null || typeof job !== 'object' || Array.isArray(job)) fail('job header must be a JSON object');
  if (job.v !== 1) fail(`unsupported job header version ${JSON.stringify(job.v)}`);
  if (typeof job.code !== 'string') fail('job header: "code" must be a string');
  const args = job.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) fail('job header: "args" must be an array of strings');
  const env = job.env ?? {};
  if (env === null || typeof env !== 'object' || Array.isArray(env)) fail('job header: "env" must be an object');
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== 'string') fail(`job header: env ${JSON.stringify(key)} must be a string`);
  }
  const packages = job.packages ?? [];
  if (!Array.isArray(packages) || !packages.every((p) => typeof p === 'string' && PACKAGE_SPEC.test(p))) {
    fail('job header: "packages" must be an array of npm registry specs');
  }
  const registry = job.registry ?? DEFAULT_NPM_REGISTRY_HOST;
  if (typeof registry !== 'string' || !/^[a-z0-9.-]+(?::[0-9]+)?$/.test(registry)) fail('job header: "registry" must be a host name');
  const token = job.token ?? null;
  if (token !== null && (typeof token !== 'string' || !TOKEN.test(token))) fail('job header: "token" must be 32 hex digits');
  const files = job.files ?? [];
  if (!Array.isArray(files)) fail('job header: "files" must be an array');
  files.forEach((file, index) => {
    if (file === null || typeof file !== 'object' || typeof file.content !== 'string') fail(`job header: files[${index}] must be {path, content}`);
    if (!isRelativePath(file.path)) fail(`job header: files[${index}].path must be a relative path inside the working directory`);
  });
  const outputFiles = parseOutputFiles(job.outputFiles ?? null);
  return { code: job.code, args, env, packages, registry, token, files, outputFiles };
}

// Second lock behind the server's check (executor/job-files.ts): relative,
// no empty, `.` or `..` segment, no NUL.
function isRelativePath(path) {
  if (typeof path !== 'string' || path === '' || path.startsWith('/') || path.includes('\0')) return false;
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

function parseOutputFiles(spec) {
  if (spec === null) return null;
  const count = (n) => Number.isSafeInteger(n) && n >= 0;
  if (typeof spec !== 'object' || typeof spec.match !== 'string' || !count(spec.maxFiles) || !count(spec.maxBytes)) {
    fail('job header: "outputFiles" must be {match, maxFiles, maxBytes}');
  }
  let match;
  try {
    match = new RegExp(`^(?:${spec.match})$`);
  } catch (err) {
    fail(`job header: outputFiles.match is not a regular expression (${err.message})`);
  }
  return { match, maxFiles: spec.maxFiles, maxBytes: spec.maxBytes };
}

function writeAll(fd, bytes) {
  let written = 0;
  while (written < bytes.length) written += fs.writeSync(fd, bytes, written);
}

// The job's files, into a working directory nobody has touched yet: each
// directory made by us (an existing one must be a real directory), each file
// created new and never through a link.
function writeInputFiles(files) {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  files.forEach((file, index) => {
    try {
      let dir = WORK_DIR;
      for (const segment of file.path.split('/').slice(0, -1)) {
        dir = `${dir}/${segment}`;
        try {
          fs.mkdirSync(dir, 0o755);
        } catch (err) {
          if (err.code !== 'EEXIST' || !fs.lstatSync(dir).isDirectory()) throw err;
        }
      }
      const fd = fs.openSync(`${WORK_DIR}/${file.path}`, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
      try {
        writeAll(fd, Buffer.from(file.content, 'base64'));
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      fail(`cannot write files[${index}] ${JSON.stringify(file.path)} (${err.code ?? err.message})`);
    }
  });
}

function pause(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// True while a process other than init (tini) and this agent is alive; a
// zombie is dead, it only waits for init to reap it.
function othersAlive() {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === 1 || pid === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      const state = stat[stat.lastIndexOf(')') + 2];
      if (state !== 'Z' && state !== 'X') return true;
    } catch {
      // Gone between the listing and the read.
    }
  }
  return false;
}

// kill(-1) reaches every process of our uid but init and ourselves: the
// program's leftovers, which must not touch the directory or the stream
// while we collect. The forwarder lives in this process and survives.
function endLeftovers() {
  const deadline = Date.now() + LEFTOVER_WAIT_MS;
  for (;;) {
    try {
      process.kill(-1, 'SIGKILL');
    } catch {
      // ESRCH: nobody left to signal.
    }
    if (!othersAlive() || Date.now() > deadline) return;
    pause(5);
  }
}

// One regular file under WORK_DIR, or null when it is not one (any more), is
// reached through a link, or holds more than `room` bytes ('too large').
function readContained(path, room) {
  const full = `${WORK_DIR}/${path}`;
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fd;
  try {
    fd = fs.openSync(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return null;
    // The kernel's own name for what we opened: a directory on the way
    // swapped for a link shows here as a path outside WORK_DIR.
    if (fs.readlinkSync(`/proc/self/fd/${fd}`) !== full) return null;
    if (stat.size > room) return 'too large';
    const bytes = Buffer.alloc(stat.size);
    let filled = 0;
    while (filled < bytes.length) {
      const read = fs.readSync(fd, bytes, filled, bytes.length - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    return bytes.subarray(0, filled);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

// The regular files under WORK_DIR that `match`, in path order, within the caps.
function collectOutputFiles({ match, maxFiles, maxBytes }) {
  let truncated = false;
  const matched = [];
  let seen = 0;
  try {
    if (!fs.lstatSync(WORK_DIR).isDirectory()) return { files: [], truncated: false };
  } catch {
    return { files: [], truncated: false };
  }
  const walk = (relative) => {
    let entries;
    try {
      entries = fs.readdirSync(relative === '' ? WORK_DIR : `${WORK_DIR}/${relative}`, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (++seen > MAX_WALK_ENTRIES) {
        truncated = true;
        return;
      }
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      // Dirent types come from lstat semantics: a link is neither a directory nor a file here.
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && match.test(path)) matched.push(path);
    }
  };
  walk('');
  matched.sort();
  const files = [];
  let used = 0;
  for (const path of matched) {
    if (files.length >= maxFiles) {
      truncated = true;
      break;
    }
    const bytes = readContained(path, maxBytes - used);
    if (bytes === null) continue;
    if (bytes === 'too large') {
      truncated = true;
      continue;
    }
    used += bytes.length;
    files.push({ path, size: bytes.length, content: bytes.toString('base64') });
  }
  return { files, truncated };
}

function writeFilesRecord(token, spec) {
  endLeftovers();
  const payload = Buffer.from(JSON.stringify(collectOutputFiles(spec)), 'utf8');
  writeRecord(1, Buffer.concat([Buffer.from(`\0sandbox:${token}:files:${payload.length}\n`, 'latin1'), payload]));
}

// 127.0.0.1:3128 → the per-sandbox Unix socket. The socket is the sandbox's
// identity at the proxy; when it is absent (no egress session yet, or none at
// all) the connection is simply dropped, which clients see as a refused proxy.
function startForwarder() {
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ path: PROXY_SOCKET, allowHalfOpen: true });
    // Half-open both ways so a client that shuts down its sending side still
    // receives the whole response; each side ends only when its source did.
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  return new Promise((resolve) => {
    server.on('error', (err) => fail(`egress forwarder: ${err.message}`));
    server.listen(PROXY_PORT, '127.0.0.1', resolve);
  });
}

// Installs the job's packages through the egress proxy, whose package rules
// decide what may be fetched. Lifecycle scripts never run, and the program's
// own env is not passed on: it must not be able to reconfigure npm.
function installPackages(packages, registry, baseEnv) {
  return new Promise((resolve) => {
    const args = [
      NPM_CLI, 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-save', '--no-package-lock',
      '--no-bin-links', '--no-update-notifier', '--loglevel=error', '--prefix', PACKAGES_PREFIX,
      '--cache', NPM_CACHE, '--registry', `https://${registry}/`, '--', ...packages,
    ];
    const npm = spawn(process.execPath, args, { cwd: PACKAGES_PREFIX, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (chunk) => {
      tail = (tail + chunk.toString('utf8')).slice(-INSTALL_OUTPUT_TAIL);
    };
    npm.stdout.on('data', keep);
    npm.stderr.on('data', keep);
    npm.on('error', (err) => resolve({ ok: false, detail: `cannot start npm (${err.message})` }));
    npm.on('close', (code, signal) => {
      fs.rmSync(NPM_CACHE, { recursive: true, force: true });
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, detail: `npm ${signal ? `was killed by ${signal}` : `exited ${code}`}\n${tail.trimEnd()}` });
    });
  });
}

function exitLike(code, signal) {
  if (signal) process.exit(128 + (constants.signals[signal] ?? 0));
  process.exit(code ?? AGENT_FAILURE);
}

function programEnv() {
  const env = { PATH: '/usr/local/bin', HOME: '/tmp', LANG: 'C.UTF-8', ...PROXY_ENV };
  // Node warns on stderr about a missing NODE_EXTRA_CA_CERTS file on every
  // start; without an egress session there is no CA (and no route out), so
  // leave the variable out rather than pollute the program's stderr.
  if (!fs.existsSync(CA_CERT)) delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

function startWaitingProgram() {
  const env = programEnv();
  const program = spawn(process.execPath, ['--require', PRELUDE, JOB_FILE], {
    cwd: WORK_DIR,
    env,
    stdio: ['pipe', 'inherit', 'inherit', 'pipe'],
  });
  waiting = { process: program, env };
  const forget = () => {
    if (waiting?.process === program) waiting = null;
  };
  program.on('error', forget);
  program.on('exit', forget);
  program.stdio[3].on('error', () => {});
}

// The waiting process serves the job when it is still there and was started
// with what the job needs (the CA may have arrived since); otherwise a fresh one.
function programFor(job, env) {
  const ready = waiting;
  waiting = null;
  const fits =
    ready !== null &&
    ready.process.exitCode === null &&
    ready.process.signalCode === null &&
    ready.env.NODE_EXTRA_CA_CERTS === env.NODE_EXTRA_CA_CERTS &&
    !Object.keys(job.env).some((name) => STARTUP_ENV.test(name));
  if (fits) {
    ready.process.stdio[3].end(`${JSON.stringify({ env: job.env, args: job.args })}\n`);
    return ready.process;
  }
  ready?.process.kill('SIGKILL');
  return spawn(process.execPath, [JOB_FILE, ...job.args], {
    cwd: WORK_DIR,
    env: { ...env, ...job.env },
    stdio: ['pipe', 'inherit', 'inherit'],
  });
}

async function run(job, rest, forwarding) {
  if (job.token !== null) writeRecord(2, `\0sandbox:${job.token}:started\n`);
  await forwarding;
  try {
    fs.mkdirSync(JOB_DIR, { recursive: true, mode: 0o700 });
    fs.writeFileSync(JOB_FILE, job.code);
  } catch (err) {
    fail(`cannot write the program to ${JOB_FILE} (${err.code ?? err.message})`);
  }
  writeInputFiles(job.files);
  const env = programEnv();
  if (job.packages.length > 0) {
    const installed = await installPackages(job.packages, job.registry, { ...env });
    if (!installed.ok) fail(`package install failed: ${installed.detail}`);
  }
  child = programFor(job, env);
  child.on('error', (err) => fail(`cannot start the program (${err.message})`));
  child.on('exit', (code, signal) => {
    if (job.token !== null) {
      if (job.outputFiles !== null) writeFilesRecord(job.token, job.outputFiles);
      const record = `\0sandbox:${job.token}:exit:${code ?? ''}:${signal ?? ''}\n`;
      writeRecord(1, record);
      writeRecord(2, record);
    }
    exitLike(code, signal);
  });
  // A program that never reads stdin may exit before we finish writing it;
  // that EPIPE is the program's business, not an agent failure.
  child.stdin.on('error', () => {});
  if (rest.length > 0) child.stdin.write(rest);
  if (process.stdin.readableEnded) child.stdin.end();
  else process.stdin.pipe(child.stdin);
}

// Anything unexpected is the agent's failure, never the program's exit status.
process.on('uncaughtException', (err) => fail(err.message));

// docker stop → tini → us: pass the signal on and report the program's fate.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT']) {
  process.on(signal, () => {
    if (child?.exitCode === null) child.kill(signal);
    else process.exit(128 + constants.signals[signal]);
  });
}

function readHeader(forwarding) {
  const chunks = [];
  let size = 0;
  const onData = (chunk) => {
    const newline = chunk.indexOf(10);
    if (newline === -1) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_HEADER_BYTES) fail(`job header exceeds ${MAX_HEADER_BYTES} bytes`);
      return;
    }
    chunks.push(chunk.subarray(0, newline));
    stop();
    process.stdin.pause();
    run(parseHeader(Buffer.concat(chunks).toString('utf8')), chunk.subarray(newline + 1), forwarding).catch((err) => fail(err.message));
  };
  // Tolerate a header without its newline when stdin ends right after it:
  // the program then simply gets an empty stdin.
  const onEnd = () => {
    stop();
    if (size === 0) fail('no job header on stdin');
    run(parseHeader(Buffer.concat(chunks).toString('utf8')), Buffer.alloc(0), forwarding).catch((err) => fail(err.message));
  };
  const stop = () => {
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
  };
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
}

// The working directory exists before the program's process, which starts in it.
try {
  fs.mkdirSync(WORK_DIR, { recursive: true, mode: 0o755 });
} catch (err) {
  fail(`cannot make the working directory ${WORK_DIR} (${err.code ?? err.message})`);
}
// Both ahead of the job: the forwarder only dials the socket per connection,
// so it may listen before the egress session exists.
const forwarding = startForwarder();
startWaitingProgram();
readHeader(forwarding);
