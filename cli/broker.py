"""`firetower broker`: run Mosquitto with the project's configuration in the foreground.

It refuses to start (exit status 1, the reason on stderr) when the broker would not log or
persist its state (see firetower/broker.py), and, outside `FIRETOWER_ENV=development`, when
it would accept anonymous clients or the centre could not log in: a production broker needs
the password and ACL files and a service password (docs/broker.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from firetower import mqtt_auth
from firetower.broker import DEFAULT_SAVE_EVERY, Broker, BrokerError
from firetower.settings import Settings


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default="var/mosquitto", help="persistence and log folder")
    parser.add_argument("--password-file", type=Path,
                        default=_env_path("FIRETOWER_MQTT_PASSWORD_FILE"),
                        help="Mosquitto password file (devices and service accounts; default "
                             "$FIRETOWER_MQTT_PASSWORD_FILE)")
    parser.add_argument("--acl-file", type=Path, default=_env_path("FIRETOWER_MQTT_ACL_FILE"),
                        help="Mosquitto ACL file (default $FIRETOWER_MQTT_ACL_FILE)")
    parser.add_argument("--pid-file", type=Path,
                        default=_env_path("FIRETOWER_MQTT_BROKER_PID_FILE"),
                        help="write the broker's pid here, for the API's reload signal "
                             "(default $FIRETOWER_MQTT_BROKER_PID_FILE)")
    parser.add_argument("--user", help="account the broker runs as when started by root "
                        "(default: mosquitto if it can reach the state folder, else root)")
    parser.add_argument("--save-every", type=float, default=DEFAULT_SAVE_EVERY[0],
                        metavar="SECONDS",
                        help="force a save at most this often (and at most a fifth of the time "
                             "under a backlog); 0: Mosquitto's 30 s autosave only "
                             f"(default {DEFAULT_SAVE_EVERY[0]})")


def _production_refusal(args: argparse.Namespace, settings: Settings) -> str | None:
    """Outside development: why this broker must not start (fail closed), or None."""
    if settings.env == "development":
        return None
    if args.password_file is None or args.acl_file is None:
        return ("outside development the broker needs --password-file and --acl-file "
                "(FIRETOWER_MQTT_PASSWORD_FILE, FIRETOWER_MQTT_ACL_FILE); it would accept "
                "anonymous clients")
    if not settings.mqtt_service_password:
        return ("no service password (FIRETOWER_MQTT_PASSWORD or "
                "FIRETOWER_MQTT_PASSWORD_SECRET_FILE): the centre's sessions could not log in")
    if not args.password_file.exists():
        return (f"{args.password_file} does not exist (the API writes it at start from the "
                "device registry and the service accounts)")
    listed = {line.split(":", 1)[0] for line in args.password_file.read_text().splitlines()}
    missing = set(mqtt_auth.service_account_names(
        settings.mqtt_username, settings.ingest_client_id, settings.ingest_partitions)) - listed
    if missing:
        print(f"firetower broker: warning: service accounts not in {args.password_file} yet: "
              f"{', '.join(sorted(missing))} (the API adds them when it syncs)", file=sys.stderr)
    return None


def main(args: argparse.Namespace, settings: Settings) -> int:
    refusal = _production_refusal(args, settings)
    if refusal is not None:
        print(f"firetower broker: refusing to start: {refusal}", file=sys.stderr)
        return 1
    try:
        save_every = (args.save_every, DEFAULT_SAVE_EVERY[1]) if args.save_every > 0 else None
        broker = Broker(Path(args.state_dir).resolve(), settings.mqtt_port,
                        password_file=args.password_file, acl_file=args.acl_file,
                        user=args.user, save_every=save_every).start()
    except BrokerError as exc:
        print(f"firetower broker: refusing to run: {exc}", file=sys.stderr)
        return 1
    assert broker.process is not None
    if args.pid_file is not None:
        args.pid_file.write_text(f"{broker.process.pid}\n")
    print(f"mosquitto listening on {broker.url} (state and log in {broker.state_dir}, running "
          f"as {broker.run_as or 'this user'})", flush=True)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda *_: broker.reload())
    while not stop and broker.process is not None and broker.process.poll() is None:
        if broker.save_error is not None:  # persistence broke at run time: do not run without
            print(f"firetower broker: stopping: {broker.save_error}", file=sys.stderr)
            broker.stop()
            return 1
        time.sleep(0.5)
    code = broker.process.returncode if broker.process is not None else 0
    broker.stop()
    return 0 if stop else (code or 1)
