"""What a printer and a colleague meet: page setup read back with openpyxl (orientation, fitting,
repeated titles, the scale the widths imply, grid, wrap) and the exported files' names and modes.

No rendering here (CI has no LibreOffice): the scale is computed from the widths as LibreOffice
prints our default font, the wider of the two programs the receivers use (docs/print/)."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from helpers import cli
from openpyxl.worksheet.worksheet import Worksheet
from sheets import record_varied

from service.ledger import LandLedger

pytestmark = pytest.mark.backends("sqlite")  # the sheets' layout, not the store


@pytest.fixture
def varied(app: LandLedger, db_url: str) -> str:
    record_varied(app)
    return db_url


def export(db: str, kind: str, out: Path, *options: str) -> Path:
    code, _, stderr = cli("--db", db, "export", kind, "--out", str(out), *options)
    assert code == 0, stderr
    return out


@pytest.fixture
def umask_002() -> Iterator[None]:
    saved = os.umask(0o002)
    yield
    os.umask(saved)


@pytest.mark.parametrize("kind", ["table2", "ledger", "events"])
def test_exported_files_get_the_users_umask(
    varied: str, tmp_path: Path, kind: str, umask_002: None
) -> None:
    out = export(varied, kind, tmp_path / f"{kind}.{'jsonl' if kind == 'events' else 'xlsx'}")
    assert stat.S_IMODE(out.stat().st_mode) == 0o664  # colleagues in the group can open it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["附件2.xls", "附件2.XLS", "附件2.csv", "附件2"])
def test_a_sheet_named_other_than_xlsx_is_refused_in_chinese(
    varied: str, tmp_path: Path, name: str
) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / name
    code, stdout, stderr = cli("--db", varied, "export", "table2", "--out", str(out))
    assert code == 1 and stdout == ""
    assert "--out" in stderr and "不是 .xlsx 文件名" in stderr and "附件2.xlsx" in stderr
    assert "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []
