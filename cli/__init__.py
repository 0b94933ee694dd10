"""The `firetower` command: one composition root per process (`cli/main.py` dispatches to the
subcommand modules here). It may import every package; nothing but the entry-point shims
(`python -m firetower`, `python -m dispatch`) imports it."""
