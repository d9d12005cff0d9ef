"""The read side: pure folds of the event log and the read model that keeps them.

- ledger.py: a case's ledger row folded from its stored JSON (`apply`; `fold` leaves out an
  event it cannot fold), the cutoff rule (`included`), an in-memory replay, the typed view
  `LedgerRow`;
- stats.py: the statistics' measures of a row, and the `stats --json` document;
- problems.py: an open case's next step, days overdue and alerts (the 问题清单's rows);
- readmodel.py: `ReadModel`, the persisted read model following the log (`catch_up`), its
  ledger and statistics; it mixes in
  - versions.py: the as-of and known-at version rows, and statistics at a cutoff,
  - rebuild.py: the rebuild (two processes on SQLite) and `refill`,
  - alerts.py: the alerts as SQL over the current ledger (and the conditions the dashboard's
    alert filters share);
- database.py: the read model's tables and SQL on SQLite and PostgreSQL (with the ledger's
  sort indexes);
- ledger_query.py: the dashboard's ledger, filtered, sorted and paged over rm_ledger;
- dashboard.py: what the dashboard's overview reads besides the statistics (found per week);
- facts.py: the log as the read side's facts, a page at a time;
- read.py: `Reader`, the ledger and statistics now or at a cutoff, for the service.
"""
