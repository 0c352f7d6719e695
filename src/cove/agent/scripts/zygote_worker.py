"""The zygote: a pre-started, clean `python3 -u` that forks stateless python runs.

Started by the agent (see `zygote.py`) as `python3 -u zygote_worker.py FD`
with the environment every python `code_run` shares; FD is its end of a
private SOCK_SEQPACKET socketpair. It does nothing until asked, so each
forked run starts from the state a fresh `python3 -u main.py` has after
its own start-up, and nothing one run does can reach the next.

It must not import anything `python3 -c pass` does not (its children would
inherit it): only modules already loaded at start, plus the built-in
`_socket` (no file is searched or read), which every child drops from
`sys.modules` again. Hence no `from __future__` import here either.

Channel (fields joined by NUL bytes, one message each):
  agent -> zygote  run_id, cgroup_procs_file, cwd, script, argc, *argv, *env ("K=V"),
                   with the run's stdout and stderr pipes attached (SCM_RIGHTS)
  zygote -> agent  "ready", *site_dirs   once, after start-up
                   "pid", run_id, pid      the run's process exists
                   "err", run_id, message  it could not be made

Per run the zygote forks a short-lived intermediate, which joins the run's
cgroup (so everything after it is born inside it), forks the run's process,
reports that pid and exits. The run's process is thereby orphaned to the
agent, which reaps it like any command it spawned itself; see `zygote.py`
for why that is race-free.
"""

import sys

# What a fresh interpreter has too; anything else is the zygote's own.
CLEAN_MODULES = frozenset(sys.modules)
CLEAN_PATH_CACHE = frozenset(sys.path_importer_cache)

import _socket  # noqa: E402
import os  # noqa: E402

MAX_REQUEST = 128 * 1024
FDS_SPACE = _socket.CMSG_SPACE(4 * 4)


def report(channel: _socket.socket, *fields: bytes) -> None:
    channel.send(b"\0".join(fields))


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(memoryview(data)[: len(data) - len(data) % 4].cast("i"))
    return fds


def reap_intermediates() -> None:
    """The zygote's only children are intermediates, each gone right after its fork."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(channel: _socket.socket) -> tuple[list[bytes], list[int]]:
    """Fork a run per request until the agent hangs up; returns only in a run's process."""
    while True:
        reap_intermediates()
        try:
            msg, ancdata, flags, _ = channel.recvmsg(MAX_REQUEST + 1, FDS_SPACE)
        except ConnectionError:
            os._exit(0)
        fds = received_fds(ancdata)
        if not msg:
            os._exit(0)  # the agent closed the channel
        fields = msg.split(b"\0")
        truncated = flags & (_socket.MSG_TRUNC | _socket.MSG_CTRUNC)
        if truncated or len(fds) != 2 or len(fields) < 5 or not fields[4].isdigit():
            for fd in fds:
                os.close(fd)
            report(channel, b"err", fields[0], b"malformed request")
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -1
            report(channel, b"err", fields[0], os.fsencode(str(exc)))
        if pid == 0:
            return fields, fds
        for fd in fds:
            os.close(fd)


def intermediate(channel: _socket.socket, run_id: bytes, procs_file: bytes) -> None:
    """Join the run's cgroup, fork the run, report it, exit; returns only in the run."""
    try:
        if procs_file:
            join_cgroup(procs_file)
        pid = os.fork()
        if pid == 0:
            return
        report(channel, b"pid", run_id, b"%d" % pid)
    except BaseException as exc:  # never fall back into the serve loop
        try:
            report(channel, b"err", run_id, os.fsencode(str(exc) or type(exc).__name__))
        finally:
            os._exit(1)
    os._exit(0)


def join_cgroup(procs_file: bytes) -> None:
    """Like cgroups.join_cgroups for a spawned command: a failure leaves it where it is."""
    try:
        fd = os.open(procs_file, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:
        pass


def become_run(fields: list[bytes], fds: list[int], channel: _socket.socket) -> dict[str, object]:
    """Turn this fork into what `python3 -u SCRIPT *argv` would be; returns its globals."""
    os.setsid()
    channel.close()
    for target, fd in zip((1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    _, _, cwd, script_b, argc, *rest = fields
    count = int(argc)
    # os.environ and os.environb share one mapping; each change also reaches
    # the C environ, which subprocesses and exec inherit.
    os.environ.clear()
    for item in rest[count:]:
        key, _, value = item.partition(b"=")
        os.environb[key] = value
    os.chdir(cwd)
    script = os.fsdecode(script_b)
    argv = [os.fsdecode(a) for a in rest[:count]]
    sys.argv = [script, *argv]
    sys.orig_argv = [sys.orig_argv[0], "-u", script, *argv]
    sys.path[0] = os.path.dirname(script)
    for name in set(sys.modules) - CLEAN_MODULES:
        del sys.modules[name]
    for entry in set(sys.path_importer_cache) - CLEAN_PATH_CACHE:
        del sys.path_importer_cache[entry]
    main = type(sys)("__main__")
    loader = sys.modules["_frozen_importlib_external"].SourceFileLoader
    main.__dict__.update(
        __file__=script,
        __cached__=None,
        __loader__=loader("__main__", script),
        __builtins__=sys.modules["builtins"],
        __annotations__={},
    )
    sys.modules["__main__"] = main
    # The chart capture's sitecustomize (agent/scripts/boot/sitecustomize.py) ran at the
    # zygote's start without a chart directory; this run has one.
    install = getattr(sys.modules.get("sitecustomize"), "cove_install_chart_hook", None)
    if install is not None:
        install()
    return main.__dict__


def uncaught(exc: BaseException) -> int:
    """Print like the interpreter does, without the zygote's frame; the exit code."""
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None  # that frame is the zygote's
    exc.with_traceback(tb)
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    sys.excepthook(type(exc), exc, tb)
    # An uncaught KeyboardInterrupt ends python3 by SIGINT, which the agent
    # reports as 128 + 2; the exit code says the same.
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def site_dirs() -> list[bytes]:
    """Where `site` looked for packages and .pth files when this interpreter started."""
    site = sys.modules.get("site")
    if site is None:
        return []
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        dirs.append(site.USER_SITE)
    return [os.fsencode(d) for d in dirs]


if __name__ == "__main__":
    _channel = _socket.socket(fileno=int(sys.argv[1]))
    report(_channel, b"ready", *site_dirs())
    _fields, _fds = serve(_channel)
    intermediate(_channel, _fields[0], _fields[1])
    _globals = become_run(_fields, _fds, _channel)
    del _channel, _fields, _fds
    # The user's code runs here, at the top level, so that only one frame of
    # the zygote lies below its own (Python itself has none).
    try:
        with open(_globals["__file__"], "rb") as _f:  # type: ignore[call-overload]
            _source = _f.read()
        exec(compile(_source, _globals["__file__"], "exec", dont_inherit=True), _globals)  # type: ignore[call-overload]
    except SystemExit:
        raise
    except BaseException as _exc:  # as the interpreter would, minus the zygote's frame
        sys.exit(uncaught(_exc))
