"""A private PostgreSQL cluster the project starts itself: for `make demo`, `make test` and
the fault tests, never the machine's own server (whose configuration and state it leaves
alone).

    cluster = ensure(default_root())  # initdb under var/postgresql if needed, start it on a
                                      # free port of 127.0.0.1 (the same one as last time if
                                      # still free), deploy/postgresql/firetower.conf applied
    cluster.url("firetower")          # postgresql://postgres@127.0.0.1:<port>/firetower
    cluster.stop()

`Cluster` is the mechanism (initdb, pg_ctl, pg_isready); tests/pgcluster.py builds the
crashable throwaway clusters of the fault tests on it. Started by root, every server program
runs as the `postgres` account (PostgreSQL refuses to run as root), which must be able to
reach the folder. Authentication is `trust` and the server listens on 127.0.0.1 only: a
development and test database, not a production one (deploy/README.md).

The binaries are the machine's (the newest /usr/lib/postgresql/N/bin), so the extensions
available (TimescaleDB or not) are the same as the machine's server's.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firetower.broker import _reachable_by, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONF_FILE = PROJECT_DIR / "deploy" / "postgresql" / "firetower.conf"
INCLUDE_LINE = "include_if_exists = 'firetower.conf'  # added by firetower.localpg"
# Environment: where the project keeps its state (default ./var).
VAR_ENV = "FIRETOWER_VAR_DIR"
SUPERUSER = "postgres"
log = logging.getLogger(__name__)
# Where the cluster goes when the server's account cannot reach the project's folder.
REACHABLE_DIR = Path("/var/tmp")
# The demo, the test suite and the engineers' concurrent test runs share one cluster.
MAX_CONNECTIONS = 300


class LocalPgError(RuntimeError):
    """The private cluster could not be created or started; the message says why."""


def bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        raise LocalPgError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                           "(apt-get install postgresql)")
    return found[-1].parent


def timescale_installed(binaries: Path) -> bool:
    """The TimescaleDB extension is installed for these server binaries (…/N/bin)."""
    version = binaries.parent.name
    return Path(f"/usr/share/postgresql/{version}/extension/timescaledb.control").exists()


def var_dir(base: Path | None = None) -> Path:
    """The project's state folder: $FIRETOWER_VAR_DIR, else var/ under `base` (default: the
    current folder)."""
    var = os.environ.get(VAR_ENV)
    return (Path(var) if var else (base or Path.cwd()) / "var").resolve()


def default_root(base: Path | None = None) -> Path:
    """The private cluster's folder: postgresql/ in the state folder (var_dir)."""
    return var_dir(base) / "postgresql"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Cluster:
    """One PostgreSQL cluster in `root` (data in root/data, log in root/postgres.log)."""

    def __init__(self, root: Path, port: int | None = None, *, max_connections: int = 100,
                 socket_dir: Path | None = None, options: str = "") -> None:
        self._place(root)
        self.port = port or free_port()
        self.max_connections = max_connections
        self.socket_dir = socket_dir
        self.bin = bin_dir()
        # Where the machine's binaries have TimescaleDB, preload it as a server using it would.
        preload = "-c shared_preload_libraries=timescaledb" if timescale_installed(self.bin) else ""
        self.options = f"{preload} {options}".strip()
        # Root runs the server programs as `postgres`; anyone else runs them as themselves.
        self.run_as: str | None = SUPERUSER if os.geteuid() == 0 else None

    def _place(self, root: Path) -> None:
        # through a link (see _move_within_reach), the server programs get the real path
        self.root = root.resolve()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    # -- lifecycle -------------------------------------------------------------------------
    def init(self) -> Cluster:
        """initdb, unless the data folder already holds a cluster."""
        if (self.data / "PG_VERSION").exists():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            if not _reachable_by(self.root, account):
                self._move_within_reach(account)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.root.chmod(0o700)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  SUPERUSER, "--no-sync", "-E", "UTF8", "--locale", "C")
        return self

    def _move_within_reach(self, account: pwd.struct_passwd) -> None:
        """The project lies where the server's account cannot go (e.g. under root's 0700 home):
        keep the cluster in a folder of its own under REACHABLE_DIR instead, and make `root`
        a link to it, so everything else still finds it in var/."""
        if any(self.root.iterdir()):
            raise LocalPgError(f"the {account.pw_name} account cannot reach {self.root} (a "
                               f"folder above it is not searchable); set {VAR_ENV} to a "
                               "folder it can reach")
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        target = REACHABLE_DIR / f"firetower-pg-{digest}"
        target.mkdir(mode=0o700, exist_ok=True)
        if not _reachable_by(target, account):
            raise LocalPgError(f"the {account.pw_name} account can reach neither {self.root} "
                               f"nor {target}; set {VAR_ENV} to a folder it can reach")
        self.root.rmdir()
        self.root.symlink_to(target, target_is_directory=True)
        self._place(self.root)
        log.warning("%s cannot reach %s: the private PostgreSQL lives in %s (linked from it)",
                    account.pw_name, self.root.parent, target)

    def apply_conf(self, conf: Path = CONF_FILE) -> bool:
        """Copy the project's settings into the cluster and include them from
        postgresql.conf; True if they changed (they take effect at the next start)."""
        target = self.data / "firetower.conf"
        text = conf.read_text()
        changed = not target.exists() or target.read_text() != text
        if changed:
            target.write_text(text)
            self._give(target)
        main = self.data / "postgresql.conf"
        if INCLUDE_LINE not in main.read_text():
            with main.open("a") as f:
                f.write(f"\n{INCLUDE_LINE}\n")
        return changed

    def start(self, *, wait: bool = True, extra: str = "") -> None:
        """Start the server; with wait=False return at once (it may still be recovering)."""
        self._pg_ctl("-l", str(self.log), "-o", self.server_options(extra), "start",
                     "-w" if wait else "-W")
        if wait:
            self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists() and self.running():
            self._pg_ctl("stop", "-m", mode, "-w", check=False)

    def running(self) -> bool:
        """The postmaster of this data folder is alive (whether or not it accepts clients)."""
        return self._pg_ctl("status", check=False).returncode == 0

    def running_port(self) -> int | None:
        """The port the running postmaster listens on (postmaster.pid, line 4)."""
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def ready(self) -> bool:
        return self.isready() == 0

    def isready(self) -> int:
        """pg_isready's status: 0 accepting, 1 rejecting (starting, recovering), 2 no answer."""
        return self._run(str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                         str(self.port), check=False).returncode

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise LocalPgError(f"private PostgreSQL on port {self.port} not ready in "
                                   f"{timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)

    # -- addresses -------------------------------------------------------------------------
    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- helpers ---------------------------------------------------------------------------
    def server_options(self, extra: str = "") -> str:
        sockets = f"-k {self.socket_dir}" if self.socket_dir else "-c unix_socket_directories=''"
        return (f"-p {self.port} {sockets} -c listen_addresses=127.0.0.1 "
                f"-c max_connections={self.max_connections} {self.options} {extra}").strip()

    def _give(self, path: Path) -> None:
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            os.chown(path, account.pw_uid, account.pw_gid)

    def _run(self, *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise LocalPgError(f"{Path(args[0]).name} failed (status {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}\n{self.log_tail(10)}")
        return done

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args, check=check)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One process at a time creates or starts the cluster (concurrent test runs, the demo)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remembered_port(root: Path) -> int | None:
    try:
        return int((root / "port").read_text())
    except (OSError, ValueError):
        return None


def open_cluster(root: Path) -> Cluster:
    """The persistent cluster in `root`, with the port it runs on or last ran on."""
    cluster = Cluster(root, _remembered_port(root) or 0, max_connections=MAX_CONNECTIONS)
    if cluster.data.exists() and cluster.running():
        cluster.port = cluster.running_port() or cluster.port
    return cluster


def ensure(root: Path) -> tuple[Cluster, bool]:
    """The private cluster in `root`, created and started if needed (idempotent, safe from
    several processes at once). Returns it and whether this call started it. It keeps its
    port across restarts while that port is free, else takes a new free one."""
    with _locked(root):
        cluster = open_cluster(root)
        if cluster.data.exists() and cluster.running():
            if cluster.apply_conf():
                log.warning("%s changed: the private PostgreSQL applies it at its next start "
                            "(firetower localdb restart)", CONF_FILE)
            cluster.wait_ready()
            return cluster, False
        cluster.init()
        cluster.apply_conf()
        if not cluster.port or not port_free(cluster.port):
            cluster.port = free_port()
        (cluster.root / "port").write_text(f"{cluster.port}\n")
        cluster.start()
        return cluster, True


def stop(root: Path) -> bool:
    """Stop the private cluster in `root` if it runs; True if it was running."""
    with _locked(root):
        cluster = open_cluster(root)
        if not (cluster.data.exists() and cluster.running()):
            return False
        cluster.stop()
        return True
