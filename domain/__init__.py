"""The write side of LandLedger: values, commands, events, rules and the application service."""
