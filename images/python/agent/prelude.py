# The program's Python process, started by the agent before the job arrives
# so that the interpreter's own start-up is off the job's path. It waits here
# until the agent writes the job's env and args as one JSON line to the fd
# named in argv (the program is already at its path by then), then runs the
# program as `python3 main.py args` would: as __main__, with that argv and
# sys.path[0], SystemExit as usual, and an uncaught exception reported by
# sys.excepthook with only the program's own frames, exit status 1.
#
# A job whose env Python reads only at start-up (PYTHON*, LANG, LC_*) or
# that installs packages (they go on PYTHONPATH) never comes here: the agent
# starts a fresh interpreter for it instead.

# Imported while the sandbox waits, not once the job is here: json to read
# it, runpy to run the program, and pkgutil, which run_path imports on first use.
import json
import os
import pkgutil  # noqa: F401
import runpy
import sys


def _read_job(fd):
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            # The agent went away without a job: nothing to run.
            os._exit(0)
        newline = data.find(b'\n')
        if newline != -1:
            chunks.append(data[:newline])
            break
        chunks.append(data)
    os.close(fd)
    return json.loads(b''.join(chunks))


def _run(script):
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - reported as the interpreter would, then status 1
        tb = err.__traceback__
        # Drop this file's and runpy's frames: the program's begin at its own file.
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        # The default hook prints the exception's own traceback, not the one it is handed.
        err.__traceback__ = tb
        sys.excepthook(type(err), err, tb)
        if isinstance(err, KeyboardInterrupt):
            # As the interpreter does: die of the signal, so the status says so.
            import signal

            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


def _main():
    fd, script = int(sys.argv[1]), sys.argv[2]
    job = _read_job(fd)
    os.environ.update(job['env'])
    sys.argv[:] = [script, *job['args']]
    sys.path[0] = os.path.dirname(script)
    _run(script)


_main()
