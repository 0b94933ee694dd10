"""Broker credentials: Mosquitto password-file entries, the ACL file and the reload signal.

Each device connects with username = its device id and a random password issued once at
registration; only the Mosquitto hash is stored (`devices.mqtt_password_hash`). The ACL lets a
device publish only under `fire/v1/<its id>/`, through the `%u` pattern, and lets the
centre's service accounts read everything under `fire/v1/`. Decommissioned devices are left out
of the password file, so the broker refuses them after the next reload.

Client ids belong to accounts: the authenticated broker replaces every client's id with its
username (`use_username_as_clientid`, firetower/broker.py), so a device's credentials can
only ever open that device's own session. The centre's persistent sessions
(`firetower-ingest`, `firetower-ingest-priority`, and per partition `...-p{p}` and
`...-p{p}-priority`) are therefore service accounts of their own, named by their client ids,
all with the service password (`Settings.mqtt_service_password`). No device may be registered
with an id that starts with `firetower` or with the ingester's client id, so none can hold a
service account's name, whatever the partition count later becomes.

Hash format (Mosquitto 2.0 `mosquitto_passwd`):
    `$7$<iterations>$<base64 salt (12 bytes)>$<base64 PBKDF2-HMAC-SHA512 (64 bytes)>`
"""

from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import os
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path

from firetower.protocol import DEVICE_ID_RE, DOWNLINK_ROOT, TOPIC_ROOT

# mosquitto_passwd's default; the broker recomputes this on every CONNECT, so keep it modest.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 24  # 192 bits, URL-safe text of 32 characters


# Device ids that start with these (case-insensitively) are refused at registration and left
# out of the password file: the centre's own accounts live there.
RESERVED_PREFIX = "firetower"


def service_session_ids(base: str, partitions: int) -> list[str]:
    """Client ids of the ingester's persistent sessions: `base` and `base-priority`, and with
    more than one partition `base-p{p}` and `base-p{p}-priority` for every p (the names
    `ingest.partition.session_client_id` and `priority_client_id` build)."""
    ids = [base, f"{base}-priority"]
    if partitions > 1:
        for p in range(partitions):
            ids += [f"{base}-p{p}", f"{base}-p{p}-priority"]
    return ids


def service_account_names(username: str | None, ingest_client_id: str,
                          partitions: int) -> list[str]:
    """Every MQTT account of the centre: the shared service username (if any) and one account
    per ingest session."""
    names = service_session_ids(ingest_client_id, partitions)
    if username and username not in names:
        names.insert(0, username)
    return names


def reserved_device_id(name: str, service_names: Iterable[str], ingest_client_id: str) -> bool:
    """True for ids no device may hold: a service account's name, or an id starting with the
    reserved prefix or with the ingester's client id (which every session id starts with)."""
    low = name.lower()
    return (name in set(service_names) or low.startswith(RESERVED_PREFIX)
            or low.startswith(ingest_client_id.lower()))


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def verify_password(password: str, entry: str) -> bool:
    try:
        _, alg, iterations, salt, digest = entry.split("$")
        if alg != "7":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                                  int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, got)


def _check_username(name: str) -> str:
    # The password file is `name:hash` per line and the ACL interpolates %u into a topic.
    if not DEVICE_ID_RE.fullmatch(name):
        raise ValueError(f"MQTT username {name!r} must be 1-64 of [A-Za-z0-9_.-]")
    return name


def password_file_text(entries: Iterable[tuple[str, str]]) -> str:
    """`(username, $7$ hash)` pairs -> the password file's text, sorted by username."""
    lines = []
    for name, entry in sorted(entries):
        if not entry.startswith("$7$"):
            raise ValueError(f"entry for {name!r} is not a Mosquitto $7$ hash")
        lines.append(f"{_check_username(name)}:{entry}")
    return "\n".join(lines) + "\n"


def acl_file_text(service_accounts: Iterable[str]) -> str:
    """Devices publish only on their own topics and read only their own downlink (the centre's
    event confirmations); service accounts read every device topic, write every device's
    downlink, and read the broker's own figures (`$SYS/broker/#`: heap, stored messages, drops), which the ingester's
    backlog watch (ingest/backlog.py) compares with the broker's memory budget.

    A `pattern` line applies to every authenticated user, so service accounts too may only
    publish under their own name, which no device can hold: the registry refuses device ids
    that equal a service account name (see `api.routes.devices`).
    """
    out = ["# Written by Firetower (firetower/mqtt_auth.py); do not edit by hand.",
           "# Devices: username = device id; publish only under their own topic tree.",
           f"pattern write {TOPIC_ROOT}/%u/#", f"pattern read {DOWNLINK_ROOT}/%u/#", ""]
    for name in sorted(set(service_accounts)):
        out += [f"user {_check_username(name)}", f"topic read {TOPIC_ROOT}/#",
                "topic read $SYS/broker/#", f"topic write {TOPIC_ROOT}/{name}/#",
                f"topic write {DOWNLINK_ROOT}/#", ""]
    return "\n".join(out)


def write_atomic(path: Path, text: str, *, mode: int = 0o640, group: str | None = None) -> None:
    """Replace `path` in one rename, so the broker never reads a half-written file.

    Mosquitto started as root drops to the `mosquitto` user before reading these files, so
    give that group read access (`group="mosquitto"`) or run both as one user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), mode)  # not narrowed by the umask
        if group is not None:
            os.fchown(f.fileno(), -1, grp.getgrnam(group).gr_gid)
    os.replace(tmp, path)


def write_files(password_file: Path, acl_file: Path | None,
                devices: Iterable[tuple[str, str]],
                service_accounts: Iterable[tuple[str, str]], *, group: str | None = None,
                ) -> None:
    """Write both files from device and service-account `(username, hash)` pairs."""
    services = list(service_accounts)
    service_names = {name for name, _ in services}
    entries = [(d, h) for d, h in devices
               if d not in service_names and not d.lower().startswith(RESERVED_PREFIX)]
    entries += services
    write_atomic(password_file, password_file_text(entries), group=group)
    if acl_file is not None:
        write_atomic(acl_file, acl_file_text(service_names), group=group)


def reload_broker(pid_file: Path | None = None, pid: int | None = None) -> bool:
    """Send SIGHUP so Mosquitto re-reads its password and ACL files. False if not running."""
    if pid is None:
        if pid_file is None or not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True
