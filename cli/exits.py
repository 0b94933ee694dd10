"""Exit statuses the centre's processes share with their supervisor (deploy/systemd,
`firetower run`), and the one place that turns an unavailable database at start into one."""

from __future__ import annotations

import logging

from firetower import db

# sysexits.h EX_TEMPFAIL: try again later (the supervisor restarts the process)
EXIT_TEMPFAIL = 75


def unavailable_at_start(command: str, exc: BaseException, log: logging.Logger) -> int:
    """EXIT_TEMPFAIL, logged once, if `exc` says the database is unavailable for now;
    re-raises anything else."""
    if not db.is_transient(exc):
        raise exc
    log.critical("firetower %s: database unavailable at start (%s: %s); exiting with status "
                 "%d for the supervisor to restart", command, type(exc).__name__, exc,
                 EXIT_TEMPFAIL)
    return EXIT_TEMPFAIL
