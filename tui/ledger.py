"""`2` 台账: the ledger as a table of every case, searched and filtered in the read model."""

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from service.session import Session


class LedgerPane(Vertical):
    HELP = "台账"

    def __init__(self, session: Session) -> None:
        super().__init__(id="ledger-pane")
        self.session = session

    def compose(self) -> ComposeResult:
        yield Static("台账（待接入）")

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return []
