"""A worker's failure told to the user: Textual's Worker.StateChanged does not bubble, so a
screen's or pane's worker that fails would otherwise end in silence (`exit_on_error=False`)."""

from typing import Any

from textual.worker import Worker, WorkerState


class ToldFailures:
    """Mixed into a widget or screen whose workers read or write through the session."""

    app: Any

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            report = getattr(self.app, "report", None)  # LandLedgerApp.report
            if report is not None:
                report(event.worker.error)
