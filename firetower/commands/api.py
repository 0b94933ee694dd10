"""`firetower api`."""

from __future__ import annotations

import argparse

from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace, settings: Settings) -> int:
    raise SystemExit("firetower api: not built yet")
