"""办理: the menu of the commands a case's state accepts, and a form made from a command's model.

The form knows no rule. Its fields, their order and which are required come from the command's
pydantic model; the values are checked by `parse_command` and then by the `save` callable (the
application, which runs the domain's rules). Either error is shown at the field it names, and
nothing is written until both accept the command.
"""

import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, OptionList, Select, SelectionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from domain.case import Case, valid_commands
from domain.commands import (
    AREAS_IN_MU,
    SITE_FIELDS,
    CaseCommand,
    Command,
    CorrectSite,
    parse_command,
)
from domain.errors import DomainError
from domain.events import CampaignConfig
from domain.values import label, mu_to_m2, two_places

# Each command's Chinese name, as the 办理 menu and the form's title show it.
COMMAND_TITLES: dict[str, str] = {
    "find_site": "发现登记",
    "correct_site": "更正",
    "stop": "制止",
    "dismiss": "排除",
    "file_case": "立案",
    "decide_penalty": "处罚决定",
    "refer": "移送",
    "order_rectification": "责令整改",
    "record_rectification": "整改记录",
    "complete_rectification": "整改到位",
    "close_out": "销号",
    "reopen": "重开",
    "flag": "标记",
    "set_contact": "设置联络人",
    "register_staff": "登记人员",
    "set_deadline": "设置期限",
}

# Names in a list (承办人): 张三、李四 or 张三,李四.
NAME_SEPARATORS = re.compile(r"[、,，;；]+")
UNIT_M2, UNIT_MU = "m2", "mu"
BLANK_PROMPT = "请选择"
NAME_WIDTH = 20  # cells: the longest label (永久基本农田面积 *) is 18


def command_title(kind: type[Command]) -> str:
    return COMMAND_TITLES.get(kind.NAME, kind.NAME)


# The fields of a command, read from its model --------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a form: its name, the kind of widget, whether it is required, its choices."""

    name: str
    kind: Literal[
        "text", "date", "choice", "choices", "names", "area", "money", "number", "integer", "bool"
    ]
    required: bool
    choices: tuple[Any, ...] = ()
    keep: bool = False  # a correction's site field: left blank, it stays as it is

    @property
    def title(self) -> str:
        return label(self.name) + (" *" if self.required else "")

    @property
    def help(self) -> str:
        """What to enter, in Chinese: the widget's tooltip, for the app's F1 help too."""
        parts = [label(self.name) + ("，必填" if self.required else "")]
        match self.kind:
            case "date":
                parts.append("格式 YYYY-MM-DD")
            case "choice":
                parts.append("从列表中选择：" + "、".join(str(v) for v in self.choices))
            case "choices":
                parts.append("可多选，空格键选中或取消")
            case "names":
                parts.append("多人用顿号或逗号分隔")
            case "area":
                parts.append("单位可选 ㎡ 或 亩（1 亩 = 10000/15 ㎡），最多两位小数")
            case "money":
                parts.append("单位 元，最多两位小数")
            case "integer":
                parts.append("整数")
            case "number":
                parts.append("数字")
            case "bool":
                parts.append("选中表示是")
        if self.keep:
            parts.append("留空表示不变")
        return "；".join(parts)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip Annotated and Optional: (the bare type, whether None is allowed)."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(annotation):
            optional = True
            rest = [a for a in get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return annotation, optional


def field_specs(model: type[Command], campaign: CampaignConfig) -> list[FieldSpec]:
    """The model's fields in its order (DESIGN's event table), each with the widget it needs.
    Townships and units are chosen from the campaign's lists in their official order."""
    specs = []
    for name, info in model.model_fields.items():
        bare, _ = _unwrap(info.annotation)
        required = info.is_required()
        keep = issubclass(model, CorrectSite) and name in SITE_FIELDS
        origin = get_origin(bare)
        if name == "township":
            spec = FieldSpec(name, "choice", required, campaign.townships)
        elif name == "unit":
            spec = FieldSpec(name, "choice", required, campaign.units)
        elif bare is bool:
            spec = FieldSpec(name, "bool", required)
        elif bare is date:
            spec = FieldSpec(name, "date", required)
        elif origin is Literal:
            spec = FieldSpec(name, "choice", required, tuple(v for v in get_args(bare) if v))
        elif origin is tuple:
            item, _ = _unwrap(get_args(bare)[0])
            if get_origin(item) is Literal:
                spec = FieldSpec(name, "choices", required, get_args(item))
            else:
                spec = FieldSpec(name, "names", required)
        elif bare is int:
            spec = FieldSpec(name, "integer", required)
        elif bare is Decimal and name.endswith("_m2"):
            spec = FieldSpec(name, "area", required)
        elif bare is Decimal and name.endswith("_yuan"):
            spec = FieldSpec(name, "money", required)
        elif bare is Decimal:
            spec = FieldSpec(name, "number", required)
        else:
            spec = FieldSpec(name, "text", required)
        specs.append(replace(spec, keep=keep) if keep else spec)
    return specs


# The form --------------------------------------------------------------------------------


class CommandForm(ModalScreen[Command | None]):
    """A command's form. `ctrl+s` validates and saves; the screen is dismissed with the saved
    command, or with None on `Esc`.

    `save` is called in a worker thread (it writes to the store); a DomainError it raises is
    shown at the field it names, any other error as a notification, and the form stays open.
    """

    DEFAULT_CSS = f"""
    CommandForm {{
        align: center middle;
    }}
    CommandForm > #dialog {{
        width: 100%;
        max-width: 100;
        height: 100%;
        max-height: 48;
        border: round $accent;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }}
    CommandForm #body {{
        height: 1fr;
    }}
    CommandForm .row {{
        height: auto;
    }}
    CommandForm .line {{
        height: auto;
    }}
    CommandForm .name {{
        width: {NAME_WIDTH};
        height: 1;
    }}
    CommandForm .line Input {{
        width: 1fr;
    }}
    CommandForm .line Select {{
        width: 1fr;
    }}
    CommandForm .line Select.unit {{
        width: 10;
    }}
    CommandForm .line .conv {{
        display: none;
        width: auto;
        max-width: 19;
        padding: 0 1;
        color: $text-muted;
    }}
    CommandForm .line .conv.-shown {{
        display: block;
    }}
    CommandForm .line .suffix {{
        width: 4;
        padding-left: 1;
    }}
    CommandForm .line SelectionList {{
        width: 1fr;
        height: auto;
        max-height: 8;
    }}
    CommandForm .line .fixed {{
        width: 1fr;
        text-style: bold;
    }}
    CommandForm .error {{
        display: none;
        height: auto;
        padding-left: {NAME_WIDTH};
        color: $text-error;
    }}
    CommandForm .row.-invalid {{
        background: $error 15%;
    }}
    CommandForm .row.-invalid > .line > .name {{
        color: $text-error;
        text-style: bold;
    }}
    CommandForm .row.-invalid > .error {{
        display: block;
    }}
    CommandForm #form-error {{
        display: none;
        height: auto;
        color: $text-error;
        background: $error 15%;
    }}
    CommandForm #form-error.-shown {{
        display: block;
    }}
    CommandForm #keys {{
        height: 1;
        color: $text-muted;
    }}
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "保存", priority=True, id="form.save"),
        Binding("escape", "cancel", "取消", id="form.cancel"),
    ]

    def __init__(
        self,
        command: type[Command],
        *,
        campaign: CampaignConfig,
        today: date,
        save: Callable[[Command], None],
        ref: str = "",
        initial: Mapping[str, Any] | None = None,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """`ref`: the case the command is for (shown, not editable); required for a case
        command other than find_site. `initial`: values to start from, by field name (JSON
        form). `hints`: placeholders by field name, e.g. a correction's current values."""
        super().__init__()
        is_case = issubclass(command, CaseCommand) and command.NAME != "find_site"
        if is_case and not ref:
            raise ValueError(f"{command.NAME}: a case command's form needs the case's ref")
        self.command = command
        self.campaign = campaign
        self.today = today
        self._save = save
        self.ref = ref if is_case else ""
        self.initial = dict(initial or {})
        self.hints = dict(hints or {})
        self.specs = [
            spec for spec in field_specs(command, campaign) if not (spec.name == "ref" and self.ref)
        ]
        self._mu_keys = {m2: mu for mu, m2 in AREAS_IN_MU[command.NAME].items()}
        self.saving = False
        self.errors: dict[str, str] = {}  # the messages shown, by field ("" for the form's own)
        self._marked: dict[str, tuple[str, Any]] = {}  # the values the errors were about

    # Building the widgets

    def compose(self) -> ComposeResult:
        dialog = Vertical(id="dialog")
        dialog.border_title = command_title(self.command)
        with dialog:
            yield Static(id="form-error")
            with VerticalScroll(id="body"):
                if self.ref:
                    with Vertical(classes="row", id="row-ref"):
                        with Horizontal(classes="line"):
                            yield Label(Text(label("ref")), classes="name")
                            yield Label(Text(self.ref), classes="fixed", id="fixed-ref")
                        yield Static(classes="error", id="error-ref")
                for spec in self.specs:
                    with Vertical(classes="row", id=f"row-{spec.name}"):
                        with Horizontal(classes="line"):
                            yield Label(Text(spec.title), classes="name")
                            yield from self._widgets(spec)
                        yield Static(classes="error", id=f"error-{spec.name}")
            yield Static(Text("ctrl+s 保存    Esc 取消    * 为必填"), id="keys")

    def _widgets(self, spec: FieldSpec) -> Iterable[Widget]:
        wid = f"field-{spec.name}"
        start = self.initial.get(spec.name)
        hint = self.hints.get(spec.name, "") or ("不变" if spec.keep else "")
        match spec.kind:
            case "choice":
                value = start if start in spec.choices else Select.NULL
                yield Select(
                    [(Text(str(v)), v) for v in spec.choices],
                    prompt=escape(hint) or BLANK_PROMPT,  # Select reads its prompt as markup
                    value=value,
                    id=wid,
                    compact=True,
                )
            case "bool" if spec.keep:
                yield Select(
                    [(Text("是"), True), (Text("否"), False)],
                    prompt=escape(hint),
                    value=start if isinstance(start, bool) else Select.NULL,
                    id=wid,
                    compact=True,
                )
            case "bool":
                yield Checkbox(Text("是"), value=bool(start), id=wid, compact=True)
            case "choices":
                chosen = set(start or ())
                yield SelectionList[str](
                    *((Text(str(v)), v, v in chosen) for v in spec.choices), id=wid, compact=True
                )
            case "date":
                default = self.today.isoformat() if spec.name == "on" else ""
                yield Input(
                    str(start) if start is not None else default,
                    placeholder=hint or "YYYY-MM-DD",
                    id=wid,
                    compact=True,
                )
            case "names":
                text = "、".join(start) if isinstance(start, list | tuple) else str(start or "")
                yield Input(
                    text, placeholder=hint or "多人用顿号分隔：张三、李四", id=wid, compact=True
                )
            case "area":
                yield Input(_text(start), placeholder=hint, id=wid, compact=True)
                yield Label(id=f"conv-{spec.name}", classes="conv")
                yield Select(
                    [(Text("㎡"), UNIT_M2), (Text("亩"), UNIT_MU)],
                    allow_blank=False,
                    value=UNIT_M2,
                    id=f"unit-{spec.name}",
                    classes="unit",
                    compact=True,
                )
            case "money":
                yield Input(_text(start), placeholder=hint, id=wid, compact=True)
                yield Label(Text("元"), classes="suffix")
            case "integer":
                yield Input(_text(start), placeholder=hint or "0", id=wid, compact=True)
            case _:
                if spec.name == "ref":
                    hint = hint or "留空则自动生成"
                yield Input(_text(start), placeholder=hint, id=wid, compact=True)

    def on_mount(self) -> None:
        for spec in self.specs:
            self.query_one(f"#field-{spec.name}").tooltip = Text(spec.help)
        for spec in self.specs:
            widget = self.query_one(f"#field-{spec.name}")
            if widget.focusable:
                widget.focus()
                break

    # Reading the values

    def values(self) -> dict[str, Any]:
        """The form as the JSON command `parse_command` takes; an empty field is left out, so
        its default applies (a correction leaves it unchanged)."""
        data: dict[str, Any] = {"cmd": self.command.NAME}
        if self.ref:
            data["ref"] = self.ref
        for spec in self.specs:
            key, value = self._value(spec)
            if value is not None:
                data[key] = value
        return data

    def _value(self, spec: FieldSpec) -> tuple[str, Any]:
        widget = self.query_one(f"#field-{spec.name}")
        if isinstance(widget, Select):
            return spec.name, None if widget.is_blank() else widget.value
        if isinstance(widget, Checkbox):
            return spec.name, widget.value
        if isinstance(widget, SelectionList):
            chosen = [v for v in spec.choices if v in widget.selected]
            # A required list left empty is sent empty: "不能为空" names it.
            return spec.name, chosen if chosen or spec.required else None
        assert isinstance(widget, Input)
        text = widget.value.strip()
        if not text:
            return spec.name, None
        match spec.kind:
            case "names":
                return spec.name, [n.strip() for n in NAME_SEPARATORS.split(text) if n.strip()]
            case "integer":
                return spec.name, int(text) if re.fullmatch(r"[+-]?\d+", text) else text
            case "area" if self._unit(spec.name) == UNIT_MU:
                return self._mu_keys[spec.name], text
        return spec.name, text

    def _unit(self, name: str) -> str:
        return str(self.query_one(f"#unit-{name}", Select).value)

    def _is_empty(self, name: str) -> bool:
        spec = next((s for s in self.specs if s.name == name), None)
        return spec is not None and self._value(spec)[1] in (None, [])

    # Saving

    def action_save(self) -> None:
        if self.saving:
            return
        self.clear_errors()
        try:
            command = parse_command(self.values())
        except DomainError as error:
            self.show_error(error)
            return
        self.saving = True
        self.query_one("#keys", Static).update(Text("正在保存，请稍候"))
        self._run_save(command)

    @work(thread=True, exclusive=True, group="command-form-save")
    def _run_save(self, command: Command) -> Command | None:
        """The command once saved; None when refused or failed (the form says why)."""
        try:
            self._save(command)
        except DomainError as error:
            self.app.call_from_thread(self._rejected, error)
        except Exception as error:  # the form stays open; the user sees why, not a traceback
            self.app.call_from_thread(self._failed, error)
        else:
            return command
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Closed once the save's worker has finished: closing the form cancels its workers.
        if event.worker.group == "command-form-save" and event.state == WorkerState.SUCCESS:
            saved = event.worker.result
            if saved is not None:
                self.saving = False
                if self.is_current:
                    self.dismiss(saved)

    def _rejected(self, error: DomainError) -> None:
        self._ready()
        self.show_error(error)

    def _failed(self, error: Exception) -> None:
        self._ready()
        self.notify(f"保存失败，未写入：{error}", title="错误", severity="error", markup=False)

    def _ready(self) -> None:
        self.saving = False
        self.query_one("#keys", Static).update(Text("ctrl+s 保存    Esc 取消    * 为必填"))

    def action_cancel(self) -> None:
        if self.saving:  # the write may land: wait for its answer
            self.notify("正在保存，请稍候", severity="warning", markup=False)
            return
        self.dismiss(None)

    # Errors at their fields

    def show_error(self, error: DomainError) -> None:
        """The error under the field it names (highlighted, focused, scrolled into view); an
        error of no field of the form at the top. A message of several problems (；) is split
        among the fields it names, and a required field left empty says 必填."""
        name = error.field
        rows = [spec.name for spec in self.specs] + (["ref"] if self.ref else [])
        if name not in rows:
            self.errors[""] = error.message
            box = self.query_one("#form-error", Static)
            box.update(Text(error.message))
            box.add_class("-shown")
            return
        messages: dict[str, list[str]] = {}
        for part in error.message.split("；"):
            field = next((r for r in rows if _names(part, r)), name)
            messages.setdefault(field, []).append(part)
        for spec in self.specs:
            if spec.required and self._is_empty(spec.name):
                messages[spec.name] = [f"{label(spec.name)}：必填"]
        for field, parts in messages.items():
            self._mark(field, "；".join(parts))
        target = self.query_one(f"#field-{name}") if name != "ref" or not self.ref else None
        if target is not None and target.focusable:
            target.focus(scroll_visible=False)
        row = self.query_one(f"#row-{name}")
        self.query_one("#body", VerticalScroll).scroll_to_widget(row, animate=False)

    def _mark(self, name: str, message: str) -> None:
        self.errors[name] = message
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is not None:
            self._marked[name] = self._value(spec)
        self.query_one(f"#error-{name}", Static).update(Text(message))
        self.query_one(f"#row-{name}").add_class("-invalid")

    def _changed(self, widget: Widget | None) -> None:
        """A field the user changes loses its error (the next ctrl+s checks it again). A
        change message may arrive after the error it caused: only a new value counts."""
        if widget is None or not widget.id or not widget.id.startswith(("field-", "unit-")):
            return
        name = widget.id.split("-", 1)[1]
        spec = next((s for s in self.specs if s.name == name), None)
        if name in self.errors and spec and self._value(spec) != self._marked.get(name):
            del self.errors[name]
            self.query_one(f"#row-{name}").remove_class("-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed(event.input)
        self._convert(event.input)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._changed(event.select)
        self._convert(event.select)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field goes on to the next one (ctrl+s saves)."""
        event.stop()
        self.focus_next()

    def _convert(self, widget: Widget | None) -> None:
        """An area in 亩 shows what it is in ㎡, as it will be stored."""
        if widget is None or not widget.id or not widget.id.startswith(("field-", "unit-")):
            return
        name = widget.id.split("-", 1)[1]
        shown = self.query(f"#conv-{name}")
        if not shown:
            return
        conv = shown.first(Label)
        text = self.query_one(f"#field-{name}", Input).value.strip()
        try:
            m2 = mu_to_m2(Decimal(text)) if self._unit(name) == UNIT_MU else None
        except ArithmeticError:
            m2 = None
        if m2 is None or not m2.is_finite():
            conv.remove_class("-shown")
            return
        conv.update(Text(f"= {two_places(m2)}㎡"))
        conv.add_class("-shown")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[Any]) -> None:
        self._changed(event.selection_list)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._changed(event.checkbox)

    def clear_errors(self) -> None:
        self.errors.clear()
        for row in self.query(".row.-invalid"):
            row.remove_class("-invalid")
        self.query_one("#form-error", Static).remove_class("-shown")


def _names(message: str, field: str) -> bool:
    """Whether a message is about this field: parse_command starts each with its label."""
    name = label(field)
    return message.startswith(name) and message[len(name) : len(name) + 1] in ("：", "（", "第")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# The 办理 menu ---------------------------------------------------------------------------


class ActionMenu(ModalScreen[type[CaseCommand] | None]):
    """The commands a case's state accepts, by their Chinese names; dismissed with the chosen
    command class, or None on `Esc`."""

    DEFAULT_CSS = """
    ActionMenu {
        align: center middle;
    }
    ActionMenu > #menu {
        width: 40;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $accent;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    ActionMenu #case {
        height: auto;
        color: $text-muted;
    }
    ActionMenu OptionList {
        height: auto;
        max-height: 16;
    }
    ActionMenu #menu-keys {
        height: 1;
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "取消", id="menu.cancel")]

    def __init__(
        self, commands: Sequence[type[CaseCommand]], *, ref: str = "", state: str = ""
    ) -> None:
        super().__init__()
        self.commands = list(commands)
        self.ref = ref
        self.state = state

    @classmethod
    def for_case(cls, case: Case) -> "ActionMenu":
        return cls(valid_commands(case), ref=case.ref, state=case.state)

    def compose(self) -> ComposeResult:
        menu = Vertical(id="menu")
        menu.border_title = "办理"
        with menu:
            if self.ref:
                yield Static(Text(f"{self.ref}  {self.state}".strip()), id="case")
            yield OptionList(
                *(Option(Text(command_title(k)), id=k.NAME) for k in self.commands),
                id="commands",
                compact=True,
            )
            yield Static(Text("Enter 选择    Esc 取消"), id="menu-keys")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        if options.option_count:
            options.highlighted = 0

    @property
    def titles(self) -> list[str]:
        return [command_title(k) for k in self.commands]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.commands[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_actions(
    app: App[Any],
    case: Case,
    *,
    campaign: CampaignConfig,
    today: date,
    save: Callable[[Command], None],
    saved: Callable[[Command], None] | None = None,
) -> None:
    """办理 on a case: the menu of its valid commands, then the chosen command's form. `saved`
    is called with the command once `save` has accepted it (not when either screen is
    cancelled)."""

    def form(command: Command | None) -> None:
        if command is not None and saved is not None:
            saved(command)

    def chosen(kind: type[CaseCommand] | None) -> None:
        if kind is not None:
            screen = CommandForm(kind, campaign=campaign, today=today, save=save, ref=case.ref)
            app.push_screen(screen, callback=form)

    app.push_screen(ActionMenu.for_case(case), callback=chosen)
