"""The uniform base of every command: arguments, env file, handle, exit code.

Exit codes: 0 ok · 1 runtime failure (database unreachable, verification failed, ...) ·
2 usage or configuration error (argparse's own convention) · 130 interrupted.
Errors a person can make print one line on stderr, never a stack trace, and never a password.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from ..db.connect import DatabaseUnavailable
from ..envfile import EnvFileNotFound, load_env_file, resolve_env_file
from ..errors import OperatorError
from ..redact import redact
from ..settings import ConfigError

ENV_FILE_HELP = (
    "env file to read (default: %(default)s; looked up in the working directory, then the repo root). "
    "Variables already exported with a non-empty value win over the file."
)


class CommandError(OperatorError):
    """A command's failure to report as one line; `code` is the exit status."""


class Command:
    name: str = ""
    help: str = ""
    description: str | None = None
    epilog: str | None = None  # shown after the options, line breaks kept (e.g. a list of variables)
    default_env_file: str | None = ".env.dev"
    # Commands that write to the database refuse another environment's database before they
    # start (WORDLOOM_ENV vs environment_sentinel), like the API and the workers do.
    guards_environment: bool = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # pragma: no cover - override
        pass

    def handle(self, args: argparse.Namespace) -> int:  # pragma: no cover - override
        raise NotImplementedError

    def build_parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=prog, description=self.description or self.help, epilog=self.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter if self.epilog else argparse.HelpFormatter)
        if self.default_env_file is not None:
            parser.add_argument("--env-file", default=self.default_env_file, help=ENV_FILE_HELP)
        self.add_arguments(parser)
        return parser

    def load_env(self, args: argparse.Namespace) -> None:
        name = getattr(args, "env_file", None)
        if not name:
            return
        try:
            path = resolve_env_file(name)
        except EnvFileNotFound as exc:
            # The default file is optional (exported variables may say everything); a file the
            # person named explicitly must exist.
            if name == self.default_env_file and "--env-file" not in sys.argv:
                return
            raise CommandError(f"env file not found: {name} (tried: {', '.join(map(str, exc.tried))})") from None
        load_env_file(path)

    def run(self, argv: Sequence[str] | None = None, prog: str | None = None,
            fixed: Mapping[str, str] | None = None) -> int:
        """`fixed`: options an entry path decides by its own name (the v3 file
        search_outbox_replay_failed.py replays the search outbox): they leave the help and the
        required list, and take that value whatever was typed."""
        parser = self.build_parser(prog)
        fixed_dests = {_fix_option(parser, option, value): value for option, value in (fixed or {}).items()}
        args = parser.parse_args(argv)
        for dest, value in fixed_dests.items():
            setattr(args, dest, value)  # typed or not (a runbook that spelled it out still works)
        try:
            self.load_env(args)
            from ..observability.logs import setup_logging

            setup_logging()
            if self.guards_environment:
                from ..envguard import guard_database_environment

                guard_database_environment()
            return int(self.handle(args) or 0)
        except (OperatorError, ConfigError, DatabaseUnavailable) as exc:
            code = getattr(exc, "code", 2 if isinstance(exc, ConfigError) else 1)
            print(f"{parser.prog}: error: {redact(exc)}", file=sys.stderr)
            return code
        except KeyboardInterrupt:
            print(f"{parser.prog}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # `cmd | head`: the reader left.  Point stdout at /dev/null so the interpreter's final
            # flush cannot raise again, and end quietly like other command-line tools.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1


def _fix_option(parser: argparse.ArgumentParser, option: str, value: str) -> str:
    """Take `option` out of the help and the required list; returns its dest."""
    action = next(a for a in parser._actions if option in a.option_strings)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{option} {value!r} is not one of {sorted(action.choices)}")
    action.required, action.help, action.default = False, argparse.SUPPRESS, value
    parser.epilog = ((parser.epilog + "\n\n") if parser.epilog else "") + f"This entry path always uses {option} {value}."
    return action.dest


def run_command(module_name: str, argv: Sequence[str] | None = None, prog: str | None = None,
                fixed: Mapping[str, str] | None = None) -> int:
    """Import `wordloom.commands.<module_name>` and run its COMMAND."""
    import importlib

    module = importlib.import_module(f"wordloom.commands.{module_name}")
    return module.COMMAND.run(argv, prog=prog or os.path.basename(sys.argv[0]), fixed=fixed)
