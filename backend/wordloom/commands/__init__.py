"""One command per module, each a `Command` subclass exposed as `COMMAND` (Django-style)."""
