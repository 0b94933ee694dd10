"""`firetower ingest`: the MQTT ingester, with the rule engine in the same process.

The rule engine is fed each message as soon as the ingester has decoded it, so nothing is
decoded twice and a fire never waits for a telemetry batch to be written.

Scale-out (docs/scaling.md): `--partitions P --owns 0,2` runs the persistent MQTT sessions of
partitions 0 and 2 of P, and a rule engine that holds only those partitions' devices. Run one
such worker per partition set, each under a supervisor that restarts it (deploy/systemd/).

Exit statuses (a supervisor restarts the process on any of them, deploy/systemd/):
  70  the rule engine cannot load (not installed, or its start failed with an error that is
      not an outage): nothing is stored, rather than data with no alarms (`--no-alerting`
      stores only, on purpose)
  71  the alarm writer stopped: no alarm could be written any more; the messages whose alarms
      were not committed are not acknowledged, so the restarted process evaluates them again
  75  the database is unavailable at start, or the partitions' lease was lost
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from cli.exits import EXIT_TEMPFAIL, unavailable_at_start
from firetower.runner import run_async
from firetower.settings import Settings

log = logging.getLogger(__name__)
EXIT_RULE_ENGINE = 70
EXIT_ALARM_WRITER = 71


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-id", help="MQTT client id (one per ingester instance)")
    parser.add_argument("--shared-group",
                        help="MQTT shared subscription group (stateless storage only: Mosquitto "
                             "spreads one device's messages over the group; see --partitions)")
    parser.add_argument("--partitions", type=int, metavar="P",
                        help="split the devices (by site) into P partitions, one MQTT session "
                             "each (default 1: one session on fire/#)")
    parser.add_argument("--owns", metavar="LIST",
                        help="the partitions this worker runs, e.g. 0,2 or 0-3 (default: all)")
    parser.add_argument("--metrics-port", type=int, metavar="N",
                        help="serve Prometheus /metrics on 127.0.0.1:N (0 = not at all)")
    parser.add_argument("--no-alerting", action="store_true",
                        help="store only; do not run the rule engine in this process")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from firetower import db
    from ingest.backlog import BacklogWatch
    from ingest.lease import PartitionLease
    from ingest.partition import Partitioning
    from ingest.service import Ingester
    from ingest.storage import StoragePolicies

    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    if args.shared_group:
        settings = settings.model_copy(update={"ingest_shared_group": args.shared_group})
    if args.partitions is not None:
        settings = settings.model_copy(update={"ingest_partitions": args.partitions})
    if args.owns is not None:
        settings = settings.model_copy(update={"ingest_owned_partitions": args.owns})
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port or None})
    try:  # model_copy does not validate: check the partition options before anything starts
        if not 1 <= settings.ingest_partitions <= 1024:
            raise ValueError(f"partitions must be within 1..1024, not {settings.ingest_partitions}")
        part = Partitioning.from_settings(settings)
    except ValueError as exc:
        raise SystemExit(f"firetower ingest: {exc}") from None
    if part.partitioned and settings.ingest_shared_group:
        raise SystemExit("firetower ingest: --shared-group and --partitions > 1 do not go together")
    from cli.api import serve_metrics

    serve_metrics(settings.metrics_port, "ingest")  # a port in use is logged, not fatal

    def die(status: int, why: str) -> None:
        """Stop as a crash would, at once: no more acks, no rule state saved."""
        import os

        log.critical("firetower ingest: %s; exiting with status %d", why, status)
        logging.shutdown()
        os._exit(status)

    async def serve() -> int:
        import asyncio

        try:
            await db.migrate(settings.database_url)
        except Exception as exc:
            return unavailable_at_start("ingest", exc, log)
        lease = None
        if part.partitioned:  # one live worker per partition; a second one stands by
            lease = PartitionLease(settings.database_url, settings.ingest_client_id, part.owned)
            await lease.acquire()  # before the rule engine loads the partitions' state
        listeners = []
        alerting = None
        if not args.no_alerting:
            # Never store data with no alarms: a rule engine that cannot load stops the
            # ingester (the broker keeps the messages for its persistent sessions).
            try:
                from alerting.service import AlertingService

                alerting = AlertingService(settings, owns=None if part.serves_all else part.owns)
                await alerting.start()  # loads active alarms and rule state before consuming
            except Exception as exc:
                transient = db.is_transient(exc)
                status = EXIT_TEMPFAIL if transient else EXIT_RULE_ENGINE
                log.critical("firetower ingest: the rule engine cannot load (%s: %s); not "
                             "ingesting without alarms, exiting with status %d",
                             type(exc).__name__, exc, status, exc_info=not transient)
                if lease is not None:
                    await lease.release()
                return status
            listeners.append(alerting)
        # the broker's backlog against its memory budget: gauges and alarms (docs/overload.md)
        watch = BacklogWatch(settings.database_url, f"{settings.mqtt_host}:{settings.mqtt_port}")
        ingester = Ingester(settings, listeners=listeners, sys_listener=watch.on_sys)
        await ingester.start()
        await watch.start()
        # TimescaleDB's policies, run here rather than by its workers (docs/storage.md); one
        # ingest worker of a database runs them, the others stand by
        policies = StoragePolicies(settings.database_url)
        await policies.start()
        try:
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future((lease.lost if lease is not None
                                            else asyncio.Event()).wait())]
            if alerting is not None and alerting.fatal is not None:
                waits.append(alerting.fatal)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if alerting is not None and alerting.fatal is not None and alerting.fatal.done():
                die(EXIT_ALARM_WRITER, f"the alarm writer stopped ({alerting.fatal.result()})")
            # Lost (not released): another worker may hold the partitions already.
            die(EXIT_TEMPFAIL, "the partitions' lease was lost")
            return EXIT_TEMPFAIL
        finally:
            waits[0].cancel()
            await policies.stop()
            await watch.stop()
            await ingester.stop()
            if alerting is not None:
                await alerting.stop()
            if lease is not None:
                await lease.release()  # only now may a standby start on the partitions

    return run_async(serve)
