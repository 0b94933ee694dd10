"""The words of a notification: subject and body of an alarm, an escalation, a grouped flood and
a work prompt. Chinese first (the people reached are Chinese), the English label after it so a
foreign engineer reading the log understands. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

CLASS_LABEL: dict[str, str] = {
    "fire": "火警 FIRE",
    "supervisory": "监管报警 Supervisory",
    "fault": "故障 Fault",
    "offline": "离线 Offline",
    "early_warning": "预警 Early warning",
}
TZ = ZoneInfo("Asia/Shanghai")
MAX_BODY = 3500  # SMS gateways and robots cut long texts; a grouped flood is summarised


def _when(at: datetime | None) -> str:
    return at.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S") if at else "?"


def _place(a: Mapping[str, Any]) -> str:
    parts = [a.get("site_name") or a.get("site_id") or "", a.get("location") or "",
             a.get("point") or ""]
    return " / ".join(p for p in parts if p)


def alarm(a: Mapping[str, Any], *, link: str | None, step: int = 0,
          unacked_s: float | None = None) -> tuple[str, str]:
    """Subject and body for an alarm (step 0) or its escalation (step ≥ 1)."""
    label = CLASS_LABEL.get(a["class"], a["class"])
    head = f"【{label}】{_place(a)}"
    if step:
        head = f"【升级 Escalation {step}】" + head
    lines = [head,
             f"单位 Unit: {a.get('unit_name') or '-'}",
             f"地址 Address: {a.get('site_address') or '-'}",
             f"设备 Device: {a.get('device_id')} ({a.get('type')})",
             f"时间 Raised: {_when(a.get('raised_at'))}"]
    if unacked_s is not None:
        lines.append(f"未确认 Not acknowledged for {int(unacked_s)} s")
    lines.append(f"报警编号 Alarm: #{a['id']}")
    if link:
        lines.append(f"确认 Acknowledge: {link}")
    return head[:200], "\n".join(lines)


def grouped(subject: str, bodies: Sequence[str], count: int) -> tuple[str, str]:
    """One message for a flood: the first subject with the count, each alarm's first lines."""
    head = f"{subject} (+{count - 1})" if count > 1 else subject
    parts: list[str] = [f"{count} 条报警 alarms in this window:"]
    for body in bodies:
        first = body.split("\n")
        parts.append(" · ".join(first[:1] + [x for x in first if x.startswith("报警编号")]))
    text = "\n".join(parts)
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY - 20] + "\n…"
    return head[:200], text


def prompt(title: str, body: str, *, link: str | None) -> tuple[str, str]:
    head = f"【工作提示 Work prompt】{title}"
    text = body if not link else f"{body}\n\n已阅 Confirm reading: {link}"
    return head[:200], text[:MAX_BODY]
