"""`wordloom` / `backend/scripts/cli.py`: the one router, `<group> <command> [args]`.

Each entry names a module under wordloom.commands that exposes COMMAND.  Modules are imported only
when their command runs, so `--help` stays fast and one broken command cannot break the others.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

GROUPS: dict[str, dict[str, str]] = {
    "dev": {
        "services": "dev_services",
        "migrate": "dev_migrate",
        "import": "dev_import",
    },
    "ops": {
        "api": "api_server",
        "search-worker": "search_worker",
        "chronicle-worker": "chronicle_worker",
        "replay-failed": "replay_failed",
        "rebuild-search-index": "rebuild_search_index",
        "rebuild-chronicle": "rebuild_chronicle_entries",
        "rebuild-es": "rebuild_es",
    },
    "outbox": {
        "status": "outbox_status",
        "prune": "outbox_prune",
    },
    "labs": {
        "export-jaeger": "labs_export_jaeger",
        "insert-search-pending": "labs_insert_search_pending",
        "insert-chronicle-pending": "labs_insert_chronicle_pending",
        "run": "labs_run",
        "verify": "labs_verify",
        "export": "labs_export",
        "clean": "labs_clean",
        "report": "labs_report",
    },
}
TOP_LEVEL: dict[str, str] = {
    "bench": "bench",
}


def _usage(prog: str) -> str:
    lines = [f"usage: {prog} <group> <command> [options]", "", "commands:"]
    for group, commands in GROUPS.items():
        for name in commands:
            lines.append(f"  {group} {name}")
    for name in TOP_LEVEL:
        lines.append(f"  {name}")
    lines += ["", f"`{prog} <group> <command> --help` shows a command's options."]
    return "\n".join(lines)


def default_prog() -> str:
    """The program name for usage lines when no entry path passed one.  `python -m wordloom.cli`
    sets argv[0] to this file's path, so its basename ("cli.py") would name nothing a person can
    type: say `python -m wordloom.cli` then, and `wordloom` when argv[0] says nothing useful."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and (spec.name or "").split(".")[0] == "wordloom":
        return f"python -m {spec.name.removesuffix('.__main__')}"
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 in ("", "-m", "-c") or os.path.basename(argv0) == "__main__.py":
        return "wordloom"
    return os.path.basename(argv0) or "wordloom"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    from .commands.base import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    prog = prog or default_prog()
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage(prog))
        return 0 if args else 2
    head = args[0]
    if head in TOP_LEVEL:
        return run_command(TOP_LEVEL[head], args[1:], prog=f"{prog} {head}")
    if head not in GROUPS:
        print(f"{prog}: error: unknown command group {head!r}\n\n{_usage(prog)}", file=sys.stderr)
        return 2
    commands = GROUPS[head]
    if len(args) < 2 or args[1] in ("-h", "--help"):
        print(f"usage: {prog} {head} <command> [options]\n\ncommands: {', '.join(commands) or '(none)'}")
        return 0 if len(args) >= 2 else 2
    name = args[1]
    if name not in commands:
        print(f"{prog}: error: unknown command {head} {name!r}; choose from: {', '.join(commands)}", file=sys.stderr)
        return 2
    return run_command(commands[name], args[2:], prog=f"{prog} {head} {name}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
