"""A 32-bit x86 (i386) Debian bookworm userland with the edge side installed: the Edison stand-in.

Used by `tests/export/test_i386.py` and `bench/bench_edison.py`::

    root = ensure_root()                       # built once (a few minutes), then reused
    python = install_project(root, REPO)       # venv over the OS NumPy; paho 2 from PyPI
    run_in_root(root, [python, "-c", "import sys; print(sys.maxsize)"])

The userland is what a 32-bit board ships: Python 3.11.2 and NumPy 1.24.2 from Debian (PyPI has
no i686 NumPy wheels). The project goes into a venv made with ``--system-site-packages`` so the
OS NumPy satisfies ``numpy>=1.24``; paho-mqtt comes from PyPI (pure Python) because the gateway
uses paho 2's callback API and Debian bookworm has 1.6.1. Building needs root and `debootstrap`
(`make i386-tools` installs it); the chroot shares the host's network, so it reaches a broker on
loopback and PyPI like the host does.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

#: Where the userland is cached between runs (override with DEEPSENSE_I386_ROOT).
DEFAULT_ROOT = Path(os.environ.get("DEEPSENSE_I386_ROOT", "/var/cache/deepsense-i386/bookworm"))
PACKAGES = "python3,python3-numpy,python3-paho-mqtt,python3-pip,python3-venv"
MIRROR = "http://deb.debian.org/debian"
#: Marks a finished build (a half-built userland from an interrupted run is rebuilt).
READY = ".deepsense-ready"
VENV = "/opt/deepsense-venv"
CA_BUNDLE = "/etc/deepsense-host-ca.pem"
#: Host CA bundles, first found wins (Debian, Fedora).
HOST_CA = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md", "deepsense", "rdeepsense",
                 "deepiot", "edge", "gateway")


def find_sbin(name: str) -> str | None:
    """An executable such as debootstrap or chroot (in /usr/sbin, which a PATH may lack)."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)


def find_debootstrap() -> str | None:
    return find_sbin("debootstrap")


def why_unavailable(root: Path = DEFAULT_ROOT) -> str | None:
    """None when `ensure_root` can work here; otherwise the reason, for a visible skip."""
    if (root / READY).exists():
        return None if os.geteuid() == 0 else "chroot into the i386 userland needs root"
    if os.geteuid() != 0:
        return "building the i386 userland (debootstrap, chroot) needs root"
    if find_debootstrap() is None:
        return "debootstrap is not installed (make i386-tools, or apt-get install debootstrap)"
    return None


def ensure_root(root: Path = DEFAULT_ROOT, log=print) -> Path:
    """The cached userland, built with debootstrap when missing (atomically, under a lock).

    Returns:
        root, holding a finished i386 bookworm minbase with Python 3, NumPy, pip and venv.

    Raises:
        RuntimeError: debootstrap is missing, we are not root, or the build failed (the
            message carries the tail of debootstrap's output).
    """
    root = Path(root)
    if (root / READY).exists():
        return root
    if reason := why_unavailable(root):
        raise RuntimeError(reason)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if (root / READY).exists():
            return root
        partial = root.parent / f"{root.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        started = time.perf_counter()
        log(f"building the i386 userland in {root} (debootstrap, a few minutes, once)")
        done = subprocess.run([find_debootstrap(), "--arch=i386", "--variant=minbase",
                               f"--include={PACKAGES}", "bookworm", str(partial), MIRROR],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr)[-2000:]}")
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
        (root / READY).write_text(f"built in {time.perf_counter() - started:.0f} s\n")
        log(f"built the i386 userland in {time.perf_counter() - started:.0f} s")
    return root


def root_env() -> dict[str, str]:
    """The environment of commands in the chroot: a clean PATH, the host's CA bundle for pip."""
    env = {"PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "PIP_CERT": CA_BUNDLE, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONDONTWRITEBYTECODE": "1",
           # One BLAS thread: Debian's OpenBLAS otherwise starts a thread per host core,
           # which on a pinned core only contend (and inflate CPU time and memory).
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.update({k: v for k, v in os.environ.items()
                if k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
    return env


def run_in_root(root: Path, argv: list[str], *, timeout_s: float = 300.0,
                check: bool = True, **popen) -> subprocess.CompletedProcess:
    """`chroot root argv...` with `root_env()`, output captured as text.

    Raises:
        RuntimeError: `check` and a non-zero exit (the message has the command and output tail).
    """
    done = subprocess.run([find_sbin("chroot") or "chroot", str(root), *argv], capture_output=True, text=True,
                          env=root_env(), timeout=timeout_s, **popen)
    if check and done.returncode != 0:
        raise RuntimeError(f"in the i386 root, {' '.join(argv)} exited {done.returncode}: "
                           f"{(done.stdout + done.stderr)[-3000:]}")
    return done


def popen_in_root(root: Path, argv: list[str], **popen) -> subprocess.Popen:
    """A long-running command in the chroot (e.g. `deepsense serve`), text stdout."""
    return subprocess.Popen([find_sbin("chroot") or "chroot", str(root), *argv], env=root_env(), text=True, **popen)


def install_project(root: Path, repo: Path, venv: str = VENV) -> str:
    """Copy the project into the root and ``pip install`` it into a venv over the OS NumPy.

    Args:
        venv: the venv's path inside the root (a benchmark and a test running at once each
            use their own).

    Returns:
        the venv's python, as a path inside the root.
    """
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time (tests and benchmarks)
        return _install_project(root, repo, venv)


def _install_project(root: Path, repo: Path, venv: str) -> str:
    for name in ("resolv.conf", "hosts"):  # pip reaches PyPI with the host's resolver
        shutil.copy2(f"/etc/{name}", root / "etc" / name)
    ca = next((p for p in HOST_CA if os.path.exists(p)), None)
    if ca is None:
        raise RuntimeError(f"no CA bundle on the host (looked for {HOST_CA}); pip needs one")
    shutil.copy2(ca, root / CA_BUNDLE.lstrip("/"))
    source = root / "opt" / "deepsense-src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(repo / name, source / name)
    python = f"{venv}/bin/python"
    if not (root / python.lstrip("/")).exists():
        run_in_root(root, ["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    run_in_root(root, [python, "-m", "pip", "install", "-q", "--upgrade", "/opt/deepsense-src"],
                timeout_s=600)
    return python
