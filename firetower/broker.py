"""Runs a Mosquitto with Firetower's configuration (deploy/mosquitto/firetower.conf).

Used by `make demo`, the tests and the benchmarks, so all three get the same queue and
in-flight sizing and the same persistence. Authentication: with a password file and an ACL
file the broker accepts only listed accounts, each client's id is its username
(`use_username_as_clientid`, so no account can take another's session), and each device
publishes only on its own topics; without, anonymous clients are accepted on the loopback
listener (development and tests only).

Persistence is bounded in time as well: Mosquitto writes its state only when it saves, so the
launcher forces a save every max(0.25 s, 4 x the last save's duration) (docs/broker.md).

Persistence and logging are checked, not assumed. Mosquitto 2.0 started as root drops to the
user named by `user` (default `mosquitto`) right after reading its configuration, before it
opens its log or writes its state; a state folder that user cannot write leaves a broker that
runs with no log and no persistence and says so nowhere (its error goes to stderr, its save
errors to a log it cannot open). So the launcher picks the account explicitly, hands it the
state folder, and after start proves both: a connection must appear in the log, and a save
forced with SIGUSR1 must land in `mosquitto.db`. A broker that fails either is stopped and
`BrokerError` says why.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from firetower import heartbeat

CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "firetower.conf"
DB_FILE = "mosquitto.db"
LOG_FILE = "mosquitto.log"
STDERR_FILE = "mosquitto.stderr"
# The unprivileged account Mosquitto drops to when started as root (its own default).
DEFAULT_DROP_USER = "mosquitto"
# The launcher's forced save (see Broker.save_every and deploy/mosquitto/firetower.conf): every
# max(0.25 s, 4 x the last save's duration). Measured in bench/records/broker-kill-*.json.
DEFAULT_SAVE_EVERY = (0.25, 4.0)
# How long a forced save may take to land. A save writes every queued message, so a broker
# restarted with a large backlog needs longer (about 1 s per million queued messages here).
SAVE_CHECK_TIMEOUT_S = 60.0


# A clean stop (SIGTERM) saves the whole state before exiting: give a large backlog's save
# time to land before falling back to SIGKILL (about 6 s for 5,000,000 queued messages here).
STOP_TIMEOUT_S = 120.0


class BrokerError(RuntimeError):
    """The broker could not be started with working persistence, logging and listener."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    return path


def _reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Can `account` traverse every folder above `path` (read from the permission bits: the
    caller is root, so os.access says nothing about another user)."""
    groups = {account.pw_gid} | {g.gr_gid for g in _groups_of(account.pw_name)}
    for folder in path.resolve().parents:
        st = folder.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


def _groups_of(user: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if user in g.gr_mem]


def run_user(state_dir: Path, requested: str | None = None) -> str | None:
    """The account Mosquitto will run as, written into its configuration as `user`.

    Not root: None (Mosquitto changes user only when started as root). Root with `requested`:
    that account, which must be able to reach the state folder. Root without: `mosquitto` when
    that account exists and can reach the folder (the launcher gives it the folder), else root
    itself (e.g. a folder under a private 0700 temporary directory), which Mosquitto allows
    with a warning."""
    if os.geteuid() != 0:
        return None
    name = requested or DEFAULT_DROP_USER
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        if requested:
            raise BrokerError(f"broker user {requested!r} does not exist") from None
        return "root"
    if account.pw_uid == 0 or _reachable_by(state_dir, account):
        return name
    if requested:
        raise BrokerError(f"broker user {name!r} cannot reach the state folder {state_dir}: "
                          "a folder above it is not searchable by that user")
    return "root"


def _hand_over(state_dir: Path, user: str | None) -> None:
    """Give the run account the state folder and the files Mosquitto rewrites in it."""
    if user is None or user == "root":
        return
    account = pwd.getpwnam(user)
    for p in [state_dir, *(state_dir / n for n in (DB_FILE, f"{DB_FILE}.new", LOG_FILE))]:
        if p.exists():
            os.chown(p, account.pw_uid, account.pw_gid)
    state_dir.chmod(0o750)


def _set_options(text: str, options: Mapping[str, str]) -> str:
    """Replace `key value` lines of the configuration (or add them before the listener)."""
    lines = text.splitlines()
    for key, value in options.items():
        line = f"{key} {value}"
        for i, old in enumerate(lines):
            if old.split(" ", 1)[0] == key:
                lines[i] = line
                break
        else:
            at = next(i for i, old in enumerate(lines) if old.startswith("listener "))
            lines.insert(at, line)
    return "\n".join(lines) + "\n"


def render_config(state_dir: Path, port: int, *, bind: str = "127.0.0.1",
                  password_file: Path | None = None, acl_file: Path | None = None,
                  user: str | None = None, options: Mapping[str, str] | None = None) -> Path:
    """Write `mosquitto.conf` into `state_dir`. `options` override lines of the template
    (e.g. `{"autosave_interval": "1"}`: the benchmarks compare persistence settings)."""
    if password_file is not None:
        auth = (f"allow_anonymous false\npassword_file {password_file}\n"
                "use_username_as_clientid true")
        if acl_file is not None:
            auth += f"\nacl_file {acl_file}"
    else:
        auth = "allow_anonymous true"
    text = CONFIG_TEMPLATE.read_text().format(state_dir=state_dir, port=port, bind=bind,
                                              auth=auth)
    if user is not None:
        options = {**(options or {}), "user": user}
    if options:
        text = _set_options(text, options)
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(text)
    return conf


def mqtt_answers(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """Send a bare MQTT 3.1.1 CONNECT and wait for any CONNACK: the broker's main loop (and
    with it its signal handlers) is running. A refusal (anonymous not allowed) also counts."""
    cid = f"firetower-launch-check-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(cid).to_bytes(2, "big") + cid
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            return s.recv(4)[:1] == b"\x20"
    except OSError:
        return False


@dataclass
class Broker:
    """A Mosquitto process we started; `restart` keeps its state directory.

    `user`: the account to run as when started by root (see `run_user`). `options`: lines of
    the configuration to override. `verify`: prove logging and persistence after start."""

    state_dir: Path
    port: int
    password_file: Path | None = None
    acl_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    user: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    verify: bool = True
    # (min_s, factor): the launcher forces a save every max(min_s, factor x the last save's
    # duration) seconds, on top of Mosquitto's own autosave (see deploy/mosquitto/
    # firetower.conf and docs/broker.md). None: Mosquitto's autosave only.
    save_every: tuple[float, float] | None = DEFAULT_SAVE_EVERY
    run_as: str | None = None  # the account it runs as (None: the launcher's own)
    save_error: str | None = None  # why the periodic save stopped, if it failed
    saves: int = 0
    # time.monotonic() when the last save that landed was requested: every message the broker
    # acknowledged before then is on disk (what a SIGKILL can lose is what came after)
    saved_through: float | None = None
    _stderr: IO[bytes] | None = None
    _saver: threading.Thread | None = None
    _saver_stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def db_file(self) -> Path:
        return self.state_dir / DB_FILE

    @property
    def log_file(self) -> Path:
        return self.state_dir / LOG_FILE

    def start(self, timeout: float = 10.0) -> Broker:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.run_as = run_user(self.state_dir, self.user)
        conf = render_config(self.state_dir, self.port, password_file=self.password_file,
                             acl_file=self.acl_file, user=self.run_as, options=self.options)
        _hand_over(self.state_dir, self.run_as)
        log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
        # Opened by the launcher, so whatever Mosquitto cannot log to its file is kept here.
        self._stderr = open(self.state_dir / STDERR_FILE, "ab")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self._wait_running(timeout)
            if self.verify:
                self._check_log(log_size, timeout)
                self.save(SAVE_CHECK_TIMEOUT_S)
        except BrokerError:
            self.stop(signal.SIGKILL)
            raise
        if self.save_every is not None:
            self._saver_stop = threading.Event()
            self._saver = threading.Thread(target=self._save_loop, args=(self.process,),
                                           name="broker-saver", daemon=True)
            self._saver.start()
        return self

    def _save_loop(self, process: subprocess.Popen[bytes]) -> None:
        """Force a save every max(min_s, factor x the last one's duration): a bounded loss
        window in time while the queue is small, and at most 1/(1+factor) of the broker's
        time spent saving when a large backlog makes every save long."""
        assert self.save_every is not None
        min_s, factor = self.save_every
        pause = min_s
        while not self._saver_stop.wait(pause):
            if self.process is not process or process.poll() is not None:
                return
            started = time.monotonic()
            try:
                self.save(SAVE_CHECK_TIMEOUT_S)
            except BrokerError as exc:
                if self.process is process and process.poll() is None:
                    self.save_error = str(exc)
                return
            self.saves += 1
            heartbeat.beat()  # a save landed: Mosquitto and this launcher both work
            pause = max(min_s, factor * (time.monotonic() - started))

    def _wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BrokerError(f"mosquitto exited: {self.stderr_tail() or self.log_tail()}")
            if mqtt_answers(self.port, 0.5):
                return
            time.sleep(0.05)
        raise BrokerError(f"mosquitto did not answer on port {self.port} within {timeout} s")

    def _check_log(self, since: int, timeout: float) -> None:
        """The check connection must show in the log file (connection_messages true)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"New connection from" in self._log_since(since):
                return
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"mosquitto exited: {self.stderr_tail()}")
            if "Unable to open log file" in self.stderr_tail():  # it fell back to stderr
                break
            time.sleep(0.05)
        raise BrokerError(f"mosquitto is not writing its log {self.log_file} (running as "
                          f"{self.run_as or 'the launching user'}): "
                          f"{self.stderr_tail() or 'no error reported'}")

    def save(self, timeout: float = SAVE_CHECK_TIMEOUT_S) -> None:
        """Force a save (SIGUSR1) and wait until a new `mosquitto.db` is in place (Mosquitto
        writes `mosquitto.db.new`, fsyncs it and renames it over the old file)."""
        process = self.process
        if process is None:
            raise BrokerError("mosquitto is not running")
        before = self._db_identity()
        log_at = self.log_file.stat().st_size if self.log_file.exists() else 0
        requested = time.monotonic()
        process.send_signal(signal.SIGUSR1)
        deadline = requested + timeout
        while time.monotonic() < deadline:
            now = self._db_identity()
            if now is not None and now != before:
                self.saved_through = max(self.saved_through or requested, requested)
                return
            if process.poll() is not None:
                raise BrokerError(f"mosquitto exited: {self.stderr_tail() or self.log_tail()}")
            if b"Error" in self._log_since(log_at):  # a failed save logs "Error: <errno text>."
                break
            time.sleep(0.02)
        raise BrokerError(f"mosquitto could not save its state to {self.db_file} (running as "
                          f"{self.run_as or 'the launching user'}): "
                          f"{self.log_tail(5) or self.stderr_tail() or 'no error reported'}")

    def _log_since(self, offset: int) -> bytes:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def _db_identity(self) -> tuple[int, int] | None:
        try:
            st = self.db_file.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def reload(self) -> None:
        """SIGHUP: re-read password and ACL files."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self._saver_stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._saver is not None and self._saver is not threading.current_thread():
            self._saver.join(SAVE_CHECK_TIMEOUT_S)
            self._saver = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def kill(self) -> None:
        """SIGKILL: what a crash, an OOM kill or a power cut does to the broker."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_file, lines)

    def stderr_tail(self, lines: int = 20) -> str:
        return _tail(self.state_dir / STDERR_FILE, lines)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def start_broker(state_dir: Path, port: int | None = None, **kwargs: object) -> Broker:
    os.makedirs(state_dir, exist_ok=True)
    return Broker(state_dir, port or free_port(), **kwargs).start()  # type: ignore[arg-type]
