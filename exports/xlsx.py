"""A small streaming XLSX writer: rows go straight into the zip, so memory stays flat.

Why our own: the ledger must reach 200,000 rows in seconds. openpyxl (write-only) and xlsxwriter
(constant_memory) spend several microseconds per cell in generic code; this writer knows our
few styles up front and writes each row as one string (see docs/spreadsheets.md for the figures).

It writes what our tables need and nothing else: inline strings, numbers, dates, a fixed style
palette, merged cells, column widths, frozen panes, an autofilter, A4 print setup (margins,
fitting, repeated title rows and columns), a header/footer, and document properties carrying
the export's stamp. Cells hold values, never formulas, so a reader that does not calculate sees
every number.
"""

import contextlib
import os
import queue
import re
import threading
import zipfile
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from xml.sax.saxutils import escape

from exports.files import create_part

# The style palette: name → index into cellXfs (the order of _XFS below).
DEFAULT, TITLE, SUBTITLE, HEADER, TEXT, INT, DEC2, MONEY, DATE, PERCENT = range(10)
TOTAL_TEXT, TOTAL_INT, TOTAL_DEC2, TOTAL_PERCENT, CENTER, NOTE, NOTE_BOLD, EXAMPLE = range(10, 18)
NUMBER, EXAMPLE_DATE, EXAMPLE_DEC2 = range(18, 21)
WRAP = 21  # text that wraps within its column's width (long lists and sentences)
TEXT_COLUMN = 22  # a text column's cells not yet written (see _XFS)
# 附件2's numbers, set narrow (see _FONTS); PERCENT and the TOTAL_ numbers are 附件2's alone.
NARROW_INT, NARROW_DEC2 = 23, 24

_FONTS = (
    '<font><sz val="11"/><name val="宋体"/><family val="3"/><charset val="134"/></font>',
    '<font><b/><sz val="11"/><name val="宋体"/><family val="3"/><charset val="134"/></font>',
    '<font><b/><sz val="16"/><name val="黑体"/><family val="3"/><charset val="134"/></font>',
    '<font><i/><sz val="11"/><color rgb="FF7F7F7F"/><name val="宋体"/><family val="3"/>'
    '<charset val="134"/></font>',
    # Numbers, and the workbook's Normal style: Times New Roman's digits are as wide as 宋体's and
    # every program has it (LibreOffice as the metric-compatible Liberation Serif). The Normal
    # font's digit is the unit of column widths, so a width means the same on paper in Excel, WPS
    # and LibreOffice; with 宋体 as Normal, LibreOffice without 宋体 measured DejaVu's wider
    # digits and printed every sheet a third wider (smaller) than Excel.
    '<font><sz val="11"/><name val="Times New Roman"/><family val="1"/></font>',
    '<font><b/><sz val="11"/><name val="Times New Roman"/><family val="1"/></font>',
    # 附件2's numbers: Arial Narrow's digits are 0.456 em against Times New Roman's 0.5, so the
    # one-page table keeps 8 pt with a province's figures. Office has it; LibreOffice draws it
    # in the metric-compatible Liberation Sans Narrow or Nimbus Sans Narrow.
    '<font><sz val="11"/><name val="Arial Narrow"/><family val="2"/></font>',
    '<font><b/><sz val="11"/><name val="Arial Narrow"/><family val="2"/></font>',
)
NORMAL_FONT = 4
LINE = 14.5  # points of row height a line of 11 pt text takes
# A column-width unit on paper at 100%: the Normal font's digit (Times New Roman 11 pt, 0.5 em).
UNIT_POINTS = 5.55  # as LibreOffice prints it (Excel: 7 px, 5.25)
_FILLS = (
    '<fill><patternFill patternType="none"/></fill>',
    '<fill><patternFill patternType="gray125"/></fill>',
    '<fill><patternFill patternType="solid"><fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/>'
    "</patternFill></fill>",
    '<fill><patternFill patternType="solid"><fgColor rgb="FFF2F2F2"/><bgColor indexed="64"/>'
    "</patternFill></fill>",
)
_BORDERS = (
    "<border><left/><right/><top/><bottom/><diagonal/></border>",
    '<border><left style="thin"><color auto="1"/></left><right style="thin"><color auto="1"/>'
    '</right><top style="thin"><color auto="1"/></top><bottom style="thin"><color auto="1"/>'
    "</bottom><diagonal/></border>",
)
_NUMFMTS = {164: "yyyy-mm-dd", 165: "0.00", 166: "#,##0.00", 167: "0.00%"}
_CENTER = '<alignment horizontal="center" vertical="center"/>'
_WRAP_CENTER = '<alignment horizontal="center" vertical="center" wrapText="1"/>'
_LEFT = '<alignment vertical="center"/>'
_WRAP_LEFT = '<alignment vertical="center" wrapText="1"/>'
_RIGHT = '<alignment horizontal="right" vertical="center"/>'
# (numFmtId, fontId, fillId, borderId, alignment) in the order of the constants above.
_XFS: tuple[tuple[int, int, int, int, str], ...] = (
    (0, 0, 0, 0, ""),  # DEFAULT
    (0, 2, 0, 0, _CENTER),  # TITLE
    (0, 0, 0, 0, _LEFT),  # SUBTITLE
    (0, 1, 2, 1, _WRAP_CENTER),  # HEADER
    (49, 0, 0, 1, _LEFT),  # TEXT (49 = "@": text stays text)
    (1, 4, 0, 1, _RIGHT),  # INT "0"
    (165, 4, 0, 1, _RIGHT),  # DEC2
    (166, 4, 0, 1, _RIGHT),  # MONEY
    (164, 4, 0, 1, _CENTER),  # DATE
    (167, 6, 0, 1, _RIGHT),  # PERCENT
    (0, 1, 3, 1, _CENTER),  # TOTAL_TEXT
    (1, 7, 3, 1, _RIGHT),  # TOTAL_INT
    (165, 7, 3, 1, _RIGHT),  # TOTAL_DEC2
    (167, 7, 3, 1, _RIGHT),  # TOTAL_PERCENT
    (49, 0, 0, 1, _CENTER),  # CENTER
    (0, 0, 0, 0, _WRAP_LEFT),  # NOTE
    (0, 1, 0, 0, _WRAP_LEFT),  # NOTE_BOLD
    (49, 3, 0, 1, _LEFT),  # EXAMPLE (grey italics: the template's example row; text)
    (0, 0, 0, 1, _RIGHT),  # NUMBER (general)
    (164, 3, 0, 1, _CENTER),  # EXAMPLE_DATE
    (165, 3, 0, 1, _RIGHT),  # EXAMPLE_DEC2
    (49, 0, 0, 1, _WRAP_LEFT),  # WRAP
    (49, 0, 0, 0, ""),  # TEXT_COLUMN: a text column's cells not yet written, so what staff type
    # there stays text (an 18-digit ID typed into a General cell becomes a rounded number)
    (1, 6, 0, 1, _RIGHT),  # NARROW_INT
    (165, 6, 0, 1, _RIGHT),  # NARROW_DEC2
)

# Page margins in inches (left, right, top, bottom); the footer sits in the bottom one.
MARGINS = (0.4, 0.4, 0.6, 0.6)
A4_POINTS = (595.3, 841.9)  # portrait width, height

_EXCEL_EPOCH = date(1899, 12, 30).toordinal()
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NEEDS_ESCAPE = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def excel_date(day: date) -> int:
    return day.toordinal() - _EXCEL_EPOCH


def text_xml(value: str) -> str:
    """Escape text for an XML element; drop characters XML cannot hold."""
    if _NEEDS_ESCAPE.search(value):
        return escape(_BAD_XML.sub("", value))
    return value


def _attr(value: str) -> str:
    return escape(_BAD_XML.sub("", value), {'"': "&quot;"})


class Sheet:
    """One worksheet, written row by row. Rows are numbered from 1 in the order written."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        widths: Sequence[float],
        freeze: tuple[int, int] | None = None,
        landscape: bool = True,
        fit_height: bool = False,
        margins: tuple[float, float, float, float] = MARGINS,
        fit_width: bool = True,
        header_footer: tuple[str, str] = ("", ""),
        column_styles: Sequence[int] = (),
    ) -> None:
        self._stream = stream
        self._buffer: list[str] = []
        self._columns = [column_letter(i) for i in range(max(len(widths), 1))]
        self.rows = 0
        self._merges: list[str] = []
        self._autofilter = ""
        self._landscape = landscape
        self._fit_height = fit_height
        self._margins = margins
        self._fit_width = fit_width
        self._header_footer = header_footer
        pane = ""
        if freeze and (freeze[0] or freeze[1]):
            rows, cols = freeze
            top_left = f"{column_letter(cols)}{rows + 1}"
            split = (f' xSplit="{cols}"' if cols else "") + (f' ySplit="{rows}"' if rows else "")
            active = "bottomRight" if rows and cols else ("bottomLeft" if rows else "topRight")
            pane = (
                f'<pane{split} topLeftCell="{top_left}" activePane="{active}" state="frozen"/>'
                f'<selection pane="{active}" activeCell="{top_left}" sqref="{top_left}"/>'
            )
        styled = dict(enumerate(column_styles))
        cols_xml = "".join(
            f'<col min="{i + 1}" max="{i + 1}" width="{w:.2f}" customWidth="1"'
            + (f' style="{styled[i]}"/>' if styled.get(i) else "/>")
            for i, w in enumerate(widths)
        )
        fit = '<pageSetUpPr fitToPage="1"/>' if fit_width else ""
        self._chunks: queue.Queue[str | None] = queue.Queue(maxsize=8)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._chunks.put(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            f"<sheetPr>{fit}</sheetPr>"
            f'<sheetViews><sheetView workbookViewId="0">{pane}</sheetView></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{cols_xml}</cols>" if cols_xml else "")
            + "<sheetData>"
        )
        self._thread.start()

    def _write(self, text: str) -> None:
        self._stream.write(text.encode("utf-8"))

    def _drain(self) -> None:
        """The writer thread: encode and deflate (zlib releases the GIL) while rows are built."""
        try:
            while (chunk := self._chunks.get()) is not None:
                self._write(chunk)
        except BaseException as error:  # reported by close(), in the caller's thread
            self._failed = error
            while self._chunks.get() is not None:
                pass

    def merge(self, first_row: int, first_col: int, last_row: int, last_col: int) -> None:
        """Merge a range; rows from 1, columns from 0."""
        self._merges.append(
            f"{self._columns[first_col]}{first_row}:{self._columns[last_col]}{last_row}"
        )

    def autofilter(self, row: int, first_col: int, last_col: int) -> None:
        self._autofilter = f"{self._columns[first_col]}{row}:{self._columns[last_col]}{row}"

    def row(
        self, values: Sequence[Any], styles: Sequence[int] | int, *, height: float | None = None
    ) -> int:
        """Write the next row; a None or "" value leaves its cell empty (but styled when the
        style is not DEFAULT, so borders stay continuous). Returns the row number."""
        self.rows += 1
        n = self.rows
        if isinstance(styles, int):
            styles = [styles] * len(values)
        cells: list[str] = []
        add = cells.append
        columns = self._columns
        for i, value in enumerate(values):
            s = styles[i]
            ref = f"{columns[i]}{n}"
            if value is None or value == "":
                if s:
                    add(f'<c r="{ref}" s="{s}"/>')
                continue
            kind = type(value)
            if kind is str:
                add(f'<c r="{ref}" s="{s}" t="inlineStr"><is><t>{text_xml(value)}</t></is></c>')
            elif kind is bool:
                add(f'<c r="{ref}" s="{s}" t="b"><v>{int(value)}</v></c>')
            elif kind is int or kind is Decimal or kind is float:
                add(f'<c r="{ref}" s="{s}"><v>{value}</v></c>')
            elif kind is date:
                add(f'<c r="{ref}" s="{s}"><v>{excel_date(value)}</v></c>')
            else:
                add(
                    f'<c r="{ref}" s="{s}" t="inlineStr"><is><t>{text_xml(str(value))}</t></is></c>'
                )
        ht = f' ht="{height}" customHeight="1"' if height else ""
        self._buffer.append(f'<row r="{n}"{ht}>{"".join(cells)}</row>')
        if len(self._buffer) >= 2000:
            self.flush()
        return n

    def cell_template(self, column: int, style: int, *, text: bool) -> str:
        """A cell's XML with two %-slots, the row number and the value: for `raw_row`."""
        ref = f"{self._columns[column]}%d"
        if text:
            return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t>%s</t></is></c>'
        return f'<c r="{ref}" s="{style}"><v>%s</v></c>'

    @staticmethod
    def blank_cell(style: int) -> str:
        """An empty cell with its style (its border), for `raw_row`. Without a reference (it is
        optional: the cell after the one before), so 200,000 rows of them compress to little."""
        return f'<c s="{style}"/>'

    def next_row(self) -> int:
        self.rows += 1
        return self.rows

    def raw_row(self, number: int, cells: str, *, height: float | None = None) -> None:
        """Append a row whose cells are XML already (from `cell_template`; text escaped)."""
        ht = f' ht="{height}" customHeight="1"' if height else ""
        self._buffer.append(f'<row r="{number}"{ht}>{cells}</row>')
        if len(self._buffer) >= 2000:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._chunks.put("".join(self._buffer))
            self._buffer.clear()

    def cancel(self) -> None:
        """Stop the writer thread without finishing the sheet (the workbook is discarded)."""
        self._chunks.put(None)
        self._thread.join()
        with contextlib.suppress(Exception):  # a full disk: the zip must not stay open for it
            self._stream.close()

    def close(self) -> None:
        self.flush()
        tail = ["</sheetData>"]
        if self._autofilter:
            tail.append(f'<autoFilter ref="{self._autofilter}"/>')
        if self._merges:
            merged = "".join(f'<mergeCell ref="{m}"/>' for m in self._merges)
            tail.append(f'<mergeCells count="{len(self._merges)}">{merged}</mergeCells>')
        tail.append('<printOptions horizontalCentered="1"/>')
        left, right, top, bottom = self._margins
        tail.append(
            f'<pageMargins left="{left}" right="{right}" top="{top}" bottom="{bottom}" '
            'header="0.25" footer="0.25"/>'
        )
        orientation = "landscape" if self._landscape else "portrait"
        fit = f' fitToWidth="1" fitToHeight="{int(self._fit_height)}"' if self._fit_width else ""
        tail.append(f'<pageSetup paperSize="9" orientation="{orientation}"{fit}/>')
        head, foot = self._header_footer
        if head or foot:
            tail.append(
                "<headerFooter>"
                + (f"<oddHeader>{escape(head)}</oddHeader>" if head else "")
                + (f"<oddFooter>{escape(foot)}</oddFooter>" if foot else "")
                + "</headerFooter>"
            )
        tail.append("</worksheet>")
        self._chunks.put("".join(tail))
        self._chunks.put(None)
        self._thread.join()
        if self._failed is not None:
            raise self._failed
        self._stream.close()


class Workbook:
    """Sheets are written one after another (a zip entry is written in one go); the workbook
    file appears at its path only when closed without error: never a half-written file."""

    def __init__(
        self,
        path: str | Path,
        *,
        title: str = "",
        properties: dict[str, str] | None = None,
        compresslevel: int = 1,
    ) -> None:
        self.path = Path(path)
        self._title = title
        self._properties = properties or {}
        handle, self._tmp = create_part(self.path)
        os.close(handle)
        self._zip = zipfile.ZipFile(
            self._tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        )
        self._sheets: list[tuple[str, str]] = []  # (name, print titles ref or "")
        self._current: Sheet | None = None

    def sheet(
        self,
        name: str,
        *,
        widths: Sequence[float],
        freeze: tuple[int, int] | None = None,
        print_title_rows: tuple[int, int] | None = None,
        print_title_columns: int = 0,
        landscape: bool = True,
        fit_height: bool = False,
        margins: tuple[float, float, float, float] = MARGINS,
        fit_width: bool = True,
        header_footer: tuple[str, str] = ("", ""),
        column_styles: Sequence[int] = (),
    ) -> Sheet:
        if self._current is not None:
            self._current.close()
        index = len(self._sheets) + 1
        parts = []
        if print_title_columns:  # the first columns, repeated on every page printed across
            parts.append(f"'{name}'!$A:${column_letter(print_title_columns - 1)}")
        if print_title_rows:
            parts.append(f"'{name}'!${print_title_rows[0]}:${print_title_rows[1]}")
        titles = ",".join(parts)
        self._sheets.append((name, titles))
        stream = self._zip.open(f"xl/worksheets/sheet{index}.xml", "w", force_zip64=True)
        self._current = Sheet(
            stream,
            widths=widths,
            freeze=freeze,
            landscape=landscape,
            fit_height=fit_height,
            margins=margins,
            fit_width=fit_width,
            header_footer=header_footer,
            column_styles=column_styles,
        )
        return self._current

    def close(self) -> None:
        try:
            if self._current is not None:
                self._current.close()
                self._current = None
            for name, data in self._parts():
                self._zip.writestr(name, data)
            self._zip.close()
        except BaseException:  # a full disk, say: leave no partial file behind
            self.abort()
            raise
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._current is not None:
            self._current.cancel()
        with contextlib.suppress(Exception):  # the partial file is removed either way
            self._zip.close()
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> "Workbook":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _parts(self) -> Iterable[tuple[str, str]]:
        count = len(self._sheets)
        sheet_types = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, count + 1)
        )
        yield (
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            f"{sheet_types}"
            '<Override PartName="/docProps/core.xml" ContentType="application/'
            'vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/docProps/app.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            '<Override PartName="/docProps/custom.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.custom-properties+xml"/>'
            "</Types>",
        )
        yield (
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
            'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/extended-properties" Target="docProps/app.xml"/>'
            '<Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/custom-properties" Target="docProps/custom.xml"/>'
            "</Relationships>",
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        description = "；".join(f"{k}：{v}" for k, v in self._properties.items())
        yield (
            "docProps/core.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
            'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/'
            'XMLSchema-instance">'
            f"<dc:title>{_attr(self._title)}</dc:title>"
            f"<dc:description>{_attr(description)}</dc:description>"
            "<dc:creator>LandLedger</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
            "</cp:coreProperties>",
        )
        yield (
            "docProps/app.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
            'extended-properties"><Application>LandLedger</Application></Properties>',
        )
        custom = "".join(
            '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" '
            f'pid="{pid}" name="{_attr(k)}"><vt:lpwstr>{_attr(v)}</vt:lpwstr></property>'
            for pid, (k, v) in enumerate(self._properties.items(), start=2)
        )
        yield (
            "docProps/custom.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
            'custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/'
            f'docPropsVTypes">{custom}</Properties>',
        )
        sheets = "".join(
            f'<sheet name="{_attr(name)}" sheetId="{i}" r:id="rId{i}"/>'
            for i, (name, _) in enumerate(self._sheets, start=1)
        )
        names = "".join(
            f'<definedName name="_xlnm.Print_Titles" localSheetId="{i}">{_attr(ref)}</definedName>'
            for i, (_, ref) in enumerate(self._sheets)
            if ref
        )
        yield (
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{sheets}</sheets>"
            + (f"<definedNames>{names}</definedNames>" if names else "")
            + "</workbook>",
        )
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/'
            f'2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        yield (
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'{rels}<Relationship Id="rId{count + 1}" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>',
        )
        yield "xl/styles.xml", _styles()


def _styles() -> str:
    numfmts = "".join(
        f'<numFmt numFmtId="{i}" formatCode="{_attr(code)}"/>' for i, code in _NUMFMTS.items()
    )
    xfs = "".join(
        f'<xf numFmtId="{fmt}" fontId="{font}" fillId="{fill}" borderId="{border}" xfId="0"'
        + (' applyNumberFormat="1"' if fmt else "")
        + (' applyFont="1"' if font != NORMAL_FONT else "")
        + (' applyFill="1"' if fill else "")
        + (' applyBorder="1"' if border else "")
        + (f' applyAlignment="1">{align}</xf>' if align else "/>")
        for fmt, font, fill, border, align in _XFS
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<numFmts count="{len(_NUMFMTS)}">{numfmts}</numFmts>'
        f'<fonts count="{len(_FONTS)}">{"".join(_FONTS)}</fonts>'
        f'<fills count="{len(_FILLS)}">{"".join(_FILLS)}</fills>'
        f'<borders count="{len(_BORDERS)}">{"".join(_BORDERS)}</borders>'
        f'<cellStyleXfs count="1"><xf numFmtId="0" fontId="{NORMAL_FONT}" fillId="0" '
        'borderId="0"/></cellStyleXfs>'
        f'<cellXfs count="{len(_XFS)}">{xfs}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="常规" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )


def printable_points(
    margins: tuple[float, float, float, float], *, landscape: bool
) -> tuple[float, float]:
    """The width and height inside the margins of an A4 page, in points."""
    short, long = A4_POINTS
    width, height = (long, short) if landscape else (short, long)
    left, right, top, bottom = margins
    return width - 72 * (left + right), height - 72 * (top + bottom)


def fit_header(header: str, width: float) -> str:
    """A header as printed in a column `width` wide: a unit in brackets goes to a line of its
    own when the header does not fit on one line, so a line never breaks inside the brackets.
    (The import reads headers without their line breaks.)"""
    name, bracket, rest = header.partition("（")
    if bracket and name and text_width(header) > width - 1:
        return f"{name}\n{bracket}{rest}"
    return header


def number_width(text: str, *, narrow: bool = False) -> float:
    """Column width for a number as shown (Times New Roman: digits one unit, '.' a half).
    Arial Narrow (`narrow`): a digit is 0.90 of a unit as LibreOffice prints it, 0.96 in Excel
    (7-pixel units); 0.92 leaves Excel the same share of the padding as Times New Roman's."""
    if narrow:
        return sum(0.46 if ch in ".," else 1.47 if ch == "%" else 0.92 for ch in text)
    return sum(0.5 if ch in ".," else 1.7 if ch == "%" else 1.0 for ch in text)


def text_width(text: str) -> float:
    """Column width for a text: an ideograph is about two digits wide; other characters up to
    1.3 (DejaVu Sans's digits, which LibreOffice draws in 宋体 cells where 宋体 is missing)."""
    return sum(2.1 if ord(ch) > 0x2E7F else 1.3 for ch in text)
