"""The streaming rule engine: every message is evaluated as it arrives, in memory, on the
caller's thread; a heap of deadlines (not a sweep) drives durations and heartbeats.

`on_message()` is synchronous and cheap: look up the device, step its rules, and hand any
decision to `sink` (the service puts it on the writer's priority queue). `tick()` runs the
deadlines that are due and returns the next one. Time comes from the injected Clock.

Times: rules over readings use the device's timestamps (windows, durations), so a burst of
late-delivered readings is judged by when they were measured. Supervision (heartbeat deadlines)
and mode windows use the centre's clock. A duration or clear timer that runs out with no new
message converts between the two with the device's last observed skew (centre - device).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from alerting.condition import Condition, Edge
from alerting.config import RuleConfig
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo, DeviceState, cond_key, last_of, split_key
from alerting.modes import ModeTable, ModeWindow
from alerting.restore import restore as restore_state
from alerting.rules import coincidence, panel, smoke, sprinkler, supervision
from alerting.rules.base import Context, Hit, Timer, durations, step
from alerting.rules.clock import observe as observe_clock
from alerting.rules.coincidence import ZoneIndex, ZoneKey
from alerting.rules.selection import TELEMETRY_RULES
from alerting.rules.supervision import OFFLINE
from firetower.alarm_store import AlarmKey
from firetower.alarms import PRIORITY, AlarmClass, Mode
from firetower.model import DeviceKind, Event, Lifecycle, Message, Status, Telemetry

from .clock import Clock

log = logging.getLogger(__name__)
_COND, _HEARTBEAT = 0, 1
# After a restart, wait this long (at most) before declaring a silent device offline, so the
# messages the broker queued while the engine was down are read first.
STARTUP_GRACE_S = 5.0
_GROUPED = (AlarmClass.FAULT, AlarmClass.OFFLINE)
_SUPERVISED = (Lifecycle.COMMISSIONED, Lifecycle.IN_SERVICE)
# The confidence a rule gives its alarm, when a timer (not a message) raises it.
TIMER_CONFIDENCE = {sprinkler.WATERFLOW: sprinkler.WATERFLOW_CONFIDENCE}
# A condition that must not raise by timer while its superseding alarm is raised.
SUPERSEDED_BY = {smoke.PREALARM: smoke.ALARM}
_EVIDENCE_FIELDS = ("obscuration_pct_per_m", "temperature_c", "co_ppm", "pressure_kpa",
                    "flow_lps", "battery_v")


class Engine:
    def __init__(self, *, clock: Clock, sink: Callable[[Decision], None],
                 config: RuleConfig | None = None, modes: ModeTable | None = None) -> None:
        self.clock = clock
        self.sink = sink
        self.config = config or RuleConfig()
        self.modes = modes or ModeTable()
        self.devices: dict[str, DeviceState] = {}
        self.children: dict[str, set[str]] = {}
        self.zones = ZoneIndex()
        self.heap: list[tuple[float, int, int, str, str]] = []
        self.on_schedule: Callable[[float], None] | None = None
        self.ctx = Context()
        self.ctx.zone_confirms = self._zone_confirms
        self.ctx.zone_verifying = self._zone_verifying
        self._now = 0.0  # centre time of the message being evaluated
        self.unknown = 0
        self._seq = itertools.count()
        self._dirty: set[str] = set()
        # Conditions whose deadline must be re-read now (a zone confirmed them, parameters
        # changed): run by `_rearm_due()` once the current message or deadline is done.
        self._rearm: list[tuple[str, str]] = []
        self._supervising = False  # start_supervision() ran: new devices get a deadline

    # -- registry, configuration, restore ----------------------------------------------------
    def set_devices(self, infos: Iterable[DeviceInfo], lifecycles: dict[str, Lifecycle]
                    | None = None) -> None:
        """Add or refresh devices (state of known devices is kept)."""
        for info in infos:
            params = self.config.resolve(info.id, info.kind, info.site_id)
            st = self.devices.get(info.id)
            if st is None:
                st = self.devices[info.id] = DeviceState(info, params)
            else:
                moved = params is not st.params
                st.info, st.params = info, params
                if moved:
                    self.rearm(st)
            if (lifecycles and st.last_seen is None
                    and lifecycles.get(info.id) in _SUPERVISED):
                st.last_seen = self.clock.now()  # supervise it from now on (registered or
                if self._supervising:  # put in service after the start: its deadline now)
                    self._schedule_heartbeat(st, st.last_seen)
        self.children.clear()
        for st in self.devices.values():
            if st.info.parent_id:
                self.children.setdefault(st.info.parent_id, set()).add(st.info.id)
        if self._rearm:
            self._rearm_due()

    def set_config(self, config: RuleConfig) -> None:
        """New overrides take effect at once: deadlines are re-armed to the new durations."""
        self.config = config
        for st in self.devices.values():
            params = config.resolve(st.info.id, st.info.kind, st.info.site_id)
            if params is not st.params:
                st.params = params
                self.rearm(st)
        self._rearm_due()

    def rearm(self, st: DeviceState) -> None:
        """The device's parameters changed: a shorter heartbeat is armed now (an earlier
        deadline; a later one is found when the old one pops), and every running duration or
        clear time is re-read (`_rearm_due()` runs the ones already due)."""
        hb_at = st.hb_at
        if hb_at is not None and st.last_seen is not None:
            due = st.last_seen + st.params.supervision.heartbeat_s
            if due < hb_at:
                st.hb_at = due
                self._push(due, _HEARTBEAT, st.info.id, "")
        for key, c in st.conds.items():
            if c.spec is not None and (c.pending_since is not None or c.clear_since is not None):
                self._rearm.append((st.info.id, key))

    def restore(self, states: dict[str, bytes], open_keys: Iterable[tuple[str, str, str]],
                open_fires: dict[tuple[str, str, str], tuple[float, str]] | None = None
                ) -> None:
        """Load persisted rule state; the open alarms in the database are the truth for which
        conditions are raised (see alerting/restore.py)."""
        restore_state(self, states, open_keys, open_fires or {})

    def start_supervision(self) -> None:
        """Schedule a heartbeat deadline for every device that is supervised."""
        self._supervising = True
        now = self.clock.now()
        for st in self.devices.values():
            if st.last_seen is not None and st.hb_at is None:
                hb = st.params.supervision.heartbeat_s
                due = max(st.last_seen + hb, now + min(hb, STARTUP_GRACE_S))
                st.hb_at = due
                self._push(due, _HEARTBEAT, st.info.id, "")

    # -- the hot path ------------------------------------------------------------------------
    def on_message(self, m: Message) -> None:
        st = self.devices.get(m.device_id)
        if st is None:
            self.unknown += 1
            return
        now = self.clock.now()
        t = m.ts.timestamp()
        ctx = self.ctx
        ctx.t = t  # hits and timers are empty here: they are cleared after each use
        ctx.rx = m.received_at
        tp = type(m)
        if tp is Status and not m.online:  # type: ignore[union-attr]
            self._offline(st, now, "last will: the device reported itself offline")
            return
        st.last_seen = now
        st.skew = now - t
        w = st.clock  # the device's clock (alerting/rules/clock.py)
        if w is None or m.clock is not None or st.skew < w.low or now >= w.until:
            observe_clock(self, st, m, now)
        if st.hb_at is None:
            self._schedule_heartbeat(st, now)
        conds = st.conds
        if conds:
            off = conds.get(OFFLINE)
            if off is not None and off.active:
                self._online(st, now)
        if tp is Telemetry:
            st.last = last_of(m)  # type: ignore[arg-type]  # values only: no datetimes kept
            self._now = now
            for rule in TELEMETRY_RULES[st.info.kind]:
                rule(ctx, st, m)  # type: ignore[arg-type]
        elif tp is Event:
            e: Event = m  # type: ignore[assignment]
            # a redelivery of an event already evaluated; not told by seq alone when the clock
            # is wrong (a panel reset to 1970 often restarts its counter too): the store
            # knows the redelivery by its seq (alarms.last_seq), never a new fire as one
            if e.seq in st.event_seqs and e.clock is None:
                return
            st.event_seqs = (*st.event_seqs[-7:], e.seq)
            st.dirty = True
            change = panel.evaluate(ctx, st, e)
            if change is not None:
                self._mode_change(st, e, *change, now)
        if ctx.hits:
            self._emit(st, ctx.hits, m if tp is not Status else None, now)
            ctx.hits.clear()
        if ctx.timers:
            self._schedule(st, ctx.timers)
            ctx.timers.clear()
        if st.dirty:
            self._dirty.add(st.info.id)
        if self._rearm:
            self._rearm_due()

    # -- decisions ---------------------------------------------------------------------------
    def _emit(self, st: DeviceState, hits: list[Hit], m: Message | None, now: float) -> None:
        info = st.info
        device_ts = m.ts.timestamp() if m is not None else None
        received = m.received_at.timestamp() if m is not None else None
        seq = m.seq if m is not None else None
        for hit in list(hits):
            cls = hit.alarm_class
            key = AlarmKey(info.id, hit.point, hit.type)
            zone = hit.zone if hit.zone is not None else info.zone
            if hit.edge is Edge.CLEAR:
                if cls is AlarmClass.FIRE:
                    zk = self.zone_key(st, hit.zone)
                    if zk is not None:
                        self.zones.remove(zk, (info.id, hit.point))
                self.put(Decision(Action.CLEAR, PRIORITY[cls], key, cls, hit.at, info.site_id,
                                  zone, evidence=hit.evidence,
                                  reason=hit.evidence.get("reason", "condition went away")))
                continue
            mode, window = self.modes.mode_for(info.id, info.site_id, hit.point, now,
                                               info.parent_id, info.zone)
            if m is None and hit.seen is not None:  # raised by a timer: its last reading's
                device_ts, received = hit.seen
            d = Decision(Action.RAISE, PRIORITY[cls], key, cls, hit.at, info.site_id, zone,
                         hit.confidence, hit.evidence, mode, device_ts=device_ts,
                         received_at=received,
                         reason="re-occurred" if hit.edge is Edge.RECUR else "condition true",
                         seq=seq)
            if window is not None:
                d.evidence["mode_window"] = {"mode": mode.value, "owner": window.owner,
                                             "reason": window.reason}
            if cls is AlarmClass.FIRE:
                self._confirm(st, hit, d, now)
            elif cls in _GROUPED:
                d.group_key = f"{cls.value}:{info.site_id or ''}"
            if d.confidence is None:
                d.confidence = 1.0
            self.put(d)

    def _confirm(self, st: DeviceState, hit: Hit, d: Decision, now: float) -> None:
        """Confidence and evidence of a fire: multi-criteria at the detector, coincidence in
        the zone (which also raises the confidence of the other alarms of the zone)."""
        p = st.params.multi
        conf = hit.confidence if hit.confidence is not None else p.single
        if hit.type == smoke.ALARM and st.last is not None:
            multi = coincidence.multi_evidence(st, st.last, hit.at)
            if multi:
                conf = max(conf, p.multi)
                d.evidence["multi_criteria"] = multi
        zk = self.zone_key(st, hit.zone)
        if zk is not None:
            me = (st.info.id, hit.point)
            source = _source(st, hit)
            others = self.zones.add(zk, me, hit.type, now, p.window_s, source)
            # detectors in alarm whose verification runs: confirmed now, re-read at once
            verifying = self.zones.verifying(zk, me, source, now, p.window_s)
            for (dev, pt), ty in verifying:
                self._rearm.append((dev, cond_key(ty, pt)))
            if others or verifying:
                conf = max(conf, p.coincidence)
                d.evidence["coincidence"] = [
                    {"device_id": dev, "point": pt, "type": ty} for (dev, pt), ty in others] + [
                    {"device_id": dev, "point": pt, "type": ty, "verifying": True}
                    for (dev, pt), ty in verifying]
                # each raised alarm of the zone is annotated once, when first confirmed
                fresh = set(self.zones.confirm(zk, [m for m, _ in others]))
                self.zones.confirm(zk, [me])
                for (dev, pt), ty in others:
                    if (dev, pt) not in fresh:
                        continue
                    other = self.devices.get(dev)
                    self.put(Decision(
                        Action.ANNOTATE, d.priority, AlarmKey(dev, pt, ty), AlarmClass.FIRE,
                        now, other.info.site_id if other else None, confidence=p.coincidence,
                        evidence={"coincidence": [{"device_id": me[0], "point": me[1],
                                                   "type": hit.type}], "confirmed": True},
                        reason="confirmed by a second signal in the zone"))
        d.confidence = conf
        d.evidence["confirmed"] = conf >= p.multi
        d.evidence["confidence"] = conf

    def _zone_verifying(self, st: DeviceState, alarm: Condition) -> None:
        """A smoke detector in alarm is a signal of its zone while its verification runs: the
        zone's detectors it confirms have their deadlines re-read."""
        for dev, pt in coincidence.in_alarm(self.zones, self.zone_key(st, None),  # type: ignore[arg-type]
                                            st, smoke.ALARM, alarm, self._now):
            self._rearm.append((dev, cond_key(smoke.ALARM, pt)))

    def _zone_confirms(self, st: DeviceState) -> bool:
        zk = self.zone_key(st, None)
        if zk is None:
            return False
        me = (st.info.id, "")
        return bool(self.zones.others(zk, me, st.info.location or f"{st.info.id}/",
                                      self.clock.now(), st.params.multi.window_s))

    def zone_key(self, st: DeviceState, event_zone: int | None) -> ZoneKey | None:
        info = st.info
        if info.kind is DeviceKind.ALARM_PANEL:
            return (info.site_id, info.id, event_zone) if event_zone else None
        if info.zone is None:
            return None
        return (info.site_id, info.parent_id, info.zone)

    def _mode_change(self, st: DeviceState, e: Event, point: str, mode: Mode, active: bool,
                     now: float) -> None:
        pt = point or None
        owner = f"device:{st.info.id}"
        if active:
            self.modes.add(ModeWindow("device", st.info.id, pt, mode, owner,
                                      f"{mode.value} reported by the device", now, None))
        else:
            self.modes.end("device", st.info.id, pt, mode)
        self.put(Decision(Action.MODE, PRIORITY[AlarmClass.FAULT],
                          AlarmKey(st.info.id, point, f"mode.{mode.value}"), AlarmClass.FAULT,
                          e.ts.timestamp(), st.info.site_id, e.zone or None, mode=mode,
                          mode_active=active, evidence={"location": e.location},
                          reason=f"{mode.value} {'on' if active else 'off'} reported by "
                                 f"{st.info.id}"))

    def put(self, d: Decision) -> None:
        """Queue a decision for the writer, stamped with its latency clocks."""
        d.decided = time.perf_counter()
        d.ingested_at = time.time()  # the alarm's "ingested" clock (docs/alarms.md)
        self.sink(d)

    # -- supervision -------------------------------------------------------------------------
    def _offline(self, st: DeviceState, at: float, why: str,
                 deadline: float | None = None) -> None:
        if st.is_active(OFFLINE):
            return
        info = st.info
        parent = self.devices.get(info.parent_id) if info.parent_id else None
        mode = self.modes.mode_for(info.id, info.site_id, "", at, info.parent_id, info.zone)[0]
        self._supervised(st, supervision.went_offline(
            st, at, why, mode=mode, parent=parent, children=self._children(info.id),
            deadline=deadline))

    def _online(self, st: DeviceState, now: float) -> None:
        self._supervised(st, supervision.came_online(st, now, self._children(st.info.id)))

    def _children(self, device_id: str) -> list[DeviceState]:
        devices = self.devices
        return [c for c in (devices.get(i) for i in self.children.get(device_id, ()))
                if c is not None]

    def _supervised(self, st: DeviceState, decisions: list[Decision]) -> None:
        if decisions:
            self._dirty.add(st.info.id)
        for d in decisions:
            self.put(d)

    def _schedule_heartbeat(self, st: DeviceState, now: float) -> None:
        due = (st.last_seen or now) + st.params.supervision.heartbeat_s
        st.hb_at = due
        self._push(due, _HEARTBEAT, st.info.id, "")

    # -- timers ------------------------------------------------------------------------------
    def _push(self, due: float, kind: int, device_id: str, key: str) -> None:
        heapq.heappush(self.heap, (due, next(self._seq), kind, device_id, key))
        if self.on_schedule is not None and self.heap[0][0] == due:
            self.on_schedule(due)

    def push_timer(self, due: float, device_id: str, key: str) -> None:
        """Re-check condition `key` of the device at centre time `due`."""
        self._push(due, _COND, device_id, key)

    def _schedule(self, st: DeviceState, timers: list[Timer]) -> None:
        for tm in timers:
            due = tm.due + st.skew
            st.conds[tm.key].timer_at = due
            self._push(due, _COND, tm.device_id, tm.key)

    def next_deadline(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def tick(self) -> float | None:
        """Run every deadline that is due; return the next deadline (centre time)."""
        now = self.clock.now()
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, _, kind, device_id, key = heapq.heappop(heap)
            st = self.devices.get(device_id)
            if st is None:
                continue
            if kind == _HEARTBEAT:
                self._heartbeat_due(st, due, now)
            else:
                self._cond_due(st, key, due, now)
            if self._rearm:
                self._rearm_due()
        return heap[0][0] if heap else None

    def _rearm_due(self) -> None:
        """Re-read the durations of the conditions queued in `_rearm`: run the ones now due
        (a raise may confirm more, which join the queue), arm the ones that came closer."""
        now = self.clock.now()
        queue = self._rearm
        while queue:
            device_id, key = queue.pop()
            st = self.devices.get(device_id)
            c = st.conds.get(key) if st is not None else None
            if st is None or c is None or c.spec is None:
                continue
            ctx = self.ctx
            ctx.reset(now - st.skew)
            for_s, clear_s = durations(ctx, st, split_key(key)[0], c.spec)
            deadline = c.deadline(for_s, clear_s)
            if deadline is None:
                continue
            due = deadline + st.skew
            if due <= now:
                c.timer_at = due
                self._cond_due(st, key, due, now)
            elif c.timer_at is None or due < c.timer_at:
                c.timer_at = due
                self._push(due, _COND, device_id, key)

    def _heartbeat_due(self, st: DeviceState, due: float, now: float) -> None:
        if st.hb_at != due:
            return
        st.hb_at = None
        hb = st.params.supervision.heartbeat_s
        deadline = (st.last_seen if st.last_seen is not None else now) + hb
        if deadline > now:
            st.hb_at = deadline
            self._push(deadline, _HEARTBEAT, st.info.id, "")
            return
        # raised_at is when this is decided (a deadline found late, after a restart or a
        # shortened heartbeat, is not back-dated); the missed deadline is in the evidence
        self._offline(st, now, f"no message for {hb:g} s (heartbeat deadline)", deadline)

    def _cond_due(self, st: DeviceState, key: str, due: float, now: float) -> None:
        c = st.conds.get(key)
        if c is None or c.timer_at != due or c.spec is None:
            return
        c.timer_at = None
        boss = SUPERSEDED_BY.get(key)
        if boss is not None and st.is_active(boss) and not c.active:
            c.force_clear()  # e.g. a pre-alarm never raises once the fire alarm is up
            return
        type_, point = split_key(key)
        t_dev = now - st.skew
        ctx = self.ctx
        ctx.reset(t_dev)
        cls = c.spec[2]
        for_s, clear_s = durations(ctx, st, type_, c.spec)  # the parameters in force now
        c.spec = (for_s, clear_s, cls)
        deadline = c.deadline(for_s, clear_s)
        if deadline is None:
            return
        if t_dev < deadline:
            c.timer_at = deadline + st.skew
            self._push(c.timer_at, _COND, st.info.id, key)
            return
        ctx.reset(max(t_dev, deadline))
        hit = step(ctx, st, type_, AlarmClass(cls), c.level, for_s, clear_s, point)
        if hit is not None:
            hit.evidence = self._timer_evidence(st, type_, for_s, clear_s)
            hit.confidence = TIMER_CONFIDENCE.get(type_)
            if hit.edge is not Edge.CLEAR and cls == AlarmClass.FIRE and type_ == smoke.ALARM:
                hit.evidence["alarm_pct_per_m"] = st.params.smoke.alarm_pct_per_m
            self._emit(st, ctx.hits, None, now)
        if ctx.timers:
            self._schedule(st, ctx.timers)
        ctx.reset(ctx.t)
        if st.dirty:
            self._dirty.add(st.info.id)

    @staticmethod
    def _timer_evidence(st: DeviceState, type_: str, for_s: float,
                        clear_s: float) -> dict[str, Any]:
        ev: dict[str, Any] = {"rule": type_, "by": "timer", "for_s": for_s, "clear_s": clear_s}
        if st.last is not None:
            for f in _EVIDENCE_FIELDS:
                v = getattr(st.last, f)
                if v is not None:
                    ev[f] = v
        return ev

    # -- persistence -------------------------------------------------------------------------
    def mark_dirty(self, device_id: str) -> None:
        self._dirty.add(device_id)

    def take_dirty(self) -> list[tuple[str, bytes]]:
        """Serialise the devices whose restart-relevant state changed, and mark them clean."""
        out = []
        ids, self._dirty = self._dirty, set()
        for device_id in ids:
            st = self.devices.get(device_id)
            if st is not None and st.dirty:
                st.dirty = False
                out.append((device_id, st.dump()))
        return out


def _source(st: DeviceState, hit: Hit) -> str:
    """Where a fire signal comes from: the place a panel event names, else the device's."""
    loc = hit.evidence.get("location") if st.info.kind is DeviceKind.ALARM_PANEL else None
    return loc or st.info.location or f"{st.info.id}/{hit.point}"
