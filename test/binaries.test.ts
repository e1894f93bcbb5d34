/**
 * allowedBinaries through the HTTP API: both images carry jq, curl and sh;
 * a container shows only the ones its caller's policy names, and every
 * way of reaching a hidden one (name, absolute path, the loader, the raw
 * spawn binding, ctypes, a copy) finds nothing to run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { testIsolation } from './support/service.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';


const LOADER = '/lib64/ld-linux-x86-64.so.2';

describeWithDocker('allowedBinaries', () => {
  let world: SeedWorld;
  let jqOnly: string;
  let withShell: string;

  beforeAll(async () => {
    world = await startSeedWorld(
      {},
      {
        users: () => ({
          'jq-user': { allowedDomains: [], allowedBinaries: ['jq'] },
          'shell-user': { allowedDomains: [], allowedBinaries: ['jq', 'sh'] },
        }),
      },
    );
    jqOnly = await world.tokenFor('jq-user');
    withShell = await world.tokenFor('shell-user');
  });
  afterAll(async () => {
    await world?.close();
  });

  describe('in the Python image, with allowedBinaries ["jq"]', () => {
    const py = (code: string, token: string | null = jqOnly) => world.run({ language: 'python', code }, { token });

    it('runs jq, by name and by its path', async () => {
      const data = await py(`
import subprocess
print(subprocess.run(["jq", "-c", ".a"], input=b'{"a":[1,2]}', capture_output=True).stdout.decode(), end="")
print(subprocess.run(["/opt/tools/jq/bin/jq", "-n", "1 + 1"], capture_output=True).stdout.decode(), end="")`);
      expect(data.stderr).toBe('');
      expect(data.stdout).toBe('[1,2]\n2\n');
    });

    // allowedBinaries governs executables, not code: a program can still run
    // machine code it writes into its own memory (the README says so).
    it('still runs machine code the program writes into its own memory', async () => {
      const data = await py(`
import ctypes, mmap
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes([0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3]))  # mov eax, 42; ret
address = ctypes.addressof(ctypes.c_char.from_buffer(page))
print(ctypes.CFUNCTYPE(ctypes.c_int)(address)())`);
      expect(data.stderr).toBe('');
      expect(data.stdout).toBe('42\n');
    });

    it('finds no curl by name, absolute path, link, loader or ctypes execve', async () => {
      const data = await py(`
import ctypes, os, subprocess
def spawn(argv):
    try:
        r = subprocess.run(argv, capture_output=True)
        return f"exit {r.returncode}: {r.stderr.decode().strip()}"
    except OSError as e:
        return type(e).__name__
libc = ctypes.CDLL(None, use_errno=True)
argv = (ctypes.c_char_p * 3)(b"curl", b"--version", None)
envp = (ctypes.c_char_p * 1)(None)
execve = libc.execve(b"/opt/tools/curl/bin/curl", argv, envp)
print({
    "name": spawn(["curl", "--version"]),
    "path": spawn(["/opt/tools/curl/bin/curl", "--version"]),
    "link": spawn(["/usr/local/bin/curl", "--version"]),
    "loader": spawn(["${LOADER}", "/opt/tools/curl/bin/curl", "--version"]),
    "execve": [execve, os.strerror(ctypes.get_errno())],
    "dir": os.listdir("/opt/tools/curl"),
})`);
      expect(data.stderr).toBe('');
      const seen = data.stdout.trim();
      expect(seen).toContain("'name': 'FileNotFoundError'");
      expect(seen).toContain("'path': 'FileNotFoundError'");
      expect(seen).toContain("'link': 'FileNotFoundError'");
      expect(seen).toMatch(/'loader': 'exit 127: \/opt\/tools\/curl\/bin\/curl: error while loading shared libraries: .*No such file or directory'/);
      expect(seen).toContain("'execve': [-1, 'No such file or directory']");
      expect(seen).toContain("'dir': []");
      expect(seen).not.toMatch(/curl 7\./);
    });

    it('cannot copy curl, and a copy of an allowed tool will not run from /tmp', async () => {
      const data = await py(`
import os, shutil, subprocess
def attempt(fn):
    try:
        return fn()
    except OSError as e:
        return type(e).__name__
print(attempt(lambda: shutil.copy("/opt/tools/curl/bin/curl", "/tmp/curl")))
shutil.copy("/opt/tools/jq/bin/jq", "/tmp/jq")
os.chmod("/tmp/jq", 0o755)
print(attempt(lambda: subprocess.run(["/tmp/jq", "--version"]).returncode))
print(subprocess.run(["${LOADER}", "/tmp/jq", "--version"], capture_output=True).stderr.decode().strip())`);
      // gVisor refuses to exec from the noexec /tmp but lets the loader map a file from it: the copy runs (on gVisor's kernel).
      const loaded = testIsolation() === 'gvisor' ? '' : '/tmp/jq: error while loading shared libraries: /tmp/jq: failed to map segment from shared object';
      expect(data.stdout).toBe(`FileNotFoundError\nPermissionError\n${loaded}\n`);
    });

    it('cannot run a binary it brings from an anonymous memory file, the one writable place without noexec', async () => {
      const data = await py(`
import ctypes, os
try:
    os.memfd_create("jq")
    print("created")
except OSError as e:
    print(e.strerror)
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(319, b"jq", 0), os.strerror(ctypes.get_errno()))`);
      expect(data.stdout).toBe('Operation not permitted\n-1 Operation not permitted\n');
    });

    it('has no shell when sh is not allowed', async () => {
      const data = await py(`
import subprocess
out = []
for argv, shell in [(["sh", "-c", "echo hi"], False), (["/bin/sh", "-c", "echo hi"], False), ("echo hi", True)]:
    try:
        out.append(subprocess.run(argv, shell=shell, capture_output=True).stdout.decode())
    except OSError as e:
        out.append(type(e).__name__)
print(out)`);
      expect(data.stdout).toBe("['FileNotFoundError', 'FileNotFoundError', 'FileNotFoundError']\n");
    });

    it('shows no tool at all to a caller without a policy', async () => {
      const data = await py('import os, shutil\nprint([shutil.which(t) for t in ("jq", "curl", "sh")], {t: os.listdir(f"/opt/tools/{t}") for t in ("jq", "curl", "sh")})', null);
      expect(data.stdout).toBe("[None, None, None] {'jq': [], 'curl': [], 'sh': []}\n");
    });
  });

  describe('in the Node.js image, with allowedBinaries ["jq"]', () => {
    const js = (code: string, token: string = jqOnly) => world.run({ language: 'javascript', code }, { token });

    it('runs jq, and finds no curl through child_process, the loader or the raw spawn binding', async () => {
      const data = await js(`
        const { spawnSync } = require('node:child_process');
        const binding = process.binding('spawn_sync');
        const raw = (file) => binding.spawn({
          file, args: [file, '--version'], envPairs: [],
          stdio: [{ type: 'pipe', readable: true, writable: false }, { type: 'pipe', readable: false, writable: true }, { type: 'pipe', readable: false, writable: true }],
        });
        const jq = spawnSync('jq', ['-n', '[1, 2] | length']);
        const loader = spawnSync('${LOADER}', ['/opt/tools/curl/bin/curl', '--version']);
        const rawCurl = raw('/opt/tools/curl/bin/curl');
        const rawJq = raw('/opt/tools/jq/bin/jq');
        console.log(JSON.stringify({
          jq: String(jq.stdout),
          byName: spawnSync('curl', ['--version']).error?.code,
          byPath: spawnSync('/opt/tools/curl/bin/curl', ['--version']).error?.code,
          loader: [loader.status, /No such file or directory/.test(String(loader.stderr))],
          rawCurl: rawCurl.error,
          rawJq: [rawJq.status, String(rawJq.output[1]).trim()],
          sh: spawnSync('sh', ['-c', 'echo hi']).error?.code,
          shell: spawnSync('echo hi', { shell: true }).error?.code,
        }));`);
      expect(JSON.parse(data.stdout)).toEqual({
        jq: '2\n',
        byName: 'ENOENT',
        byPath: 'ENOENT',
        loader: [127, true],
        // -ENOENT from the raw binding; the same call runs the allowed jq.
        rawCurl: -2,
        rawJq: [0, 'jq-1.6'],
        sh: 'ENOENT',
        shell: 'ENOENT',
      });
    });
  });

  describe('with allowedBinaries ["jq", "sh"]', () => {
    it('runs sh -c, and curl stays hidden from the shell too', async () => {
      const data = await world.run(
        { language: 'python', code: 'import subprocess\nr = subprocess.run("echo from $0; echo 1 | jq .; curl --version", shell=True, capture_output=True, text=True)\nprint(r.returncode, r.stdout, r.stderr.strip())' },
        { token: withShell },
      );
      expect(data.stdout).toMatch(/^127 from \/bin\/sh\n1\n .*curl: not found\n$/);
    });
  });

  it('lets no file outlive its execution', async () => {
    const write = await world.run({ language: 'python', code: 'open("/tmp/left-behind", "w").write("secret")\nprint("written")' }, { token: jqOnly });
    expect(write.stdout).toBe('written\n');
    for (const language of ['python', 'javascript']) {
      const code =
        language === 'python'
          ? 'import os\nprint(os.path.exists("/tmp/left-behind"), sorted(os.listdir("/tmp")))'
          : 'const fs = require("node:fs"); console.log(fs.existsSync("/tmp/left-behind"), JSON.stringify(fs.readdirSync("/tmp")))';
      const read = await world.run({ language, code }, { token: jqOnly });
      expect(read.stdout).toMatch(/^(False|false) /);
      expect(read.stdout).not.toContain('left-behind');
    }
  });
});
