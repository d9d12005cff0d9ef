"""Type cells into a workbook the way a clerk does in LibreOffice Calc, then save it.

    /usr/bin/python3 tools/libreoffice_typing.py IN.xlsx CELLS.json OUT.xlsx [OUT.ods ...]

Run with a Python that has LibreOffice's `uno` module (Debian: python3-uno, the system Python).
CELLS.json is [[row, column, text], ...] (from 0). Each text goes through Calc's own input line
(.uno:EnterString), so the cell's format decides what it becomes, as when typed: in a General
cell 140421198001010011 becomes the number 1.40421198001010E+17, in a text ("@") cell it stays
its digits. (The API's setFormula would parse it as a number whatever the format.)
"""

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uno
from com.sun.star.beans import PropertyValue

CONTEXT = "StarOffice.ComponentContext"
FILTERS = {".xlsx": "Calc MS Excel 2007 XML", ".ods": "calc8"}


def prop(name: str, value: object) -> PropertyValue:
    found = PropertyValue()
    found.Name, found.Value = name, value
    return found


def main(source: Path, cells: list[list[object]], outputs: list[Path]) -> None:
    with tempfile.TemporaryDirectory() as profile:
        pipe = f"landledger{Path(profile).name}"
        office = subprocess.Popen(
            [
                "soffice",
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                f"--accept=pipe,name={pipe};urp;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            local = uno.getComponentContext()
            resolver = local.ServiceManager.createInstanceWithContext(
                "com.sun.star.bridge.UnoUrlResolver", local
            )
            for _ in range(200):
                try:
                    remote = resolver.resolve(f"uno:pipe,name={pipe};urp;{CONTEXT}")
                    break
                except Exception:  # not listening yet
                    time.sleep(0.3)
            else:
                raise SystemExit("LibreOffice did not start")
            manager = remote.ServiceManager
            desktop = manager.createInstanceWithContext("com.sun.star.frame.Desktop", remote)
            doc = desktop.loadComponentFromURL(
                source.resolve().as_uri(), "_blank", 0, (prop("Hidden", True),)
            )
            sheet = doc.Sheets.getByIndex(0)
            controller = doc.getCurrentController()
            helper = "com.sun.star.frame.DispatchHelper"
            dispatch = manager.createInstanceWithContext(helper, remote)
            for row, column, text in cells:
                controller.select(sheet.getCellByPosition(column, row))
                dispatch.executeDispatch(
                    controller.getFrame(), ".uno:EnterString", "", 0, (prop("StringName", text),)
                )
            for out in outputs:
                doc.storeToURL(out.resolve().as_uri(), (prop("FilterName", FILTERS[out.suffix]),))
            doc.close(True)
            with contextlib.suppress(Exception):  # the bridge closes as LibreOffice quits
                desktop.terminate()
            office.wait(timeout=60)
        finally:
            if office.poll() is None:
                office.kill()


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")),
        [Path(p) for p in sys.argv[3:]],
    )
