"""Sinks: where a claimed batch goes.  A sink runs inside the transaction the runner opened and
returns one Outcome per event; the runner settles them (done / retry / failed) in that same
transaction, so a sink's own database writes and the acks commit together."""
