"""The ingester with the alerting service as its listener, in a process of its own, so a test
can SIGKILL it: `python -m tests.alerting.proc <database_url> <mqtt_url> <client_id>`."""

from __future__ import annotations

import asyncio
import sys

from alerting.service import AlertingService
from firetower.settings import Settings
from ingest.service import Ingester


async def main(db_url: str, mqtt_url: str, client_id: str) -> None:
    settings = Settings(env="development", database_url=db_url, mqtt_url=mqtt_url,
                        ingest_client_id=client_id, metrics_port=None)
    service = AlertingService(settings, state_flush_s=0.1)
    await service.start()
    ingester = Ingester(settings, listeners=[service])
    await ingester.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
