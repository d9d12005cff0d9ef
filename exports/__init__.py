"""Spreadsheets out and in: 附件2, 台账, 问题清单, 附件1, the event log, and imports."""
