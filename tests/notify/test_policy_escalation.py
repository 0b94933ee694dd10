"""Pure logic of notify/: policies (who gets what, quiet hours, grouping), escalation chains and
the signed links. Unit and Hypothesis property tests; no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower.alarms import PRIORITY, AlarmClass
from notify import compose, escalation, links
from notify.channels import CHANNELS
from notify.escalation import Chain, ChainError, Step
from notify.policy import (
    RECIPIENTS,
    AlarmFacts,
    Policy,
    PolicyError,
    group_key,
    plan,
    quiet_until,
    validate,
)

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai


def facts(cls: AlarmClass = AlarmClass.FIRE, *, unit: int | None = 7,
          path: tuple[int, ...] = (1, 2, 3)) -> AlarmFacts:
    return AlarmFacts(cls, PRIORITY[cls], "s1", unit, path)


def pol(id_: int = 1, **kw: object) -> Policy:
    base: dict[str, object] = {"name": f"p{id_}", "classes": ("fire",),
                               "recipients": ("unit_responsible",)}
    base.update(kw)
    return Policy(id=id_, **base)  # type: ignore[arg-type]


def test_a_fire_reaches_every_role_of_the_matching_policies_at_once() -> None:
    ps = [pol(1, recipients=("unit_responsible", "grid_member")),
          pol(2, recipients=("duty_operator",), jurisdiction_id=2),
          pol(3, recipients=("duty_officer",), jurisdiction_id=99),  # another subtree
          pol(4, recipients=("unit_manager",), unit_id=8)]  # another unit
    got = plan(facts(), ps, T0)
    assert [t.recipient for t in got] == ["duty_operator", "grid_member", "unit_responsible"]
    assert all(t.deliver_at == T0 and t.group_window_s == 0 for t in got)


def test_quiet_hours_hold_a_fault_until_they_end_but_never_a_fire() -> None:
    night = dict(classes=("fire", "fault"), quiet_start=time(22, 0), quiet_end=time(7, 0))
    fault = plan(facts(AlarmClass.FAULT), [pol(**night)], T0)[0]  # type: ignore[arg-type]
    assert fault.deliver_at == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 07:00 Shanghai
    fire = plan(facts(AlarmClass.FIRE), [pol(**night)], T0)[0]  # type: ignore[arg-type]
    assert fire.deliver_at == T0


def test_the_most_urgent_handling_wins_when_policies_overlap() -> None:
    ps = [pol(1, classes=("offline",), quiet_start=time(22, 0), quiet_end=time(7, 0),
              group_window_s=300, channels=("email",)),
          pol(2, classes=("offline",), group_window_s=60, channels=("sms",))]
    (t,) = plan(facts(AlarmClass.OFFLINE), ps, T0)
    assert t.deliver_at == T0 and t.group_window_s == 60
    assert t.channels == frozenset({"email", "sms"}) and t.policies == (1, 2)


def test_fire_and_supervisory_are_never_grouped() -> None:
    p = pol(classes=("fire", "supervisory", "fault"), group_window_s=120)
    assert plan(facts(AlarmClass.FIRE), [p], T0)[0].group_window_s == 0
    assert plan(facts(AlarmClass.SUPERVISORY), [p], T0)[0].group_window_s == 0
    assert plan(facts(AlarmClass.FAULT), [p], T0)[0].group_window_s == 120


@pytest.mark.parametrize("kw, reason", [
    ({"classes": ()}, "at least one alarm class"),
    ({"classes": ("smoke",)}, "unknown alarm class 'smoke'"),
    ({"recipients": ("mayor",)}, "unknown recipient 'mayor'"),
    ({"channels": ("pager",)}, "unknown channel 'pager'"),
    ({"quiet_start": time(22, 0)}, "quiet hours need both"),
    ({"quiet_start": time(22, 0), "quiet_end": time(7, 0)}, "never apply to fire"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"jurisdiction_id": 1, "unit_id": 2}, "not both"),
])
def test_a_policy_that_cannot_work_is_refused_with_its_reason(kw: dict[str, object],
                                                              reason: str) -> None:
    with pytest.raises(PolicyError, match=reason):
        validate(pol(1, **kw), CHANNELS)


@given(st.times(), st.times(), st.datetimes(min_value=datetime(2000, 1, 1),
                                            max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_quiet_hours_end_within_a_day_and_only_inside_them(start: time, end: time,
                                                          now: datetime) -> None:
    if start == end:
        return
    p = pol(classes=("fault",), quiet_start=start.replace(microsecond=0),
            quiet_end=end.replace(microsecond=0))
    until = quiet_until(p, now)
    if until is not None:
        assert now < until <= now + timedelta(days=1)
        assert quiet_until(p, until) is None or until == now + timedelta(days=1)


@given(st.sampled_from(list(AlarmClass)),
       st.lists(st.builds(
           lambda i, cls, rec, q, w: Policy(i, "p", cls, rec, quiet_start=q[0], quiet_end=q[1],
                                            group_window_s=w),
           st.integers(1, 99), st.lists(st.sampled_from([c.value for c in AlarmClass]),
                                        min_size=1, unique=True).map(tuple),
           st.lists(st.sampled_from(list(RECIPIENTS)), min_size=1, unique=True).map(tuple),
           st.sampled_from([(None, None), (time(22), time(7)), (time(1), time(5))]),
           st.integers(0, 3600)), max_size=6))
def test_fire_is_never_held_or_grouped_by_any_policy(cls: AlarmClass,
                                                     ps: list[Policy]) -> None:
    for t in plan(facts(cls), ps, T0):
        if cls is AlarmClass.FIRE:
            assert t.deliver_at == T0 and t.group_window_s == 0
        assert t.deliver_at >= T0


def test_floods_share_one_group_per_contact_site_and_window() -> None:
    a, end = group_key("email:x", "s1", T0 + timedelta(seconds=5), 60)
    b, _ = group_key("email:x", "s1", T0 + timedelta(seconds=59), 60)
    c, _ = group_key("email:x", "s2", T0 + timedelta(seconds=5), 60)
    d, _ = group_key("email:x", "s1", T0 + timedelta(seconds=61), 60)
    assert a == b and a != c and a != d and end == T0 + timedelta(seconds=60)


# -- escalation -------------------------------------------------------------------------------
CHAIN = Chain(1, "fire", (Step(60, ("duty_leader",)), Step(180, ("duty_officer",))), 300)


def test_steps_are_measured_from_the_raise_then_the_last_repeats() -> None:
    assert escalation.due_at(CHAIN, 0, T0) == T0 + timedelta(seconds=60)
    assert escalation.after_step(CHAIN, 0, T0, T0 + timedelta(seconds=61)) == (
        1, T0 + timedelta(seconds=180))
    sent = T0 + timedelta(seconds=181)
    assert escalation.after_step(CHAIN, 1, T0, sent) == (1, sent + timedelta(seconds=300))
    assert escalation.recipients(CHAIN, 5) == ("duty_officer",)


def test_a_watch_window_makes_escalation_faster() -> None:
    assert escalation.due_at(CHAIN, 0, T0, 0.5) == T0 + timedelta(seconds=30)


def test_the_deepest_chain_on_the_path_wins() -> None:
    city = Chain(1, "fire", CHAIN.steps)
    county = Chain(2, "fire", CHAIN.steps, jurisdiction_id=2)
    other = Chain(3, "fire", CHAIN.steps, jurisdiction_id=9)
    assert escalation.choose([city, county, other], "fire", (1, 2, 3)) is county
    assert escalation.choose([city, other], "fire", (1, 2, 3)) is city
    assert escalation.choose([city], "fault", (1, 2, 3)) is None


@pytest.mark.parametrize("steps, reason", [
    ([], "non-empty list"),
    ([{"after_s": 0, "recipients": ["duty_leader"]}], "between 1 and"),
    ([{"after_s": 60, "recipients": ["duty_leader"]}, {"after_s": 30, "recipients": ["x"]}],
     "later than the step before"),
    ([{"after_s": 60, "recipients": ["boss"]}], "unknown recipient 'boss'"),
    ([{"after_s": 60, "recipients": []}], "non-empty list"),
    ([{"after_s": 60.5, "recipients": ["duty_leader"]}], "whole number"),
])
def test_a_bad_chain_is_refused_with_its_reason(steps: object, reason: str) -> None:
    with pytest.raises(ChainError, match=reason):
        escalation.parse_steps(steps)


@given(st.lists(st.integers(1, 86400), min_size=1, max_size=10, unique=True),
       st.floats(0.05, 1.0))
def test_escalation_times_never_go_backwards(afters: list[int], factor: float) -> None:
    steps = escalation.parse_steps([{"after_s": a, "recipients": ["duty_leader"]}
                                    for a in sorted(afters)])
    chain = Chain(1, "fire", steps, 60)
    at, step = escalation.due_at(chain, 0, T0, factor), 0
    for _ in range(len(steps) + 3):
        step, nxt = escalation.after_step(chain, step, T0, at, factor)
        assert nxt >= at
        at = nxt


# -- links ------------------------------------------------------------------------------------
def test_a_link_verifies_once_signed_and_not_when_altered() -> None:
    token = links.make("k" * 43, "ack", 42)
    v = links.verify(["k" * 43], "ack", token)
    assert v.link_id == 42 and v.hash == links.token_hash(token)
    with pytest.raises(links.LinkError):
        links.verify(["k" * 43], "read", token)  # another purpose
    with pytest.raises(links.LinkError):
        links.verify(["other" * 9], "ack", token)
    forged = token.replace("42.", "43.", 1)
    with pytest.raises(links.LinkError):
        links.verify(["k" * 43], "ack", forged)
    # a rotated key still verifies the links already sent
    assert links.verify(["new" * 15, "k" * 43], "ack", token).link_id == 42


@given(st.text(max_size=300))
def test_any_text_is_refused_cleanly_as_a_token(text: str) -> None:
    try:
        links.verify(["k" * 43], "ack", text)
    except links.LinkError:
        pass


def test_the_link_rides_in_the_fragment() -> None:
    assert links.url("https://centre.example/", "ack", "1.a.b") == (
        "https://centre.example/console/link.html#ack/1.a.b")


def test_an_alarm_message_names_the_place_and_the_link() -> None:
    subject, body = compose.alarm(
        {"id": 5, "class": "fire", "site_name": "第一中学", "location": "3F 走廊",
         "point": "", "unit_name": "第一中学", "site_address": "人民路 1 号",
         "device_id": "smk-1", "type": "smoke", "raised_at": T0}, link="https://x/l", step=2,
        unacked_s=75)
    assert subject.startswith("【升级 Escalation 2】【火警 FIRE】第一中学 / 3F 走廊")
    assert "Not acknowledged for 75 s" in body and "https://x/l" in body
    assert "2026-12-07 23:00:00" in body  # Shanghai time
