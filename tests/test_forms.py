"""办理 forms in a headless app: errors at the field, nothing saved until valid, Esc cancels."""

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from textual.app import App
from textual.widgets import Input, Label, OptionList, Select, SelectionList

from domain import commands as c
from domain.campaign import load_config
from domain.case import Case
from domain.errors import DomainError
from domain.values import mu_to_m2
from service.ledger import LandLedger
from tui.forms import ActionMenu, CommandForm, field_specs, open_actions

TODAY = date(2022, 3, 20)
CONFIG = load_config()
SIZE = (80, 24)
MISSING = object()


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test, run to completion (the project has no pytest async plugin)."""

    @functools.wraps(test)
    def sync(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return sync


class Host(App[None]):
    """Pushes one screen and keeps what it was dismissed with."""

    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.form = screen
        self.result: Any = MISSING

    def on_mount(self) -> None:
        self.push_screen(self.form, callback=self.done)

    def done(self, result: Any) -> None:
        self.result = result


class Saves:
    """A save() that records its commands, or raises what it is given."""

    def __init__(self, error: DomainError | None = None) -> None:
        self.saved: list[c.Command] = []
        self.error = error

    def __call__(self, command: c.Command) -> None:
        if self.error is not None:
            raise self.error
        self.saved.append(command)


def form(kind: type[c.Command], save: Saves, **options: Any) -> CommandForm:
    ref = "" if kind is c.FindSite else "SD-2022-0001"
    return CommandForm(kind, campaign=CONFIG, today=TODAY, save=save, ref=ref, **options)


def case(**flags: bool) -> Case:
    site = c.parse_command(
        {
            "cmd": "find_site",
            "ref": "SD-2022-0001",
            "on": "2022-02-10",
            "source": "巡查",
            "township": "苏店镇",
            "violation_types": ["占用耕地"],
            "area_m2": "200",
            "unit": "苏店自然资源所",
        }
    )
    assert isinstance(site, c.FindSite)
    found = Case(id=uuid4(), version=1, ref=site.ref, found_on=site.on, site=site)
    changes: dict[str, Any] = dict(flags)
    return replace(found, **changes)


async def settle(host: Host, pilot: Any) -> None:
    await pilot.pause()
    await host.workers.wait_for_complete()
    await pilot.pause()


def test_fields_follow_the_model_and_the_event_table() -> None:
    specs = field_specs(c.FindSite, CONFIG)
    assert [s.name for s in specs] == list(c.FindSite.model_fields)
    kinds = {s.name: s.kind for s in specs}
    assert kinds["on"] == "date"
    assert kinds["source"] == "choice"
    assert kinds["violation_types"] == "choices"
    assert kinds["area_m2"] == "area"
    assert kinds["major_hazard"] == "bool"
    assert kinds["lon"] == "number"
    township = next(s for s in specs if s.name == "township")
    assert township.choices == CONFIG.townships
    assert {s.name for s in specs if s.required} == {
        "on",
        "source",
        "township",
        "violation_types",
        "area_m2",
        "unit",
    }
    decide = {s.name: s.kind for s in field_specs(c.DecidePenalty, CONFIG)}
    assert decide["fine_yuan"] == "money"
    refer = {s.name: s.kind for s in field_specs(c.Refer, CONFIG)}
    assert refer["persons"] == "integer"
    file_case = {s.name: s.kind for s in field_specs(c.FileCase, CONFIG)}
    assert file_case["handlers"] == "names"
    assert file_case["unit"] == "choice"


@run
async def test_file_case_needs_its_number_then_saves() -> None:
    save = Saves()
    screen = form(c.FileCase, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert screen.query_one("#field-on", Input).value == "2022-03-20"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert save.saved == []
        assert screen.errors == {"case_no": "立案编号：必填"}
        assert screen.query_one("#row-case_no").has_class("-invalid")
        assert host.focused is screen.query_one("#field-case_no")
        assert host.result is MISSING

        screen.query_one("#field-case_no", Input).value = "上党自然资立〔2022〕7号"
        screen.query_one("#field-handlers", Input).value = "张三、李四,王五"
        screen.query_one("#field-unit", Select).value = "执法监察大队"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {}
        assert save.saved == [
            c.FileCase(
                ref="SD-2022-0001",
                on=TODAY,
                case_no="上党自然资立〔2022〕7号",
                unit="执法监察大队",
                handlers=("张三", "李四", "王五"),
            )
        ]
        assert host.result == save.saved[0]


@run
async def test_an_area_in_mu_arrives_in_m2() -> None:
    save = Saves()
    screen = form(c.FindSite, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-source", Select).value = "卫片"
        screen.query_one("#field-township", Select).value = "荫城镇"
        screen.query_one("#field-unit", Select).value = "荫城自然资源所"
        screen.query_one("#field-violation_types", SelectionList).select("占用耕地")
        screen.query_one("#field-area_m2", Input).value = "3"
        screen.query_one("#unit-area_m2", Select).value = "mu"
        screen.query_one("#field-cultivated_m2", Input).value = "1000"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {}
        [saved] = save.saved
        assert isinstance(saved, c.FindSite)
        assert saved.area_m2 == mu_to_m2(Decimal(3)) == Decimal("2000.00")
        assert saved.cultivated_m2 == Decimal(1000)  # ㎡, as chosen by default
        assert saved.ref == ""  # generated by the application
        assert saved.violation_types == ("占用耕地",)


@run
async def test_a_bad_amount_in_mu_is_named_at_its_field() -> None:
    save = Saves()
    screen = form(c.RecordRectification, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-restored_m2", Input).value = "两亩"
        screen.query_one("#unit-restored_m2", Select).value = "mu"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert save.saved == []
        assert list(screen.errors) == ["restored_m2"]
        assert "复耕面积" in screen.errors["restored_m2"]
        assert host.focused is screen.query_one("#field-restored_m2")


@run
async def test_a_rule_broken_in_save_is_shown_at_the_date() -> None:
    message = "日期 2022-01-01 早于发现日期 2022-02-10"
    save = Saves(DomainError(message, field="on"))
    screen = form(c.Stop, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-on", Input).value = "2022-01-01"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {"on": message}
        assert screen.query_one("#row-on").has_class("-invalid")
        assert host.focused is screen.query_one("#field-on")
        assert host.result is MISSING  # still open
        assert host.screen is screen


@run
async def test_a_rule_of_no_field_is_shown_above_the_form() -> None:
    message = "案件 SD-2022-0001 已销号，只能重开（reopen）、更正（correct_site）或标记（flag）"
    screen = form(c.Stop, Saves(DomainError(message, field="cmd")))
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {"": message}
        assert host.result is MISSING


@run
async def test_an_unexpected_failure_is_a_notification_and_the_form_stays() -> None:
    def broken(command: c.Command) -> None:
        raise OSError("磁盘已满")

    screen = CommandForm(c.Stop, campaign=CONFIG, today=TODAY, save=broken, ref="SD-2022-0001")
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert host.result is MISSING
        assert any("磁盘已满" in n.message for n in host._notifications)
        assert not screen.saving


@run
async def test_a_parse_error_at_a_field_writes_nothing() -> None:
    save = Saves()
    screen = form(c.DecidePenalty, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-decision_no", Input).value = "罚字1号"
        screen.query_one("#field-fine_yuan", Input).value = "1.234"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert save.saved == []
        assert list(screen.errors) == ["fine_yuan"]
        assert "最多两位小数" in screen.errors["fine_yuan"]


@run
async def test_esc_cancels_with_none() -> None:
    save = Saves()
    screen = form(c.FileCase, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-case_no", Input).value = "立1"
        await pilot.press("escape")
        await pilot.pause()
        assert host.result is None
        assert save.saved == []


@run
async def test_a_correction_sends_only_what_changed() -> None:
    save = Saves()
    screen = form(c.CorrectSite, save, hints={"village": "东村"})
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert screen.query_one("#field-village", Input).placeholder == "东村"
        screen.query_one("#field-village", Input).value = "西村"
        screen.query_one("#field-major_hazard", Select).value = True
        screen.query_one("#field-reason", Input).value = "笔误"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        [saved] = save.saved
        assert isinstance(saved, c.CorrectSite)
        assert saved.changes() == {"village": "西村", "major_hazard": True}


@pytest.mark.parametrize(
    ("flags", "titles"),
    [
        ({"closed_out": True, "rectified": True}, ["更正", "重开", "标记"]),
        ({"dismissed": True}, ["更正", "重开", "标记"]),
        ({"filed": True, "rectifying": True}, ["更正", "制止", "排除", "处罚决定", "移送"]),
    ],
)
@run
async def test_the_menu_lists_what_the_state_accepts(
    flags: dict[str, bool], titles: list[str]
) -> None:
    menu = ActionMenu.for_case(case(**flags))
    host = Host(menu)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = menu.query_one(OptionList)
        prompts = [str(shown.get_option_at_index(i).prompt) for i in range(shown.option_count)]
        assert prompts[: len(titles)] == titles
        if flags.get("closed_out") or flags.get("dismissed"):
            assert prompts == titles


@run
async def test_the_menu_dismisses_with_the_chosen_command() -> None:
    menu = ActionMenu.for_case(case(closed_out=True, rectified=True))
    host = Host(menu)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.press("down", "enter")
        await pilot.pause()
        assert host.result is c.Reopen


@run
async def test_the_menu_cancels_with_none() -> None:
    host = Host(ActionMenu.for_case(case()))
    async with host.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        assert host.result is None


@pytest.mark.parametrize("kind", c.CASE_COMMANDS + c.CAMPAIGN_COMMANDS)
@run
async def test_every_form_opens_at_80_by_24_and_cancels(kind: type[c.Command]) -> None:
    screen = form(kind, Saves())
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = screen.query_one("#dialog")
        assert dialog.region.width <= 80 and dialog.region.height <= 24
        assert host.focused is not None
        await pilot.press("escape")
        await pilot.pause()
        assert host.result is None


@run
async def test_each_problem_is_shown_at_its_own_field_and_cleared_by_editing() -> None:
    save = Saves()
    screen = form(c.DecidePenalty, save)
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen.query_one("#field-on", Input).value = "2022-02-30"
        screen.query_one("#field-confiscated_income_yuan", Input).value = "-5"
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {
            "on": "日期：“2022-02-30”不是有效日期，应为 YYYY-MM-DD",
            "decision_no": "处罚决定书编号：必填",
            "fine_yuan": "罚款：必填",
            "confiscated_income_yuan": "没收违法所得：“-5”不能小于 0",
        }
        assert host.focused is screen.query_one("#field-on")
        screen.query_one("#field-on", Input).value = "2022-02-28"
        await pilot.pause()
        assert "on" not in screen.errors
        assert not screen.query_one("#row-on").has_class("-invalid")
        assert screen.query_one("#row-fine_yuan").has_class("-invalid")
        assert save.saved == []


class Desk(App[None]):
    """A case screen's 办理, as the dashboard does it, over a real store."""

    def __init__(self, ledger: LandLedger) -> None:
        super().__init__()
        self.ledger = ledger
        self.saved: list[c.Command] = []

    def on_mount(self) -> None:
        open_actions(
            self,
            self.ledger.case("SD-2022-0001"),
            campaign=self.ledger.campaign().config,
            today=TODAY,
            save=lambda command: self.record(command),
            saved=self.saved.append,
        )

    def record(self, command: c.Command) -> None:
        self.ledger.record([command], actor="测试")


def test_file_a_case_through_the_menu_and_the_service(tmp_path: Path) -> None:
    ledger = LandLedger(str(tmp_path / "ledger.db"))
    try:
        ledger.record([case().site], actor="测试")
        asyncio.run(_file_through_the_menu(ledger))
        assert ledger.case("SD-2022-0001").filed
        assert ActionMenu.for_case(ledger.case("SD-2022-0001")).titles[3:5] == ["处罚决定", "移送"]
    finally:
        ledger.close()


async def _file_through_the_menu(ledger: LandLedger) -> None:
    desk = Desk(ledger)
    async with desk.run_test(size=SIZE) as pilot:
        await pilot.pause()
        menu = desk.screen
        assert isinstance(menu, ActionMenu)
        assert menu.titles.index("立案") == 3
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause()
        screen = desk.screen
        assert isinstance(screen, CommandForm) and screen.command is c.FileCase
        screen.query_one("#field-on", Input).value = "2022-01-01"  # before the find
        screen.query_one("#field-case_no", Input).value = "立〔2022〕1号"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await desk.workers.wait_for_complete()
        await pilot.pause()
        assert screen.errors == {"on": "日期 2022-01-01 早于发现日期 2022-02-10"}
        assert desk.screen is screen and desk.saved == []
        screen.query_one("#field-on", Input).value = "2022-02-15"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await desk.workers.wait_for_complete()
        await pilot.pause()
        assert [type(s) for s in desk.saved] == [c.FileCase]
        assert desk.screen is not screen


@run
async def test_user_text_is_shown_as_text_not_markup() -> None:
    save = Saves()
    screen = CommandForm(
        c.CorrectSite,
        campaign=CONFIG,
        today=TODAY,
        save=save,
        ref="SD-[b]1[/b]",
        hints={"party_name": "[red]张三", "township": "[b]苏店镇"},
    )
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "SD-[b]1[/b]" in str(screen.query_one("#fixed-ref").render())
        assert screen.query_one("#field-party_name", Input).placeholder == "[red]张三"
        assert screen.query_one("#field-township", Select).is_blank()
        await pilot.press("ctrl+s")
        await settle(host, pilot)
        assert screen.errors == {"reason": "原因：必填"}
        assert save.saved == []


def test_only_a_correction_leaves_blank_fields_as_they_are() -> None:
    keep = {s.name for s in field_specs(c.CorrectSite, CONFIG) if s.keep}
    assert keep == set(c.SITE_FIELDS)
    assert not any(s.keep for s in field_specs(c.FindSite, CONFIG))
    assert not any(s.keep for s in field_specs(c.SetDeadline, CONFIG))


@run
async def test_an_area_in_mu_shows_its_m2_and_enter_moves_on() -> None:
    screen = form(c.RecordRectification, Saves())
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.pause()
        conv = screen.query_one("#conv-restored_m2", Label)
        screen.query_one("#field-restored_m2", Input).value = "5"
        await pilot.pause()
        assert not conv.has_class("-shown")
        screen.query_one("#unit-restored_m2", Select).value = "mu"
        await pilot.pause()
        assert conv.has_class("-shown")
        assert "3333.33㎡" in str(conv.render())
        screen.query_one("#field-restored_m2", Input).value = "五"
        await pilot.pause()
        assert not conv.has_class("-shown")
        assert "亩" in str(screen.query_one("#field-restored_m2").tooltip)

        screen.query_one("#field-on", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert host.focused is screen.query_one("#field-demolished_m2")


@run
async def test_esc_waits_while_saving() -> None:
    release = threading.Event()
    saved: list[c.Command] = []

    def slow(command: c.Command) -> None:
        release.wait(5)
        saved.append(command)

    screen = CommandForm(c.Stop, campaign=CONFIG, today=TODAY, save=slow, ref="SD-2022-0001")
    host = Host(screen)
    async with host.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.saving
        await pilot.press("escape")
        await pilot.pause()
        assert host.result is MISSING
        release.set()
        await settle(host, pilot)
        assert host.result == saved[0]
