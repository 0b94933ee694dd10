"""`firetower user add NAME --role ROLE [--site S ...]`: create an API user.

The password never appears on the command line, in the process list or in the shell history,
and is never echoed: on a terminal it is asked for twice without echo (getpass); otherwise it
is read from the first line of stdin (`--password-stdin` says so explicitly):
`printf '%s\\n' "$PW" | firetower user add alice --role admin --password-stdin`.
Integration accounts have no password (they use API keys). Every site named must exist.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from firetower.settings import Settings

ROLES = ("admin", "operator", "installer", "site_manager", "supervisor", "integration",
         "grid_member")
MIN_PASSWORD = 8


class PasswordError(ValueError):
    """No usable password was given; the message says why."""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a user (password asked without echo, or from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--site", action="append", dest="sites", metavar="SITE",
                     help="limit the user to this site, which must exist (repeat; required "
                          "for installer and site_manager)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from stdin (its first line; on a terminal, "
                          "one line without echo and no confirmation)")


def read_password(role: str, *, from_stdin: bool) -> str | None:
    """The new user's password, never echoed. On a terminal: asked twice with getpass (once,
    with no prompt, for --password-stdin); elsewhere: stdin's first line. None for an
    integration account given none."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    elif from_stdin:
        password = getpass.getpass("")
    elif role == "integration":
        return None
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password again: "):
            raise PasswordError("the two passwords differ")
    if not password:
        if role == "integration":
            return None
        raise PasswordError("a password is required (on a terminal it is asked for; else give "
                            "its line on stdin)")
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


async def _add(settings: Settings, args: argparse.Namespace, password: str | None) -> int:
    from api.permissions import Role
    from api.users import UserError, add_user
    from firetower import db

    await db.migrate(settings.database_url)
    conn = await db.connect(settings.database_url)
    try:
        if args.sites:
            known = {r["id"] for r in await conn.fetch(
                "SELECT id FROM sites WHERE id = ANY($1::text[])", args.sites)}
            missing = [s for s in dict.fromkeys(args.sites) if s not in known]
            if missing:
                print(f"firetower user: no such site: {', '.join(missing)} (create the site "
                      "first; `GET /api/v1/sites` lists them)", file=sys.stderr)
                return 2
        row = await add_user(conn, args.name, Role(args.role), password, args.sites)
    except UserError as exc:
        print(f"firetower user: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # asyncpg unique violation and the like: report, do not trace
        print(f"firetower user: cannot add {args.name}: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
    scope = ", ".join(row["site_ids"]) if row["site_ids"] else "all sites"
    print(f"user {row['name']} (id {row['id']}) added as {row['role']} for {scope}")
    return 0


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "add":
        return 2
    try:
        password = read_password(args.role, from_stdin=args.password_stdin)
    except (PasswordError, EOFError, KeyboardInterrupt) as exc:
        print(f"firetower user: {exc or 'cancelled'}", file=sys.stderr)
        return 2
    return asyncio.run(_add(settings, args, password))
