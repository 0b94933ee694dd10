"""`firetower user add NAME --role ROLE [--site S ...]`: create an API user.

The password is read from stdin (one line), so it never appears in the process list or the
shell history: `printf '%s\n' "$PW" | firetower user add alice --role admin`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from firetower.settings import Settings

ROLES = ("admin", "operator", "installer", "site_manager", "supervisor", "integration")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a user (password from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--site", action="append", dest="sites", metavar="SITE",
                     help="limit the user to this site (repeat; required for installer "
                          "and site_manager)")


async def _add(settings: Settings, args: argparse.Namespace, password: str | None) -> int:
    from api.permissions import Role
    from api.users import UserError, add_user
    from firetower import db

    await db.migrate(settings.database_url)
    conn = await db.connect(settings.database_url)
    try:
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
    line = sys.stdin.readline().rstrip("\r\n")
    password = line or None
    if password is not None and len(password) < 8:
        print("firetower user: the password must have at least 8 characters", file=sys.stderr)
        return 2
    return asyncio.run(_add(settings, args, password))
