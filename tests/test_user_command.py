"""`firetower user add` for real (the command, the database): a password from stdin when stdin
is not a terminal; on a terminal it is asked twice without echo; unknown sites are refused with
their names; the password is never printed."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Database

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-Pa55word"


def _env(db: Database) -> dict[str, str]:
    return {**os.environ, "FIRETOWER_DATABASE_URL": db.url}


def _add(db: Database, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firetower", "user", "add", *args],
                          input=stdin, capture_output=True, text=True, env=_env(db), cwd=PROJECT,
                          timeout=60)


async def _site(db: Database) -> str:
    site = f"s-{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(db.url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ($1, 'Site')", site)
    finally:
        await conn.close()
    return site


async def _user(db: Database, name: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(db.url)
    try:
        return await conn.fetchrow("SELECT role, site_ids, password_hash FROM users "
                                   "WHERE name = $1", name)
    finally:
        await conn.close()


async def test_password_from_stdin_and_sites_checked(database: Database) -> None:
    site = await _site(database)
    name = f"u-{uuid.uuid4().hex[:6]}"
    refused = _add(database, name, "--role", "site_manager", "--site", site, "--site", "nowhere",
                   "--password-stdin", stdin=f"{PASSWORD}\n")
    assert refused.returncode == 2
    assert "no such site: nowhere" in refused.stderr and await _user(database, name) is None
    ok = _add(database, name, "--role", "site_manager", "--site", site, stdin=f"{PASSWORD}\n")
    assert ok.returncode == 0, ok.stderr
    assert f"added as site_manager for {site}" in ok.stdout
    assert PASSWORD not in ok.stdout + ok.stderr + refused.stdout + refused.stderr
    row = await _user(database, name)
    assert row is not None and row["site_ids"] == [site]
    assert row["password_hash"] and PASSWORD not in row["password_hash"]
    short = _add(database, f"u-{uuid.uuid4().hex[:6]}", "--role", "operator", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr


def _on_a_terminal(db: Database, name: str, typed: list[str]) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its terminal; type each line when prompted."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and controlling terminal are the pty
        os.chdir(PROJECT)
        os.execve(sys.executable, [sys.executable, "-m", "firetower", "user", "add", name,
                                   "--role", "operator"], _env(db))
    out = b""
    deadline = time.monotonic() + 60
    lines = list(typed)
    status = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                chunk = b""
            out += chunk
            if lines and out.count(b"Password") > len(typed) - len(lines):
                os.write(fd, (lines.pop(0) + "\n").encode())
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, 9)
        raise AssertionError(f"no exit in 60 s: {out!r}")
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


async def test_on_a_terminal_it_is_asked_twice_without_echo(database: Database) -> None:
    name = f"u-{uuid.uuid4().hex[:6]}"
    code, shown = _on_a_terminal(database, name, [PASSWORD, PASSWORD])
    assert code == 0, shown
    assert "Password: " in shown and "Password again: " in shown
    assert PASSWORD not in shown  # not echoed, not printed
    assert (await _user(database, name)) is not None
    other = f"u-{uuid.uuid4().hex[:6]}"
    code, shown = _on_a_terminal(database, other, [PASSWORD, PASSWORD + "x"])
    assert code == 2 and "the two passwords differ" in shown
    assert await _user(database, other) is None
