"""`firetower broker`: run Mosquitto with the project's configuration in the foreground."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from firetower.broker import Broker
from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default="var/mosquitto", help="persistence and log folder")
    parser.add_argument("--password-file", type=Path, help="Mosquitto password file (per device)")
    parser.add_argument("--acl-file", type=Path, help="Mosquitto ACL file")


def main(args: argparse.Namespace, settings: Settings) -> int:
    broker = Broker(Path(args.state_dir).resolve(), settings.mqtt_port,
                    password_file=args.password_file, acl_file=args.acl_file).start()
    print(f"mosquitto listening on {broker.url} (state in {broker.state_dir})", flush=True)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda *_: broker.reload())
    while not stop and broker.process is not None and broker.process.poll() is None:
        time.sleep(0.5)
    code = broker.process.returncode if broker.process is not None else 0
    broker.stop()
    return 0 if stop else (code or 1)
