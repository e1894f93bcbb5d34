# In-sandbox agent of the Python image: PID 2 under docker's init, uid 1000,
# read-only root, no network but loopback. It turns one job header on stdin
# into one program run, exactly as images/node/agent/agent.js does.
#
# Protocol (the executor depends on it exactly; keep it in step with the
# Node agent's, which explains `files`, `outputFiles` and the files record
# in full):
#   stdin  = one JSON line {"v":1,"token":"…","code":"…","args":[…],"env":{…},
#            "files":[…],"outputFiles":{…}} (at most MAX_HEADER_BYTES)
#            then the program's own stdin, streamed through until EOF; fields
#            the agent does not know are ignored, so the header can grow;
#            `packages` (optional, PyPI requirements the server has checked
#            against the policy) are installed from the index on `registry`
#            (a host, default pypi.org) before the program starts;
#            `files` (optional, [{"path":"data/in.csv","content":"<base64>"}])
#            are written into WORK_DIR, the program's cwd, before it starts
#            (directories made as needed, files created new with O_EXCL and
#            O_NOFOLLOW);
#            `outputFiles` (optional, {"match":"<regex>","maxFiles":N,"maxBytes":N})
#            asks for the regular files under WORK_DIR whose relative path
#            the regular expression matches whole, after the program exits;
#   stdout = the program's stdout, untouched, then (with outputFiles) the
#            files record, then the exit record;
#   stderr = the started record, the program's stderr, then the exit record;
#            or at most one `sandbox-agent: …` line when the agent itself
#            fails (exit status 125, no exit record); a failed package
#            install is such a failure, with pip's last output lines after it;
#   status = the program's exit code, or 128 + signal number.
# Records exist only when the header has a `token` (32 hex digits, fresh per
# job; the program never sees it, it is read before the program exists):
#   \0sandbox:<token>:started\n               once the header is read;
#   \0sandbox:<token>:files:<length>\n<JSON>  after the program exits, with
#            outputFiles: <length> bytes of {"files":[{"path","size","content"
#            (base64)}],"truncated":bool}, in path order, within maxFiles and
#            maxBytes, collected after every leftover process is killed,
#            regular files only, never through a symbolic link;
#   \0sandbox:<token>:exit:<code>:<signal>\n  after the program exits, on both
#            streams (the engine copies them over separate pipes, so each says
#            "everything before me has arrived"); code or signal is empty.
# With them the executor answers without waiting for the engine to see the
# container stop (executor/agent-records.ts strips them).
#
# It is on the hot path of every execution: standard library only. The
# program's interpreter is started while the agent waits for its job
# (prelude.py holds it until the job's env and args arrive), and the
# forwarder listens from the start, so neither is on the job's path.

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import stat
import threading
import time

# Mirrors executor/egress.ts; keep the two in step.
PROXY_SOCKET = '/run/egress/proxy.sock'
CA_CERT = '/run/egress/ca.pem'
PROXY_URL = 'http://127.0.0.1:3128'
PROXY_PORT = 3128
PROXY_ENV = {
    'HTTP_PROXY': PROXY_URL,
    'HTTPS_PROXY': PROXY_URL,
    'http_proxy': PROXY_URL,
    'https_proxy': PROXY_URL,
    'NO_PROXY': '',
    'no_proxy': '',
    'NODE_USE_ENV_PROXY': '1',
    'SSL_CERT_FILE': CA_CERT,
    'REQUESTS_CA_BUNDLE': CA_CERT,
    'CURL_CA_BUNDLE': CA_CERT,
    'PIP_CERT': CA_CERT,
}

# Wheels land here, on the program's PYTHONPATH (/tmp is noexec: pure-Python
# wheels work, which is what --only-binary=:all: plus no build step allows).
PACKAGES_DIR = '/tmp/.packages'
DEFAULT_INDEX_HOST = 'pypi.org'
INSTALL_OUTPUT_TAIL = 4096
# Requirements as the server checks them (policies/packages.ts): a second lock
# so nothing reaches pip's command line as an option, a URL or a file.
_REQ = r'[A-Za-z0-9.*+!_-]+'
_OP = r'(?:~=|===|==|!=|<=|>=|<|>)'
PACKAGE_SPEC = re.compile(
    r'^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*'
    r'(?:\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?\s*'
    rf'(?:{_OP}\s*{_REQ}(?:\s*,\s*{_OP}\s*{_REQ})*)?$'
)
HOST = re.compile(r'^[a-z0-9.-]+(?::[0-9]+)?$')
TOKEN = re.compile(r'^[0-9a-f]{32}$')
JOB_DIR = '/tmp/.job'
# The program's cwd, where `files` land and `outputFiles` are collected
# (executor/job-files.ts SANDBOX_WORK_DIR); HOME stays /tmp.
WORK_DIR = '/tmp/work'
MAX_WALK_ENTRIES = 10000
LEFTOVER_WAIT_S = 2.0
JOB_FILE = JOB_DIR + '/main.py'
PRELUDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'prelude.py')
# What Python reads only while it starts: a job setting any of these gets an
# interpreter started for it, not the one waiting in the prelude.
STARTUP_ENV = re.compile(r'^(?:PYTHON|LC_)|^(?:LANG|LANGUAGE)$')
AGENT_FAILURE = 125
# The server caps code at 1 MiB, which JSON escaping can grow several times
# over, and uploads at 24 MiB (32 in base64): headroom, never unbounded memory.
MAX_HEADER_BYTES = 64 * 1024 * 1024
CHUNK = 65536
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)

child = None
# The program's interpreter, started ahead of its job, and the pipe it waits on.
waiting = None


def fail(message):
    os.write(2, f'sandbox-agent: {message}\n'.encode('utf-8', 'replace'))
    os._exit(AGENT_FAILURE)


def read_header():
    """Returns (header bytes, program stdin already read, whether stdin has ended)."""
    chunks = []
    size = 0
    while True:
        chunk = os.read(0, CHUNK)
        if not chunk:
            # A header without its newline right before EOF: the program gets an empty stdin.
            if size == 0:
                fail('no job header on stdin')
            return b''.join(chunks), b'', True
        newline = chunk.find(b'\n')
        if newline == -1:
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_HEADER_BYTES:
                fail(f'job header exceeds {MAX_HEADER_BYTES} bytes')
            continue
        chunks.append(chunk[:newline])
        return b''.join(chunks), chunk[newline + 1:], False


def parse_header(raw):
    try:
        job = json.loads(raw)
    except ValueError as err:
        fail(f'job header is not valid JSON ({err})')
    if not isinstance(job, dict):
        fail('job header must be a JSON object')
    if job.get('v') != 1:
        fail(f'unsupported job header version {json.dumps(job.get("v"))}')
    code = job.get('code')
    if not isinstance(code, str):
        fail('job header: "code" must be a string')
    args = job.get('args', [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        fail('job header: "args" must be an array of strings')
    env = job.get('env', {})
    if not isinstance(env, dict):
        fail('job header: "env" must be an object')
    for key, value in env.items():
        if not isinstance(value, str):
            fail(f'job header: env {json.dumps(key)} must be a string')
    packages = job.get('packages', [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and PACKAGE_SPEC.match(p) for p in packages):
        fail('job header: "packages" must be an array of PyPI requirements')
    registry = job.get('registry') or DEFAULT_INDEX_HOST
    if not isinstance(registry, str) or not HOST.match(registry):
        fail('job header: "registry" must be a host name')
    token = job.get('token')
    if token is not None and (not isinstance(token, str) or not TOKEN.match(token)):
        fail('job header: "token" must be 32 hex digits')
    files = job.get('files', [])
    if not isinstance(files, list):
        fail('job header: "files" must be an array')
    for index, file in enumerate(files):
        if not isinstance(file, dict) or not isinstance(file.get('content'), str):
            fail(f'job header: files[{index}] must be {{path, content}}')
        if not is_relative_path(file.get('path')):
            fail(f'job header: files[{index}].path must be a relative path inside the working directory')
    output_files = parse_output_files(job.get('outputFiles'))
    return code, args, env, packages, registry, token, files, output_files


def is_relative_path(path):
    """Second lock behind the server's check (executor/job-files.ts)."""
    if not isinstance(path, str) or path == '' or path.startswith('/') or '\0' in path:
        return False
    return all(segment not in ('', '.', '..') for segment in path.split('/'))


def parse_output_files(spec):
    if spec is None:
        return None

    def count(n):
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    if not isinstance(spec, dict) or not isinstance(spec.get('match'), str) or not count(spec.get('maxFiles')) or not count(spec.get('maxBytes')):
        fail('job header: "outputFiles" must be {match, maxFiles, maxBytes}')
    try:
        match = re.compile(spec['match'])
    except re.error as err:
        fail(f'job header: outputFiles.match is not a regular expression ({err})')
    return match, spec['maxFiles'], spec['maxBytes']


def write_input_files(files):
    """The job's files, into a working directory nobody has touched yet:
    each directory made here (an existing one must be a real directory),
    each file created new and never through a link."""
    for index, file in enumerate(files):
        path = file['path']
        try:
            directory = WORK_DIR
            for segment in path.split('/')[:-1]:
                directory = f'{directory}/{segment}'
                try:
                    os.mkdir(directory, 0o755)
                except FileExistsError:
                    if not stat.S_ISDIR(os.lstat(directory).st_mode):
                        raise
            data = base64.b64decode(file['content'], validate=True)
            fd = os.open(f'{WORK_DIR}/{path}', os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        except (OSError, ValueError) as err:
            fail(f'cannot write files[{index}] {json.dumps(path)} ({getattr(err, "strerror", None) or err})')


def others_alive():
    """True while a process other than init (tini) and this agent lives; a zombie only waits for init."""
    me = os.getpid()
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open(f'/proc/{name}/stat', 'rb') as file:
                line = file.read()
        except OSError:
            continue
        state = line[line.rfind(b')') + 2:line.rfind(b')') + 3]
        if state not in (b'Z', b'X'):
            return True
    return False


def end_leftovers():
    """kill(-1) reaches every process of our uid but init and ourselves: the
    program's leftovers, which must not touch the directory or the stream
    while we collect. The forwarder is a thread of this process and lives on."""
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        if not others_alive() or time.monotonic() > deadline:
            return
        time.sleep(0.005)


TOO_LARGE = object()


def read_contained(path, room):
    """One regular file under WORK_DIR; None when it is not one (any more) or
    is reached through a link; TOO_LARGE past `room` bytes."""
    full = f'{WORK_DIR}/{path}'
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        # The kernel's own name for what was opened: a directory on the way
        # swapped for a link shows here as a path outside WORK_DIR.
        if os.readlink(f'/proc/self/fd/{fd}') != full:
            return None
        if info.st_size > room:
            return TOO_LARGE
        chunks = []
        left = info.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b''.join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def collect_output_files(match, max_files, max_bytes):
    """The regular files under WORK_DIR whose path `match`es whole, in path order, within the caps."""
    try:
        if not stat.S_ISDIR(os.lstat(WORK_DIR).st_mode):
            return {'files': [], 'truncated': False}
    except OSError:
        return {'files': [], 'truncated': False}
    matched = []
    seen = 0
    truncated = False
    pending = ['']
    while pending:
        relative = pending.pop()
        try:
            entries = list(os.scandir(f'{WORK_DIR}/{relative}' if relative else WORK_DIR))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                truncated = True
                pending = []
                break
            path = f'{relative}/{entry.name}' if relative else entry.name
            try:
                path.encode('utf-8')
            except UnicodeEncodeError:
                continue  # a name that is not UTF-8 cannot be reported faithfully
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_file(follow_symlinks=False) and match.fullmatch(path):
                    matched.append(path)
            except OSError:
                continue
    matched.sort()
    files = []
    used = 0
    for path in matched:
        if len(files) >= max_files:
            truncated = True
            break
        data = read_contained(path, max_bytes - used)
        if data is None:
            continue
        if data is TOO_LARGE:
            truncated = True
            continue
        used += len(data)
        files.append({'path': path, 'size': len(data), 'content': base64.b64encode(data).decode('ascii')})
    return {'files': files, 'truncated': truncated}


def write_files_record(token, output_files):
    end_leftovers()
    payload = json.dumps(collect_output_files(*output_files), ensure_ascii=False).encode('utf-8')
    try:
        write_all(1, f'\0sandbox:{token}:files:{len(payload)}\n'.encode('ascii') + payload)
    except OSError:
        pass


def install_packages(packages, registry, base_env):
    """pip through the egress proxy, whose package rules decide what may be
    fetched: wheels only (no build step runs code), no cache, and not the
    program's env, which must not be able to reconfigure pip."""
    env = {**base_env, 'PIP_BREAK_SYSTEM_PACKAGES': '1', 'PIP_NO_INPUT': '1', 'PIP_DISABLE_PIP_VERSION_CHECK': '1'}
    command = [
        sys.executable, '-m', 'pip', 'install', '--quiet', '--no-cache-dir', '--only-binary=:all:',
        '--no-warn-script-location', '--target', PACKAGES_DIR,
        '--index-url', f'https://{registry}/simple/', '--', *packages,
    ]
    try:
        done = subprocess.run(command, cwd='/tmp', env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    except OSError as err:
        fail(f'package install failed: cannot start pip ({err.strerror or err})')
    shutil.rmtree('/tmp/.cache', ignore_errors=True)
    if done.returncode != 0:
        tail = done.stdout.decode('utf-8', 'replace')[-INSTALL_OUTPUT_TAIL:].rstrip()
        how = f'was killed by signal {-done.returncode}' if done.returncode < 0 else f'exited {done.returncode}'
        fail(f'package install failed: pip {how}\n{tail}')


def listen_forwarder():
    # Bound before the program starts, so its first connection is never
    # refused; connections wait in the backlog until the loop is up.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(('127.0.0.1', PROXY_PORT))
        listener.listen(512)
    except OSError as err:
        fail(f'egress forwarder: {err.strerror or err}')
    return listener


def serve_forwarder(listener):
    """127.0.0.1:3128 → the per-sandbox Unix socket, one event loop for every connection.

    The socket is the sandbox's identity at the proxy; when it is absent (no
    egress session) the connection is dropped, which clients see as a
    refused proxy.
    """
    import asyncio

    # The loop keeps only weak references to tasks, and a stream the program
    # has half-closed is no longer watched by the loop either: without
    # these strong references a connection waiting for its answer could be
    # collected mid-flight, closing the program's socket early.
    running = set()

    def keep(task):
        running.add(task)
        task.add_done_callback(running.discard)
        return task

    async def pump(reader, writer):
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        # Half-close: a client that shuts down its sending side still gets
        # the whole response; each side ends only when its source did.
        if writer.can_write_eof():
            writer.write_eof()

    async def handle(client_reader, client_writer):
        keep(asyncio.current_task())
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(PROXY_SOCKET)
        except OSError:
            client_writer.transport.abort()
            return
        both = [
            keep(asyncio.ensure_future(pump(client_reader, upstream_writer))),
            keep(asyncio.ensure_future(pump(upstream_reader, client_writer))),
        ]
        done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
        if any(not task.cancelled() and task.exception() is not None for task in done):
            # A reset on either side ends both at once, as a dropped tunnel should.
            client_writer.transport.abort()
            upstream_writer.transport.abort()
        await asyncio.gather(*both, return_exceptions=True)
        client_writer.close()
        upstream_writer.close()

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        server = await asyncio.start_server(handle, sock=listener, limit=CHUNK)
        await server.serve_forever()

    try:
        asyncio.run(main())
    except BaseException as err:  # noqa: BLE001 - any end of the forwarder is the agent's failure
        fail(f'egress forwarder: {err}')


def forbid_memfd():
    """Refuses memfd_create and memfd_secret to the program (EPERM).

    Every writable place in the sandbox is noexec, so a program cannot run
    a binary it brought, except from an anonymous memory file, which no
    mount option governs: os.memfd_create and exec of /proc/self/fd/N. A
    seccomp filter, stacked on the engine's and inherited by the program,
    closes that. Both x86 system call tables are covered, since ctypes can
    reach the 32-bit one (int 0x80) too.
    """
    import ctypes

    class SockFilter(ctypes.Structure):
        _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(SockFilter))]

    ld_abs, jeq, and_k, ret = 0x20, 0x15, 0x54, 0x06
    arch_i386, x32_bit = 0x40000003, 0x40000000
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    program = [
        (ld_abs, 0, 0, 4),                 # 0: arch
        (jeq, 0, 3, arch_i386),            # 1: i386 → 2, else → 5
        (ld_abs, 0, 0, 0),                 # 2: nr
        (jeq, 6, 0, 356),                  # 3: memfd_create (i386) → deny
        (jeq, 5, 4, 447),                  # 4: memfd_secret → deny, else allow
        (ld_abs, 0, 0, 0),                 # 5: nr
        (and_k, 0, 0, 0xFFFFFFFF ^ x32_bit),  # 6: the x32 table is the x86-64 one plus a bit
        (jeq, 2, 0, 319),                  # 7: memfd_create → deny
        (jeq, 1, 0, 447),                  # 8: memfd_secret → deny
        (ret, 0, 0, allow),                # 9
        (ret, 0, 0, deny),                 # 10
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*insn) for insn in program])
    fprog = SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        fail(f'cannot install the seccomp filter ({os.strerror(ctypes.get_errno())})')


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f'SIG{signum}'


def write_record(token, body, fds):
    record = f'\0sandbox:{token}:{body}\n'.encode('ascii')
    for fd in fds:
        try:
            write_all(fd, record)
        except OSError:
            pass


def feed_stdin(first, ended):
    """The program's stdin: what came after the header, then the rest until EOF."""
    fd = child.stdin.fileno()
    try:
        if first:
            write_all(fd, first)
        while not ended:
            data = os.read(0, CHUNK)
            if not data:
                break
            write_all(fd, data)
    except OSError:
        # A program that exits without reading its stdin: its business, not ours.
        pass
    finally:
        try:
            child.stdin.close()
        except OSError:
            pass


def on_signal(signum, _frame):
    # docker stop → tini → us: pass the signal on and report the program's fate.
    if child is not None and child.poll() is None:
        child.send_signal(signum)
    else:
        os._exit(128 + signum)


def program_env():
    return {'PATH': '/usr/local/bin', 'HOME': '/tmp', 'LANG': 'C.UTF-8', 'PYTHONUNBUFFERED': '1', **PROXY_ENV}


def start_waiting_program():
    global waiting
    job_read, job_write = os.pipe()
    try:
        program = subprocess.Popen(
            [sys.executable, PRELUDE, str(job_read), JOB_FILE],
            cwd=WORK_DIR, env=program_env(), stdin=subprocess.PIPE, pass_fds=(job_read,),
        )
    except OSError:
        os.close(job_write)
        return
    finally:
        os.close(job_read)
    waiting = (program, job_write)


def program_for(args, job_env, packages):
    """The waiting interpreter when it is still there and the job needs
    nothing it reads at start-up; otherwise a fresh one."""
    ready = waiting
    fits = ready is not None and ready[0].poll() is None and not packages and not any(STARTUP_ENV.match(name) for name in job_env)
    if fits:
        program, job_write = ready
        try:
            write_all(job_write, json.dumps({'env': job_env, 'args': args}).encode('ascii') + b'\n')
            os.close(job_write)
            return program
        except OSError:
            pass
    if ready is not None:
        ready[0].kill()
        os.close(ready[1])
    env = program_env()
    env.update(job_env)
    if packages:
        env['PYTHONPATH'] = os.pathsep.join(p for p in (job_env.get('PYTHONPATH'), PACKAGES_DIR) if p)
    try:
        return subprocess.Popen([sys.executable, JOB_FILE, *args], cwd=WORK_DIR, env=env, stdin=subprocess.PIPE)
    except OSError as err:
        fail(f'cannot start the program ({err.strerror or err})')


def main():
    global child
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, on_signal)
    # Before anything runs in the sandbox: the filter is inherited by every
    # process started from here on, the waiting interpreter included.
    forbid_memfd()
    # The forwarder only dials the proxy socket per connection, so it may
    # listen before the egress session exists.
    listener = listen_forwarder()
    threading.Thread(target=serve_forwarder, args=(listener,), daemon=True).start()
    # The working directory exists before the program's interpreter, which starts in it.
    try:
        os.makedirs(WORK_DIR, mode=0o755, exist_ok=True)
    except OSError as err:
        fail(f'cannot make the working directory {WORK_DIR} ({err.strerror or err})')
    start_waiting_program()
    raw, rest, ended = read_header()
    code, args, job_env, packages, registry, token, files, output_files = parse_header(raw)
    if token is not None:
        write_record(token, 'started', (2,))
    try:
        os.makedirs(JOB_DIR, mode=0o700, exist_ok=True)
        with open(JOB_FILE, 'w', encoding='utf-8', errors='surrogatepass') as file:
            file.write(code)
    except OSError as err:
        fail(f'cannot write the program to {JOB_FILE} ({err.strerror or err})')
    write_input_files(files)
    if packages:
        install_packages(packages, registry, program_env())
    child = program_for(args, job_env, packages)
    threading.Thread(target=feed_stdin, args=(rest, ended), daemon=True).start()
    status = child.wait()
    if token is not None:
        if output_files is not None:
            write_files_record(token, output_files)
        exit_fields = f':{signal_name(-status)}' if status < 0 else f'{status}:'
        write_record(token, f'exit:{exit_fields}', (1, 2))
    os._exit(128 - status if status < 0 else status)


if __name__ == '__main__':
    try:
        main()
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - anything unexpected is the agent's failure, never the program's status
        fail(f'{type(err).__name__}: {err}')
