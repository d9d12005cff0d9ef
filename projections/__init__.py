"""The read side: pure folds of the event log (ledger, statistics), as-of replay."""
