"""Import a township's 台账 sheet: every row checked first, then all of it or nothing.

A row becomes `find_site`, then the milestones it carries, in DESIGN's order: 发现, 制止, 立案,
处罚决定, 移送, 整改要求, (整改记录), 整改到位, 销号, 排除, and its 标记. A row whose 编号 exists
is compared with the store: what it adds (a milestone the store lacks, a grown total, a new 标记)
is appended the same way, so a sheet imported twice appends nothing the second time; a recorded
fact it contradicts is an error (a correction is the user's to record, with its reason).

Accepts what staff type: full-width digits, 亩 or ㎡ (元 or 万元) columns, Excel dates and
2022-02-10, 2022/2/10, 2022年2月10日, stray spaces, title rows above the header.
"""

import io
import re
import unicodedata
import zipfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import zip_longest
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

from domain import case as case_rules
from domain import commands as c
from domain import events as e
from domain.case import derive_state
from domain.errors import DomainError
from domain.values import (
    CHINA,
    china_today,
    m2_to_mu,
    masked,
    mu_to_m2,
    normal_ref,
    number_text,
    printable,
    two_places,
)
from exports.columns import BY_KEY, COLUMNS, PERSONAL, SITE_KEYS, Column, is_blank, values
from projections.read import Reader
from storage.store import EventStore

CENT = Decimal("0.01")
# 补办手续（宗）: each permit becomes one rectification record, so a count has a sane bound.
MAX_PERMITS = 100
# A number in a cell: no more than this many digits before the point, nor places after it
# (a cell of 1e99999999 would otherwise be written out digit by digit).
MAX_DIGITS = 20
# Excel, WPS and LibreOffice keep 15 significant digits: a longer whole number in a text column
# (an 18-digit ID typed into a General cell) has lost digits; a shorter one is its digits.
EXACT_DIGITS = 15
EXAMPLE_PREFIX = "示例"
HEADER_SCAN_ROWS = 30
# The most rows of data a sheet may hold: a province's whole ledger (200,000 cases). A sheet
# claiming a million rows is refused once past this, having read no more than this many.
MAX_SHEET_ROWS = 200_000
SPARE_COLUMNS = 20  # columns read beyond the ledger's, for ones a township added
REQUIRED = ("ref", "township", "source", "found_on", "violation_types", "area_m2", "unit")
IMPORT_NOTE = "台账导入"  # the permit_doc_no of rectification records made from a 补办手续 count


@dataclass
class Report:
    """What an import found; `commands` is what it appends (empty when there are errors)."""

    path: str
    header_row: int = 0
    errors: list[str] = field(default_factory=list)
    ignored_headers: list[str] = field(default_factory=list)
    new_rows: list[int] = field(default_factory=list)
    progress_rows: list[int] = field(default_factory=list)  # known cases with new milestones
    same_rows: list[int] = field(default_factory=list)
    examples: int = 0
    commands: list[c.Command] = field(default_factory=list)
    command_rows: list[int] = field(default_factory=list)
    events: int = 0

    def added(self) -> str:
        """What the sheet adds, as the summaries say it: 新增 2 个案件、补记 1 个已有案件的进展."""
        found = f"新增 {len(self.new_rows)} 个案件"
        if not self.progress_rows:
            return found
        return f"{found}、补记 {len(self.progress_rows)} 个已有案件的进展"


# Reading the sheet ---------------------------------------------------------------------------


def normal_header(text: Any) -> str:
    """'占地面积 (平方米)' → '占地面积（㎡）': spaces out, parentheses full-width, units unified."""
    if text is None:
        return ""
    found = re.sub(r"\s+", "", str(text)).replace("(", "（").replace(")", "）")
    for spelled in ("平方米", "平米", "m2", "m²", "M2", "㎡"):
        found = found.replace(f"（{spelled}）", "（㎡）")
    return found


def _header_map() -> dict[str, tuple[Column, str]]:
    """Accepted header → (column, unit the sheet uses: mu, m2, yuan, wan or '')."""
    found: dict[str, tuple[Column, str]] = {}
    for column in COLUMNS:
        if not column.imported:
            continue
        if column.kind in ("mu", "m2"):
            found[f"{column.name}（亩）"] = (column, "mu")
            found[f"{column.name}（㎡）"] = (column, "m2")
        elif column.kind == "yuan":
            found[f"{column.name}（元）"] = (column, "yuan")
            found[f"{column.name}（万元）"] = (column, "wan")
        else:
            found[normal_header(column.header)] = (column, "")
            found[normal_header(column.name)] = (column, "")
    found["乡镇"] = (BY_KEY["township"], "")
    found["乡镇街道"] = (BY_KEY["township"], "")
    return found


HEADERS = _header_map()


def read_rows(path: str | Path) -> tuple[int, list[Any], list[tuple[int, list[Any]]]]:
    """(header row number, header cells, [(row number, cells)]) of the first sheet that has a
    ledger header (编号 and 乡镇) within its first rows; merged title rows above are skipped."""
    with _sheets(path) as sheets:
        for sheet in sheets:
            rows = iter(sheet)
            for number, cells in enumerate(rows, start=1):
                if number > HEADER_SCAN_ROWS:
                    break
                names = {normal_header(v) for v in cells}
                if "编号" in names and names & {"乡镇（街道）", "乡镇", "乡镇街道"}:
                    return number, list(cells), _body(path, rows, number + 1)
    raise DomainError(
        f"{path}：前 {HEADER_SCAN_ROWS} 行中没有找到台账表头（含“编号”和“乡镇（街道）”的行）"
    )


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls), or an encrypted .xlsx
_ODS = b"application/vnd.oasis.opendocument.spreadsheet"
RESAVE = "请用 Excel、WPS 或 LibreOffice 另存为 .xlsx 后再导入"


@contextmanager
def _sheets(path: str | Path) -> Iterator[Iterator[Iterable[Sequence[Any]]]]:
    """Each sheet's rows, from row 1. The file's content, not its name, says what it is: .xlsx
    (Excel, WPS, LibreOffice) through openpyxl, LibreOffice's .ods through calamine."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DomainError(f"文件 {path} 不存在") from None
    except IsADirectoryError:
        raise DomainError(f"{path} 是一个文件夹，不是表格文件") from None
    except OSError as error:
        raise DomainError(f"无法读取 {path}（{error.strerror}）") from None
    if data.startswith(_OLE2):
        raise DomainError(f"无法读取 {path}：这是 Excel 97-2003（.xls）或加密的工作簿，{RESAVE}")
    if not data.startswith(b"PK"):
        raise DomainError(f"无法读取 {path}：不是 xlsx 或 ods 工作簿，{RESAVE}")
    if _is_ods(data):
        yield _ods_sheets(path, data)
        return
    try:
        from openpyxl import load_workbook  # lazily: start-up of other commands stays fast

        # From bytes, not the path: openpyxl would refuse a workbook by its name's extension.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        # The same cells as written: a formula whose result the file does not hold (a sheet
        # made by a program) reads as blank above; here it shows as its formula.
        written = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:
        raise DomainError(f"无法读取 {path}：不是有效的 xlsx 工作簿，{RESAVE}") from None
    try:
        yield (
            _with_formulas(_all_rows(sheet), _all_rows(as_written))
            for sheet, as_written in zip(book.worksheets, written.worksheets, strict=True)
        )
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError):  # a damaged sheet's XML
        raise DomainError(f"无法读取 {path}：xlsx 文件已损坏，{RESAVE}") from None
    finally:
        book.close()
        written.close()


def _all_rows(sheet: Any) -> Iterable[Sequence[Any]]:
    # Read every row the sheet holds, whatever its <dimension> says: a program that writes a
    # wrong one would otherwise have rows past it dropped without a word. Each row as wide as
    # the sheet says and at least the ledger: left to itself, openpyxl ends a row at the cell
    # written last, dropping cells written out of order before.
    width = max(sheet.max_column or 0, len(COLUMNS) + SPARE_COLUMNS)
    sheet.reset_dimensions()
    return cast(Iterable[Sequence[Any]], sheet.iter_rows(values_only=True, max_col=width))


def _is_ods(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read("mimetype").startswith(_ODS)
    except (zipfile.BadZipFile, KeyError):
        return False


def _ods_sheets(path: str | Path, data: bytes) -> Iterator[Iterable[Sequence[Any]]]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        book = CalamineWorkbook.from_object(io.BytesIO(data))
        # skip_empty_area=False: rows keep their numbers, so errors name the row staff see.
        found = [
            book.get_sheet_by_name(name).to_python(skip_empty_area=False)
            for name in book.sheet_names
        ]
    except (CalamineError, ValueError):
        raise DomainError(f"无法读取 {path}：ods 文件已损坏，{RESAVE}") from None
    return iter(found)


def _body(
    path: str | Path, rows: Iterable[Sequence[Any]], first: int
) -> list[tuple[int, list[Any]]]:
    """The rows below the header that hold anything, numbered as the sheet numbers them: empty
    rows (a sparse sheet may claim a million) are never kept."""
    body: list[tuple[int, list[Any]]] = []
    for number, cells in enumerate(rows, start=first):
        if cells.count(None) == len(cells) or all(
            v is None or (isinstance(v, str) and not v.strip()) for v in cells
        ):
            continue
        if len(body) == MAX_SHEET_ROWS:
            raise DomainError(
                f"{path}：数据超过 {MAX_SHEET_ROWS:,} 行（第{number}行仍有内容），"
                "请分成几个文件导入"
            )
        body.append((number, list(cells)))
    return body


class Uncalculated(str):
    """A formula cell whose file holds no computed result: refused, never read as blank."""


def _with_formulas(values: Iterable[Sequence[Any]], written: Iterable[Sequence[Any]]) -> Any:
    for cells, formulas in zip_longest(values, written, fillvalue=()):
        if formulas.count(None) == len(formulas):  # an empty row (a sparse sheet has a million)
            yield cells
            continue
        row = list(cells)
        for index, formula in enumerate(formulas):
            if (
                index < len(row)
                and row[index] is None
                and isinstance(formula, str)
                and formula.startswith("=")
            ):
                row[index] = Uncalculated(formula)
        yield tuple(row)


# Parsing cells -------------------------------------------------------------------------------

_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_FIRST_DAY = date(1900, 1, 1)  # Excel's first date: serial numbers below 1 are no date
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_SPLIT = re.compile(r"[、,，;；/／\s]+")
_UNITS = {"mu": ("亩",), "m2": ("㎡", "平方米", "m2"), "yuan": ("元",), "wan": ("万元",)}
_TRUE = {"是", "有", "y", "yes", "true", "1", "√", "✓"}
_FALSE = {"否", "无", "n", "no", "false", "0", "×"}
_EXCEL_EPOCH = date(1899, 12, 30)


class CellError(Exception):
    pass


def _shown(raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.isoformat(sep=" ")
    if isinstance(raw, float) and raw.is_integer():
        return format(Decimal(raw), "f")  # as the spreadsheet shows it, not 1.4e+17
    return str(raw).strip()


def parse_number(raw: Any, unit: str = "") -> Decimal:
    if isinstance(raw, bool):
        raise CellError
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        return _plain(Decimal(repr(round(raw, 6))))
    text = unicodedata.normalize("NFKC", str(raw)).strip().replace(",", "")
    for suffix in _UNITS.get(unit, ()):
        text = text.removesuffix(unicodedata.normalize("NFKC", suffix)).strip()
    try:
        number_text(text)  # Decimal alone would read "1_000" and "Infinity"
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise CellError from None
    if not value.is_finite():
        raise CellError
    if value and not -MAX_DIGITS <= value.adjusted() < MAX_DIGITS:
        raise CellError("range")
    return _plain(value)


def _plain(value: Decimal) -> Decimal:
    """Fixed-point, without trailing zeros beyond the cent: never '7E+3' (the store keeps
    amounts as plain decimal text)."""
    text = format(value, "f")
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0")
        text = f"{whole}.{fraction.ljust(2, '0')}" if fraction else whole
    return Decimal(text)


def parse_date(raw: Any) -> date:
    if isinstance(raw, datetime):
        raw = raw.date()
    if isinstance(raw, date):
        if raw < _FIRST_DAY:  # a serial number of 0 or less, which openpyxl turns into 1899
            raise CellError
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if 1 <= raw < 2958466 and float(raw).is_integer():
            return _EXCEL_EPOCH + timedelta(days=int(raw))
        raise CellError
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    match = _DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if not match:
        raise CellError
    if match.re is _DATE and match[4] is not None:
        hour, minute, second = int(match[4]), int(match[5]), int(match[6] or 0)
        if hour > 23 or minute > 59 or second > 59:  # 2022-02-10 99:99 is no time
            raise CellError
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise CellError from None


def parse_text(raw: Any) -> str:
    """A text cell; a number there is read back only when its digits are surely the typed ones."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if float(raw).is_integer() and abs(raw) < 10**EXACT_DIGITS:
            return str(int(raw))
        raise CellError("text")
    if isinstance(raw, datetime):
        return raw.date().isoformat() if raw.time() == datetime.min.time() else raw.isoformat()
    return str(raw).strip()


def parse_cell(column: Column, unit: str, raw: Any) -> Any:
    """A cell → the stored value (㎡, 元, date, tuple…), or None when blank."""
    if isinstance(raw, Uncalculated):
        raise CellError("formula")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    kind = column.kind
    if kind == "date":
        return parse_date(raw)
    if kind in ("mu", "m2", "yuan", "number"):
        value = parse_number(raw, unit)
        if unit == "mu":
            return mu_to_m2(value)
        if unit == "wan":
            return (value * 10000).quantize(CENT, rounding=ROUND_HALF_UP)
        return value
    if kind == "int":
        value = parse_number(raw)
        if value != value.to_integral_value():
            raise CellError("integer")
        if value < 0:
            raise CellError("negative")
        return int(value)
    if kind == "bool":
        text = unicodedata.normalize("NFKC", str(raw)).strip().lower()
        if text in _TRUE or raw is True:
            return True
        if text in _FALSE or raw is False:
            return False
        raise CellError("bool")
    if kind == "list":
        return tuple(part for part in _SPLIT.split(parse_text(raw)) if part)
    return parse_text(raw)


def _cell_message(column: Column, raw: Any, error: CellError) -> str:
    shown = f"“{printable(_shown(raw))[:40]}”"
    if str(error) == "formula":
        return (
            f"{column.name}：{shown}是公式，但文件中没有保存它的计算结果（程序生成的表格常见），"
            "请在 Excel 或 WPS 中打开并保存后再导入，或直接填写数值"
        )
    if str(error) == "negative":
        return f"{column.name}：{shown}不能小于 0"
    if str(error) == "text":
        return (
            f"{column.name}：{shown}是数字，应为文本（表格程序只保留 15 位有效数字，"
            "长号码已被改动）；请将该列设为文本格式后重新输入，或在号码前加英文单引号 '"
        )
    if str(error) == "range":
        return f"{column.name}：{shown}超出可记录的范围"
    if column.kind == "date":
        return f"{column.name}：{shown}不是有效日期（可写 2022-02-10、2022/2/10 或 2022年2月10日）"
    if str(error) == "integer":
        return f"{column.name}：{shown}应为整数"
    if str(error) == "bool":
        return f"{column.name}：{shown}应为“是”或“否”"
    return f"{column.name}：{shown}不是数字"


# From a row to commands ----------------------------------------------------------------------


def _site_command(ref: str, data: dict[str, Any]) -> dict[str, Any]:
    command: dict[str, Any] = {"cmd": "find_site", "ref": ref, "on": data.get("found_on")}
    for key in SITE_KEYS:
        value = data.get(key)
        if value is not None:
            command[key] = list(value) if isinstance(value, tuple) else value
    return command


# The milestone a group of detail columns belongs to: a detail without its date is an error.
DETAILS = {
    "stopped_on": ("order_no", "stop_outcome"),
    "dismissed_on": ("dismiss_reason",),
    "filed_on": ("case_no", "handlers"),
    "decided_on": (
        "decision_no",
        "fine_yuan",
        "confiscated_income_yuan",
        "demolish_m2",
        "confiscate_building_m2",
    ),
    "police_on": ("police_persons", "police_doc_no"),
    "discipline_on": ("discipline_persons", "discipline_doc_no"),
    "other_on": ("other_agencies",),
    "ordered_on": ("measures", "due_on"),
}


def row_commands(
    ref: str, data: dict[str, Any], recorded: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The JSON commands a row stands for, in DESIGN's replay order; none for the milestones
    (date columns, and 发现日期 for the site) the store has `recorded` already."""
    out = [] if "found_on" in recorded else [_site_command(ref, data)]

    def add(cmd: str, on: Any, **fields: Any) -> None:
        out.append(
            {
                "cmd": cmd,
                "ref": ref,
                "on": on,
                **{
                    k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in fields.items()
                    if v is not None
                },
            }
        )

    def new(key: str) -> bool:
        return bool(data.get(key)) and key not in recorded

    get = data.get
    if new("stopped_on"):
        add("stop", get("stopped_on"), order_no=get("order_no"), outcome=get("stop_outcome"))
    if new("filed_on"):
        add("file_case", get("filed_on"), case_no=get("case_no") or "", handlers=get("handlers"))
    if new("decided_on"):
        add(
            "decide_penalty",
            get("decided_on"),
            decision_no=get("decision_no") or "",
            fine_yuan=get("fine_yuan") or Decimal(0),
            confiscated_income_yuan=get("confiscated_income_yuan"),
            demolish_m2=get("demolish_m2"),
            confiscate_building_m2=get("confiscate_building_m2"),
        )
    for agency, on, persons, doc in (
        ("公安", "police_on", "police_persons", "police_doc_no"),
        ("纪检监察", "discipline_on", "discipline_persons", "discipline_doc_no"),
    ):
        if new(on):
            add("refer", get(on), agency=agency, persons=get(persons) or 0, doc_no=get(doc))
    if new("other_on"):
        for agency in get("other_agencies") or ("其他",):
            add("refer", get("other_on"), agency=agency)
    if new("ordered_on"):
        add(
            "order_rectification",
            get("ordered_on"),
            measures=get("measures") or (),
            due_on=get("due_on"),
        )
    amounts = {
        k: get(k) for k in ("demolished_m2", "restored_m2", "fine_paid_yuan", "permit_area_m2")
    }
    permits = get("permits") or 0
    if permits or any(not is_blank(v) for v in amounts.values()):
        record_on = next(
            get(k)
            for k in ("rectified_on", "ordered_on", "decided_on", "filed_on", "found_on")
            if get(k) or k == "found_on"
        )
        add(
            "record_rectification",
            record_on,
            **amounts,
            permit_doc_no=IMPORT_NOTE if permits else None,
        )
        for _ in range(permits - 1):
            add("record_rectification", record_on, permit_doc_no=IMPORT_NOTE)
    if new("rectified_on"):
        add("complete_rectification", get("rectified_on"))
    if new("closed_on"):
        add("close_out", get("closed_on"))
    if new("dismissed_on"):
        add("dismiss", get("dismissed_on"), reason=get("dismiss_reason") or "")
    for kind in dict.fromkeys(get("flags") or ()):
        add("flag", get("found_on"), kind=kind)
    return out


def derived_state(data: dict[str, Any]) -> str:
    get = data.get
    rectifying = bool(get("ordered_on")) or any(
        not is_blank(get(k))
        for k in ("demolished_m2", "restored_m2", "fine_paid_yuan", "permit_area_m2", "permits")
    )
    return derive_state(
        closed_out=bool(get("closed_on")),
        dismissed=bool(get("dismissed_on")),
        rectified=bool(get("rectified_on")),
        rectifying=rectifying,
        decided=bool(get("decided_on")),
        filed=bool(get("filed_on")),
        stopped=bool(get("stopped_on")),
    )


# Comparing with the store ------------------------------------------------------------------


def same(column: Column, stored: Any, sheet: Any) -> bool:
    if column.kind == "bool":
        return bool(stored) == bool(sheet)  # a blank cell is 否
    if is_blank(stored) and is_blank(sheet):
        return True
    if column.key in PERSONAL and isinstance(sheet, str) and "*" in sheet:
        return bool(stored) and masked(column.key, stored) == sheet
    if column.kind == "list":
        return sorted(stored or ()) == sorted(sheet or ())
    if column.kind == "mu" and stored is not None and sheet is not None:
        return bool(stored == sheet or m2_to_mu(stored) == m2_to_mu(sheet))
    if isinstance(stored, Decimal) and isinstance(sheet, Decimal):
        return stored == sheet
    return bool(stored == sheet)


def show(column: Column, value: Any) -> str:
    if is_blank(value):
        return "（空）"
    if column.kind == "mu":
        return f"{two_places(m2_to_mu(value))}亩"
    if column.kind in ("m2", "yuan"):
        return two_places(value) + ("㎡" if column.kind == "m2" else "元")
    if column.kind == "list":
        return "、".join(value)
    if column.kind == "bool":
        return "是" if value else "否"
    return str(value)


# The import ---------------------------------------------------------------------------------


def plan_import(app: EventStore, path: str | Path, actor: str) -> Report:
    """Read and check the whole sheet; nothing is written here."""
    report = Report(path=str(path))
    header_row, header, body = read_rows(path)
    report.header_row = header_row
    columns: list[tuple[int, Column, str]] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(header):
        name = normal_header(raw)
        if not name:
            continue
        found = HEADERS.get(name)
        if found is None:
            if name not in ("序号", "重开日期", "更正次数"):
                report.ignored_headers.append(name)
            continue
        column, unit = found
        if column.key in seen:
            report.errors.append(
                f"第{header_row}行 表头：“{name}”与“{seen[column.key]}”是同一列，只能保留一个"
            )
            continue
        seen[column.key] = name
        columns.append((index, column, unit))
    missing = [BY_KEY[k].name for k in REQUIRED if k not in seen]
    if missing:
        report.errors.append(f"第{header_row}行 表头：缺少必填列 {'、'.join(missing)}")
    if report.errors:
        return report

    parsed: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (row, data, raw)
    refs: dict[str, int] = {}
    for number, cells in body:
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in cells):
            continue
        data: dict[str, Any] = {}
        raw_of: dict[str, Any] = {}
        problems: list[str] = []
        for index, column, unit in columns:
            raw = cells[index] if index < len(cells) else None
            raw_of[column.key] = raw
            try:
                data[column.key] = parse_cell(column, unit, raw)
            except CellError as error:
                problems.append(_cell_message(column, raw, error))
        ref = data.get("ref")
        if isinstance(ref, str) and ref:
            try:  # compared as the store keeps refs: Ｔ－０００１ is T-0001
                ref = data["ref"] = normal_ref(ref)
            except ValueError:
                problems.append(f"编号：“{printable(ref)[:40]}”含有控制字符或无效字符")
        if isinstance(ref, str) and ref.startswith(EXAMPLE_PREFIX):
            report.examples += 1
            continue
        report.errors.extend(f"第{number}行 {p}" for p in problems)
        if problems:
            continue
        if not ref:
            report.errors.append(f"第{number}行 编号：必填（再次导入时按编号识别案件）")
            continue
        if ref in refs:
            report.errors.append(f"第{number}行 编号：“{ref}”与第{refs[ref]}行重复")
            continue
        refs[ref] = number
        parsed.append((number, data, raw_of))

    existing_ids = app.ledger_recorder.case_ids(list(refs)) if refs else {}
    stored = {}
    if existing_ids:
        stored = {row.case.ref: row for row in Reader(app).rows(existing_ids)}
    campaign = app.campaign()
    today = china_today()
    for number, data, _ in parsed:
        ref = cast(str, data["ref"])
        known = ref in stored
        problems = _check_row(data, columns, known=known)
        asked: list[dict[str, Any]] = []
        if not problems and not known:
            asked = row_commands(ref, data)
        elif not problems:
            asked, problems = _progress(ref, data, values(stored[ref], unmasked=True), columns)
        commands: list[c.Command] = []
        if asked and not problems:  # a known case is read from its events only when it grows
            case = app.load_case(existing_ids[ref]) if known else None
            commands, problems = _validate(asked, case, campaign, today, actor)
        if problems:
            report.errors.extend(f"第{number}行 {p}" for p in problems)
            continue
        if not commands:
            report.same_rows.append(number)
            continue
        (report.progress_rows if known else report.new_rows).append(number)
        report.commands.extend(commands)
        report.command_rows.extend([number] * len(commands))
    if report.errors:
        report.commands, report.command_rows = [], []
        report.new_rows, report.progress_rows = [], []
    return report


def _check_row(
    data: dict[str, Any], columns: Sequence[tuple[int, Column, str]], *, known: bool
) -> list[str]:
    """What the domain cannot see: masked numbers, details without their date, the 状态 cell.
    A known case's masked numbers are compared with the store, and its 状态 cell is not read:
    a clerk adds a date and leaves the 状态 as exported; the dates are compared."""
    problems = []
    permits = data.get("permits")
    if permits and permits > MAX_PERMITS:
        problems.append(
            f"补办手续（宗）：“{permits}”超过上限 {MAX_PERMITS} 宗（每宗记为一次整改记录）"
        )
    for key in () if known else PERSONAL:
        value = data.get(key)
        if isinstance(value, str) and "*" in value:
            problems.append(
                f"{BY_KEY[key].name}：“{value}”是遮蔽后的号码，新案件请填写完整号码或留空"
            )
    for milestone, details in DETAILS.items():
        if data.get(milestone):
            continue
        filled = [BY_KEY[d].name for d in details if not is_blank(data.get(d))]
        if filled:
            problems.append(
                f"{BY_KEY[milestone].name}：填写了{'、'.join(filled)}，{BY_KEY[milestone].name}必填"
            )
    state = data.get("state")
    if state and not known and not problems:
        expected = derived_state(data)
        if state != expected:
            problems.append(
                f"状态：表中为“{state}”，按各日期列应为“{expected}”（请补全或更正日期列）"
            )
    return problems


def _validate(
    raw_commands: list[dict[str, Any]],
    case: case_rules.Case | None,
    campaign: Any,
    today: date,
    actor: str,
) -> tuple[list[c.Command], list[str]]:
    """Parse a row's commands and fold them through the domain's own rules from the case as
    stored (None: a new case), as `record` will; every rule is checked here so that all of a
    sheet's errors are listed at once."""
    commands: list[c.Command] = []
    case_id = case.id if case else uuid4()
    now = datetime.now(CHINA)
    for raw in raw_commands:
        title = e.BY_COMMAND[c.COMMANDS[raw["cmd"]]].TITLE
        try:
            command = cast(c.CaseCommand, c.parse_command(raw))
            case_rules.check(case, command, campaign, today)
        except DomainError as error:
            prefix = "" if raw["cmd"] == "find_site" else f"{title}："
            return [], [prefix + error.message]
        event = e.BY_COMMAND[type(command)].model_construct(
            **dict(command),
            originator_id=case_id,
            originator_version=case.version + 1 if case else 1,
            timestamp=now,
            actor=actor,
            actor_unit="",
        )
        case = case_rules.mutate(case, cast(e.CaseEvent, event))
        commands.append(command)
    return commands, []


# A milestone's date column and the cells recorded with it.
MILESTONES: dict[str, tuple[str, ...]] = {**DETAILS, "rectified_on": (), "closed_on": ()}
_SITE_FACT = "导入不更改已记录的事实；如需更改请用更正（correct_site）记录并写明原因"
_EVENT_FACT = "事件记录后不能更改；请核对表格，或导出最新台账后再填写"
# Totals of the rectification records: a larger total in the sheet is a new record.
TOTALS = ("demolished_m2", "restored_m2", "fine_paid_yuan", "permit_area_m2", "permits")


def _progress(
    ref: str,
    data: dict[str, Any],
    stored: dict[str, Any],
    columns: Iterable[tuple[int, Column, str]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """A known case's row: the commands for what the sheet adds (milestones the store lacks,
    grown totals, new 标记), or, where it differs from what is recorded, the differences."""
    present = {column.key for _, column, _ in columns}
    new = [m for m in MILESTONES if m in present and data.get(m) and is_blank(stored.get(m))]
    fresh = {key for m in new for key in (m, *MILESTONES[m])}
    added: dict[str, Any] = dict.fromkeys(TOTALS)
    added["flags"] = ()
    problems = []
    for _, column, _ in columns:
        key, was, now = column.key, stored.get(column.key), data.get(column.key)
        if key == "state" or key in fresh or same(column, was, now):
            continue  # 状态 follows from the dates
        if key in TOTALS and now and now > (was or 0):
            added[key] = now - (was or 0)
        elif key == "flags" and set(was or ()) <= set(now or ()):
            added[key] = tuple(kind for kind in now or () if kind not in (was or ()))
        else:
            way = _SITE_FACT if key in SITE_KEYS else _EVENT_FACT
            problems.append(
                f"{column.name}：库中 {show(column, was)}，表中 {show(column, now)}"
                f"（编号 {ref} 已记录，{way}）"
            )
    recorded = {"found_on", *(m for m in MILESTONES if m not in new)}
    return row_commands(ref, {**data, **added}, recorded), problems
