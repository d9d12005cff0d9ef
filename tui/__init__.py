"""The interfaces: the `landledger` command line (and, later, the Textual dashboard)."""
