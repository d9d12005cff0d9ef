"""Spreadsheets out and in: 附件2 (table2.py), 台账 (ledger.py, columns.py), 问题清单 and 附件1
(problem_sheets.py), the event log (events.py), imports (importer.py); xlsx.py is the streaming
writer they share, stamp.py the cutoff and fingerprint each carries."""
