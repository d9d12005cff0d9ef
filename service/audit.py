"""`verify`: the hash chain recomputed and its first difference named in Chinese, for the command
line and the dashboard's 审计 screen alike (storage/chain.py defines the chain)."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from domain.campaign import CAMPAIGN_ID
from domain.errors import DomainError
from domain.events import BY_TOPIC
from domain.values import CHINA
from storage import chain
from storage.mapper import PydanticMapper
from storage.store import EventStore, VerifyCancelled

__all__ = ["VerifyCancelled", "VerifyResult", "describe", "parse_fingerprint", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found. `difference` names the first event that differs (position, case
    ref, event, recorded time, actor) in Chinese; "" when `ok`."""

    ok: bool
    checked: int  # events whose links were recomputed (up to the first difference)
    fingerprint: str  # the store's fingerprint N:HASH as recomputed (the whole log when ok)
    difference: str = ""
    position: int | None = None  # of the first event that differs
    ref: str = ""  # its case, when known
    fingerprint_ok: bool | None = None  # against the fingerprint given; None when none was
    linked_on: str = ""  # a note when events older than the chain were linked after the fact


def parse_fingerprint(text: str) -> tuple[int, bytes]:
    try:
        return chain.parse_fingerprint(text)
    except ValueError:
        raise DomainError(
            f"--fingerprint：“{text}”不是有效的数据指纹，应为 N:HASH（事件数:64 位十六进制）",
            field="fingerprint",
        ) from None


def verify(
    store: EventStore,
    fingerprint: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> VerifyResult:
    expected = parse_fingerprint(fingerprint) if fingerprint is not None else None
    check = store.verify_chain(
        expected, progress, (lambda: cancel.is_set()) if cancel is not None else None
    )
    linked = store.ledger_recorder.chain_linked_on()
    note = ""
    if linked:
        note = (
            f"前 {linked[1]} 个事件写于哈希链启用之前，于 {_shown_time(linked[0])} 补记链接："
            "只能证明它们自那时起未被改动"
        )
    if check.ok:
        return VerifyResult(
            True, check.checked, check.head, "", None, "", check.fingerprint_ok, note
        )
    problem = cast(chain.Problem, check.problem)
    text, ref = describe(store, problem, fingerprint or "")
    return VerifyResult(
        False,
        check.checked,
        check.head,
        text,
        problem.position or None,
        ref,
        check.fingerprint_ok,
        note,
    )


def describe(store: EventStore, p: chain.Problem, fingerprint: str) -> tuple[str, str]:
    """The first difference in Chinese, and the case's ref when known."""
    if p.kind == "extra_links":
        return (
            f"日志末尾缺少 {p.missing} 个事件：链接表记录了 {p.n + p.missing} 个，日志只有 "
            f"{p.n} 个（最后一个在位置 {p.position}）。末尾的事件被删除",
            "",
        )
    if p.kind == "truncated":
        return (
            f"库中只有 {p.n} 个事件，少于数据指纹 {fingerprint} 记录的 {p.n + p.missing} 个："
            "此后有事件被删除（末尾被截断）",
            "",
        )
    if p.kind == "fingerprint":
        return (
            f"前 {p.n} 个事件与数据指纹 {fingerprint} 不符，而库中的链接自洽：自该指纹导出以来，"
            f"前 {p.n} 个事件中有被改写、插入或删除的，链接表也被改写以掩盖",
            "",
        )
    event, ref = _event_text(store, p)
    where = f"第 {p.n} 个事件（位置 {p.position}）"
    if p.kind == "missing":
        return f"{where}之前缺少 {p.missing} 个事件：事件被删除。其后的第一个事件：{event}", ref
    if p.kind == "unlinked":
        return f"{where}没有链接：不是由本系统写入（插入的事件）。{event}", ref
    return f"{where}与其链接不符：内容被改动或调换。{event}", ref


def _event_text(store: EventStore, p: chain.Problem) -> tuple[str, str]:
    cls = BY_TOPIC.get(p.topic)
    name = f"{cls.TITLE}（{cls.__name__}）" if cls else f"未知类型 {p.topic}"
    ref = ""
    parts = []
    try:
        state: dict[str, Any] = cast(PydanticMapper, store.mapper).decode_state(p.topic, p.state)
    except Exception:
        state = {}
    ref = str(state.get("ref") or store.ledger_recorder.ref_of(p.originator) or "")
    if p.originator == CAMPAIGN_ID.hex:
        parts.append("专项行动（非案件）")
    else:
        parts.append(f"案件 {ref}" if ref else f"案件对象 {p.originator}")
    parts.append(f"第 {p.version} 版，{name}")
    if state:
        parts.append(f"记录于 {_shown_time(str(state.get('timestamp', '')))}")
        actor = str(state.get("actor", ""))
        unit = str(state.get("actor_unit", ""))
        parts.append(f"操作人 {actor}" + (f"（{unit}）" if unit else ""))
    else:
        parts.append("内容已无法读取")
    return "，".join(x for x in parts if x), ref


def _shown_time(text: str) -> str:
    try:
        return datetime.fromisoformat(text).astimezone(CHINA).isoformat(timespec="seconds")
    except ValueError:
        return text
