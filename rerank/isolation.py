"""How sandboxed code is cut off from the machine: bubblewrap namespaces and a pids cgroup.

The tool is bubblewrap (``bwrap``): the small, audited sandbox Flatpak is built on, packaged by
every major distribution, that sets up Linux namespaces without a daemon or setuid helper.
Each sandboxed child gets

- its own user, PID, mount, network, IPC, UTS and cgroup namespaces, no capabilities and no
  way to make more user namespaces (``--disable-userns``); ``--die-with-parent`` and the PID
  namespace end every process it started when its run ends;
- a root file system of its own holding only a read-only view of what Python needs: the
  interpreter, its standard library (installed packages hidden), the system's shared
  libraries; no ``/etc`` (but ``ld.so.cache``), ``/home``, ``/root``, ``/run``, ``/var``,
  ``/usr/bin``, checkout or host ``/tmp``; then the root and ``/dev`` are remounted read-only;
- an empty private ``/tmp`` (a tmpfs of a fixed total size) as its working directory;
- no network: a new network namespace holds only its own loopback device, and abstract and
  path ``AF_UNIX`` sockets of the host are out of reach (other network namespace, unmounted);
- a bound on its processes and threads: ``RLIMIT_NPROC``, set inside, binds a non-root user;
  when rerank runs as root (which ``RLIMIT_NPROC`` does not bind, even inside a user
  namespace mapped to root) each run gets its own ``pids`` cgroup with ``pids.max``.

Where one of these cannot be had, :func:`isolation_problem` says why and the sandbox refuses to
run code unless the caller opted into running it unisolated (``unsafe_exec``).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache

from .errors import SandboxError

PROCESS_LIMIT = 32
"""Most processes and threads a sandboxed run may have at once (bwrap's own two included)."""
SANDBOX_UID = 65534
"""The user id the code runs as inside its user namespace (``nobody``)."""
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
UNSAFE_HINT = "or pass --unsafe-exec (Python: unsafe_exec=True) to run candidate code without isolation"

_CGROUP_JOIN = 'echo $$ > "$0" && exec "$@"'
_runs = itertools.count()


@lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """Why candidate code cannot be isolated on this machine, or None when it can.

    Checked once per process: bwrap must be installed, able to build the whole sandbox (a trial
    run of the interpreter in it), and, as root, a pids cgroup must be writable.
    """
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces, and this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return f"bubblewrap is not installed (no bwrap on PATH): {INSTALL_HINT}"
    if os.geteuid() == 0 and pids_cgroup_root() is None:
        return ("rerank runs as root, which RLIMIT_NPROC does not bind, and no writable cgroup v1 pids "
                "hierarchy was found to bound the code's processes: run rerank as an unprivileged user")
    try:
        with ProcessCap() as cap:
            trial = subprocess.run(
                cap.command(bwrap_command([sys.executable, "-I", "-S", "-c", "pass"], files={}, tmp_bytes=1 << 20)),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=30, env=host_env(), check=False,
            )
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
        return f"bubblewrap could not be started: {exc}"
    if trial.returncode != 0:
        said = trial.stderr.decode("utf-8", "replace").strip()[:300] or f"exit status {trial.returncode}"
        return (f"bubblewrap cannot build the sandbox here ({said}): it needs bubblewrap 0.8 or later and "
                f"user namespaces allowed (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, "
                f"kernel.apparmor_restrict_unprivileged_userns=0)")
    return None


def require_isolation(unsafe_exec: bool) -> bool:
    """True when code can run isolated; False when it cannot but ``unsafe_exec`` allows it anyway.

    Raises :class:`SandboxError` naming the fix when isolation is missing and not waived.
    """
    problem = isolation_problem()
    if problem is None:
        return True
    if unsafe_exec:
        return False
    raise SandboxError(f"refusing to run candidate code without isolation: {problem}; {UNSAFE_HINT}")


def host_env() -> dict[str, str]:
    """The environment bwrap itself starts with (the code inside gets a cleared one)."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def interpreter() -> str:
    """The real Python binary behind ``sys.executable`` (a virtualenv's python is a symlink to it)."""
    return os.path.realpath(sys.executable)


def bwrap_command(argv: Sequence[str], *, files: Mapping[str, int], tmp_bytes: int) -> list[str]:
    """The bwrap command line that runs ``argv`` (its first item the interpreter) in a fresh sandbox.

    ``files`` maps a path inside the sandbox to an open file descriptor whose contents bwrap
    copies there, read-only. ``/tmp`` is an empty tmpfs of ``tmp_bytes`` and the working directory.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(f"bubblewrap is not installed (no bwrap on PATH): {INSTALL_HINT}")
    command = [
        bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        *_python_view(),
    ]
    for dest, fd in files.items():
        command += ["--ro-bind-data", str(fd), dest]
    command += [
        "--dev", "/dev", "--proc", "/proc", "--size", str(int(tmp_bytes)), "--tmpfs", "/tmp",
        "--remount-ro", "/dev", "--remount-ro", "/",
        "--chdir", "/tmp", "--clearenv",
        "--setenv", "LANG", "C.UTF-8", "--setenv", "LC_ALL", "C.UTF-8", "--setenv", "HOME", "/tmp",
        "--setenv", "TMPDIR", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
        "--", interpreter(), *argv[1:],
    ]
    return command


@lru_cache(maxsize=1)
def _python_view() -> tuple[str, ...]:
    """bwrap options for a read-only view of the interpreter, its standard library and system libraries."""
    binds: list[str] = []
    for path in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            binds += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            binds += ["--ro-bind", path, path]
    if os.path.exists("/etc/ld.so.cache"):
        binds += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}
    stdlib = {os.path.realpath(sysconfig.get_path(name, vars=base)) for name in ("stdlib", "platstdlib")}
    shown = [interpreter(), *sorted(stdlib)]
    library = sysconfig.get_config_var("INSTSONAME")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and library:
        shown.append(os.path.realpath(os.path.join(sysconfig.get_config_var("LIBDIR") or "", library)))
    for path in shown:
        if os.path.exists(path) and not _under(path, ("/usr/lib", "/usr/lib64", "/lib", "/lib64")):
            binds += ["--ro-bind", path, path]
    packages = {sysconfig.get_path(name, vars=base) for name in ("purelib", "platlib")}
    packages.update(site.getsitepackages([sys.base_prefix]))
    for path in sorted(os.path.realpath(p) for p in packages):
        if os.path.isdir(path) and _under(path, ["/usr/lib", "/usr/lib64", "/lib", "/lib64", *stdlib]):
            binds += ["--tmpfs", path]  # installed packages stay out of sight
    return tuple(binds)


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


# --- A pids cgroup per run, where rerank runs as root ---------------------------------------


@lru_cache(maxsize=1)
def pids_cgroup_root() -> str | None:
    """This process's own cgroup v1 ``pids`` directory when it can hold child cgroups, else None."""
    mount = own = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if " - cgroup " in line and "pids" in fields[-1].split(","):
                    mount = fields[4]
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "pids" in controllers.split(","):
                    own = path
    except (OSError, ValueError):
        return None
    if mount is None or own is None:
        return None
    root = os.path.join(mount, own.lstrip("/"))
    probe = os.path.join(root, f"rerank-probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError:
        return None
    _remove_orphans(root)
    return root


def _remove_orphans(root: str) -> None:
    """Remove the run cgroups a rerank process killed before it could clean up left behind."""
    for name in os.listdir(root):
        parts = name.split("-")
        if name.startswith("rerank-sandbox-") and len(parts) > 2 and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                _remove(os.path.join(root, name))
            except OSError:
                continue


class ProcessCap:
    """A pids cgroup for one run (as root only; a no-op otherwise): a process limit and a kill switch.

    ``command`` prefixes a command line so its first process joins the cgroup before anything
    else runs; leaving the context SIGKILLs whatever is still in it and removes it.
    """

    def __init__(self, limit: int = PROCESS_LIMIT) -> None:
        self.limit = limit
        self.path: str | None = None

    def __enter__(self) -> ProcessCap:  # noqa: PYI034 - Self needs Python 3.11
        if os.geteuid() != 0:
            return self
        root = pids_cgroup_root()
        if root is None:
            raise SandboxError("no writable pids cgroup to bound the sandbox's processes; run rerank as an "
                               f"unprivileged user, {UNSAFE_HINT}")
        path = os.path.join(root, f"rerank-sandbox-{os.getpid()}-{next(_runs)}-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "pids.max"), "w", encoding="ascii") as f:
                f.write(str(self.limit))
        except OSError as exc:
            _remove(path)
            raise SandboxError(f"could not set up a pids cgroup for the sandbox in {root}: {exc}") from exc
        self.path = path
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside this cgroup (through ``/bin/sh``, which joins it and execs ``argv``)."""
        if self.path is None:
            return list(argv)
        return ["/bin/sh", "-c", _CGROUP_JOIN, os.path.join(self.path, "cgroup.procs"), *argv]

    def __exit__(self, *exc_info: object) -> None:
        if self.path is not None:
            _remove(self.path)
            self.path = None


def _remove(path: str) -> None:
    """Kill every process left in the cgroup at ``path`` and remove it (waiting up to 2 s for them to go)."""
    deadline = time.monotonic() + 2
    while True:
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
