"""A warm ``vaekit`` for tests that run the CLI in other processes.

``vaekit`` imports PyTorch, scikit-learn and pandas, ~2.3 s of every process on a 2-core machine, which for the
~60 commands the suite runs in subprocesses was a third of its CPU time. So one server process imports
``vaekit.cli.main`` once and forks a fresh child per command: the child gets the command's argv, working folder,
environment and stdin/stdout/stderr (passed over a unix socket), runs the console script's own ``main()``, and its
exit status is the command's. Each child is its own process (nothing it does reaches the server or a later
command); its random generators (Python's, NumPy's global one, PyTorch's default one) are re-seeded from the OS
right after the fork, so a command that forgot to seed differs from run to run, as a fresh process's NumPy would.

The clients are stdlib-only scripts started with ``python -S`` (~20 ms): ``bin/vaekit`` runs a command,
``bin/python`` runs ``python -c CODE``, ``python -m MODULE`` or ``python SCRIPT`` the same way (any other form execs
the real interpreter), so that the README's Python examples start warm too. Tests that need the real entry points,
a kill -9 of the training process itself, or another interpreter's start do not use this.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

SERVER = textwrap.dedent('''
    import json, os, random, runpy, socket, sys, traceback
    import numpy as np
    import torch
    import vaekit.cli.main as cli
    cli.preload()  # the expensive imports (the commands' PyTorch, pandas ...), paid once

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(sys.argv[1])
    sock.listen(8)
    print("ready", flush=True)


    def python(args):
        """What `python ARGS` would do, for -c CODE, -m MODULE and a script; anything else: the real interpreter."""
        if args[:1] == ["-c"] and len(args) > 1:
            sys.argv = ["-c", *args[2:]]
            sys.path[0] = ""
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        elif args[:1] == ["-m"] and len(args) > 1:
            sys.argv = [args[1], *args[2:]]
            sys.path[0] = os.getcwd()
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args and not args[0].startswith("-"):
            sys.argv = list(args)
            sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
            runpy.run_path(args[0], run_name="__main__")
        else:
            os.execv(sys.executable, [sys.executable, *args])


    while True:
        conn, _ = sock.accept()
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        size = int.from_bytes(data[:8], "big")
        while len(data) - 8 < size:
            data += conn.recv(1 << 20)
        req = json.loads(data[8:])
        pid = os.fork()
        if pid == 0:
            sock.close(); conn.close()
            os.setpgid(0, 0)  # its own group: a client's timeout can stop it and whatever it started
            random.seed(); np.random.seed(); torch.seed()  # as unseeded as a new process (see the module docstring)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            try:
                if req["argv"][0] == "python":
                    rc = python(req["argv"][1:])
                else:
                    sys.argv = req["argv"]
                    rc = cli.main()
            except SystemExit as e:
                rc = e.code
            except BaseException:
                traceback.print_exc()
                rc = 1
            if rc is not None and not isinstance(rc, int):
                print(rc, file=sys.stderr)
                rc = 1
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(rc or 0)
        try:
            os.setpgid(pid, pid)  # also from this side (whichever runs first): the group exists before the client hears
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        conn.sendall(pid.to_bytes(4, "big"))
        _, status = os.waitpid(pid, 0)
        conn.sendall(os.waitstatus_to_exitcode(status).to_bytes(4, "big", signed=True))
        conn.close()
''')

CLIENT = textwrap.dedent('''\
    #!{python} -S
    import json, os, signal, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({sock!r})
    req = json.dumps({{"argv": [{name!r}, *sys.argv[1:]], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
    socket.send_fds(s, [len(req).to_bytes(8, "big") + req], [0, 1, 2])
    pid = int.from_bytes(s.recv(4), "big")

    def stop(signum, frame):  # a SIGTERM or Ctrl-C of this client stops the command too
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = s.recv(4)
    if len(rc) != 4:
        sys.exit("vaekit (tests/warm_cli.py): the warm server went away")
    rc = int.from_bytes(rc, "big", signed=True)
    sys.exit(rc if rc >= 0 else 128 - rc)
''')


class WarmCli:
    """One warm server; ``run(args)`` is ``subprocess.run(["vaekit", *args])`` at a fraction of the start-up cost."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vx"))  # short: a unix socket path has at most 107 bytes
        sock = self.folder / "s"
        (self.folder / "server.py").write_text(SERVER)
        self.server = subprocess.Popen([sys.executable, str(self.folder / "server.py"), str(sock)],
                                       env=dict(env if env is not None else os.environ), cwd=self.folder,
                                       stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.server.stdout is not None
        if self.server.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the warm vaekit server did not start")
        self.bin = self.folder / "bin"
        self.bin.mkdir()
        for name in ("vaekit", "python"):
            (self.bin / name).write_text(CLIENT.format(python=sys.executable, sock=str(sock), name=name))
            (self.bin / name).chmod(0o755)
        self.client = self.bin / "vaekit"

    def run(self, args: Sequence[object], *, env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
            timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``vaekit ARGS`` in a forked child → its exit code, stdout and stderr (text)."""
        return subprocess.run([sys.executable, "-S", str(self.client), *map(str, args)], capture_output=True,
                              text=True, env=dict(env) if env is not None else None, cwd=cwd, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def close(self) -> None:
        os.killpg(self.server.pid, signal.SIGKILL)  # the server's own session: it and any child still running
        self.server.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
