"""`firetower notify`: the notifier. Resolves the notification jobs that raised alarms, escalation
steps and work prompts leave in the outbox into messages, sends them through their channels
(e-mail, SMS and voice gateways, DingTalk / WeCom / Feishu robots, any Apprise service), runs
escalation and records the bounds of heightened-watch windows (notify/worker.py,
docs/notifications.md).

Channels are configured by FIRETOWER_NOTIFY_SMTP_URL, FIRETOWER_NOTIFY_SMS_URL,
FIRETOWER_NOTIFY_VOICE_URL (a malformed one stops the start, exit 78). A database that is not
there at start exits 75 for the supervisor to try again, like the other services.
"""

from __future__ import annotations

import argparse
import logging
import os

from cli.exits import unavailable_at_start
from firetower.runner import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=32,
                        help="messages in flight at once (default 32)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations at start")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from cli.api import serve_metrics
    from firetower import db
    from firetower.webhooks.secretbox import SecretBox
    from notify.channels import ChannelError, settings_from_env
    from notify.worker import Notifier

    try:
        channels = settings_from_env(os.environ)
    except ChannelError as exc:
        log.error("notify: %s", exc)
        return 78  # EX_CONFIG
    keys = settings.secret_keys
    serve_metrics(settings.notify_metrics_port, "notify")

    async def run() -> int:
        try:
            if not args.no_migrate:
                await db.migrate(settings.database_url)
            pool = await db.create_pool(settings.database_url, min_size=2, max_size=6)
        except Exception as exc:
            return unavailable_at_start("notify", exc, log)
        notifier = Notifier(pool, SecretBox.of(keys), secret_key=keys[0],
                            public_url=settings.public_url, channels=channels,
                            concurrency=max(1, args.concurrency))
        configured = [c for c in ("email", "sms", "voice") if channels.configured(c)]
        print(f"notify ready (gateways: {', '.join(configured) or 'none'}; robots and Apprise"
              " URLs per contact)", flush=True)
        try:
            await notifier.run()
        finally:
            await pool.close()
        return 0

    return run_async(run)
