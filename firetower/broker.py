"""Runs a Mosquitto with Firetower's configuration (deploy/mosquitto/firetower.conf).

Used by `make demo`, the tests and the benchmarks, so all three get the same queue and
in-flight sizing. Authentication: with a password file and an ACL file the broker accepts
only listed accounts, each device publishing only on its own topics; without, anonymous
clients are accepted on the loopback listener (development and tests only).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "firetower.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(path).exists():
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return path


def render_config(state_dir: Path, port: int, *, bind: str = "127.0.0.1",
                  password_file: Path | None = None, acl_file: Path | None = None) -> Path:
    if password_file is not None:
        auth = f"allow_anonymous false\npassword_file {password_file}"
        if acl_file is not None:
            auth += f"\nacl_file {acl_file}"
    else:
        auth = "allow_anonymous true"
    text = CONFIG_TEMPLATE.read_text().format(state_dir=state_dir, port=port, bind=bind,
                                              auth=auth)
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(text)
    return conf


@dataclass
class Broker:
    """A Mosquitto process we started; `restart` keeps its state directory."""

    state_dir: Path
    port: int
    password_file: Path | None = None
    acl_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Broker:
        conf = render_config(self.state_dir, self.port, password_file=self.password_file,
                             acl_file=self.acl_file)
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err or self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def reload(self) -> None:
        """SIGHUP: re-read password and ACL files."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        log = self.state_dir / "mosquitto.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""


def start_broker(state_dir: Path, port: int | None = None, **kwargs: Path | None) -> Broker:
    os.makedirs(state_dir, exist_ok=True)
    return Broker(state_dir, port or free_port(), **kwargs).start()  # type: ignore[arg-type]
