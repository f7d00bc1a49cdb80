"""Collect the commands the docs (and the registry) give people, and run them against real servers.

Collection (`collect_docs`, `collect_registry`):
- every fenced block tagged ```sh, ```bash, ```shell or ```console in docs/**/*.md and README.md;
  in a console block only `$ `-prefixed lines are commands (the rest is shown output);
- a line ending in `\\` continues on the next line; blank lines and `# comment` lines are not commands;
- each block starts at the repo root; a `cd DIR` line moves the following lines of the block into DIR
  (that is how the docs show the older forms typed from `backend/`); `export NAME=value` lines set
  NAME for the following lines of the block;
- NOT EXECUTED markers, always with a reason that the test report shows:
    `<!-- not-executed: REASON -->` on the line right before the opening fence (blank lines allowed)
    skips the whole block; `# not-executed: REASON` at the end of a command line skips that line.

Running (`Runner.run`): every command runs verbatim through `bash -c` in its working directory with
an environment that points it at the test session's own database and index (exported values win over
env files, in the commands and in the launchers).  What "runs" means depends on what the command is:
- a worker (search_outbox_worker.py, chronicle_outbox_worker.py, run_worker.sh, run_chronicle_worker.sh,
  cli.py ops search-worker / chronicle-worker): a pending event is inserted with the labs inserter
  first; the worker must carry it to `done` (and, for search, into the index), then exit 0 on SIGTERM;
- the API (run_api.sh, cli.py ops api): it must answer /api/v1/health, then exit 0 on SIGTERM;
- a command that talks to a fixed local port (curl to the API or a worker's metrics port): that
  process is started on that port for the duration of the command (skipped if the port is taken);
- everything else must exit 0; replay --dry-run must print `Matched failed rows:`, rebuilds
  `Rebuild OK`, the search inserter only ids, the chronicle inserter one JSON object, export-jaeger the
  files it wrote (which the runner then removes);
- a long-running command the runner cannot drive (honcho, make dev, dev services) fails the test unless
  the doc marks it not-executed with a reason.
Placeholders such as `<who>`, `<why>` are filled in; an unknown `<placeholder>` fails the command.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
BLOCK_MARKER = re.compile(r"^\s*<!--\s*not-executed:\s*(.+?)\s*-->\s*$")
LINE_MARKER = re.compile(r"\s#\s*not-executed:\s*(.+?)\s*$")
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9_-]*)>")
PLACEHOLDERS = {
    "who": "docs-test",
    "why": "docs-test-run",
    "reason": "docs-test-run",
    "name": "docs-test",
}
# Processes behind fixed local ports that doc commands talk to (dev and test values of .env.*).
PORT_SERVICES = {30001: "api", 30011: "api", 9108: "search", 9109: "search", 9110: "chronicle", 9111: "chronicle"}
LOCAL_URL = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+)")
WORKER_MARKS = {
    "search": ("search_outbox_worker.py", "run_worker.sh", "search-worker"),
    "chronicle": ("chronicle_outbox_worker.py", "run_chronicle_worker.sh", "chronicle-worker"),
}
# Long-running commands this runner does not drive; a doc must mark them not-executed.
UNDRIVEN = (
    (re.compile(r"(^|\s)honcho\s+start\b"), "honcho start"),
    (re.compile(r"(^|\s)make\s+(dev|services)\b"), "make dev / make services"),
    (re.compile(r"\bdev\s+services\b(?!.*--(stop|help|check))"), "dev services"),
    (re.compile(r"run_services\.sh\b(?!.*--(check|help))"), "run_services.sh"),
    (re.compile(r"(^|\s)make\s+test\b"), "make test (the suite itself)"),
)
PROCESS_TIMEOUT = 25.0  # seconds for a worker to drain or the API to answer
STOP_TIMEOUT = 12.0  # seconds for a SIGTERM'd process to exit


@dataclass
class DocCommand:
    text: str  # as written (continuations joined), placeholders not yet filled
    cwd: str = "."  # relative to the repo root
    sources: list[str] = field(default_factory=list)
    skip: str | None = None  # the doc's not-executed reason
    env: dict[str, str] = field(default_factory=dict)  # `export` lines earlier in the block

    @property
    def key(self) -> tuple:
        return (self.cwd, self.text, tuple(sorted(self.env.items())), self.skip)

    @property
    def test_id(self) -> str:
        where = "" if self.cwd == "." else f"[cd {self.cwd}] "
        return (where + self.text)[:150]

    def words(self) -> list[str]:
        try:
            return shlex.split(self.text, comments=True)
        except ValueError:
            return self.text.split()

    def bare(self) -> str:
        """The command without its trailing comment, for classification."""
        return " ".join(self.words())


# -- collection ------------------------------------------------------------------------------------
def doc_files(root: Path = REPO) -> list[Path]:
    files = sorted((root / "docs").rglob("*.md"))
    files = [f for f in files if "_snapshot" not in f.parts]
    readme = root / "README.md"
    return ([readme] if readme.is_file() else []) + files


def parse_markdown(text: str, source: str) -> list[DocCommand]:
    """The commands of every shell block of one Markdown text (see the module docstring)."""
    lines = text.splitlines()
    out: list[DocCommand] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            j += 1
        if lang in SHELL_LANGS:
            out.extend(_block_commands(lines, start, j, lang, source))
        i = j + 1
    return out


def _block_marker(lines: list[str], fence_line: int) -> str | None:
    k = fence_line - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    if k >= 0:
        m = BLOCK_MARKER.match(lines[k])
        if m:
            return m.group(1)
    return None


def _block_commands(lines, start: int, end: int, lang: str, source: str) -> list[DocCommand]:
    block_skip = _block_marker(lines, start)
    cwd = Path(".")
    env: dict[str, str] = {}
    out = []
    k = start + 1
    while k < end:
        line, lineno = lines[k], k + 1
        k += 1
        stripped = line.strip()
        if lang == "console":
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:].strip()
        if not stripped or stripped.startswith("#"):
            continue
        while stripped.endswith("\\") and k < end:
            nxt = lines[k].strip()
            k += 1
            stripped = stripped[:-1].rstrip() + " " + (nxt[2:] if lang == "console" and nxt.startswith("> ") else nxt)
        skip = block_skip
        m = LINE_MARKER.search(" " + stripped)
        if m:
            skip = skip or m.group(1)
        cmd = DocCommand(stripped, cwd.as_posix(), [f"{source}:{lineno}"], skip, dict(env))
        words = cmd.words()
        if words[:1] == ["cd"] and len(words) == 2 and "&&" not in stripped:
            cwd = Path(os.path.normpath(cwd / words[1]))
        elif words[:1] == ["export"] and not skip:
            for word in words[1:]:
                name, eq, value = word.partition("=")
                if eq:
                    env[name] = value
        out.append(cmd)
    return out


def collect_docs(files: list[Path] | None = None, root: Path = REPO) -> list[DocCommand]:
    found = []
    for path in files if files is not None else doc_files(root):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        found.extend(parse_markdown(path.read_text(encoding="utf-8"), rel))
    return found


def registry_command(path: str, entry: dict) -> DocCommand:
    """How a person runs a registry path with its usual arguments, from the repo root."""
    name = Path(path).name
    if path.endswith(".sh"):
        text = f"./{path} .env.test"
    elif name == "cli.py":
        text = f"python {path} outbox status"
    elif "replay_failed" in name:
        text = f"python {path} --by <who> --reason <why> --limit 100 --dry-run"
    elif name.startswith("rebuild_"):
        text = f"python {path} --truncate --emit-outbox"
    elif name == "export_jaeger.py":
        text = f"python {path} --service wordloom-search-outbox-worker"
    else:
        text = f"python {path}"
    if "run_services.sh" in path:
        # The embedded servers bind the fixed ports 5435/19200; the end-to-end test runs them.
        text = f"./{path} --check .env.test"
    return DocCommand(text, ".", [f"registry:{path}"])


def collect_registry(registry: dict) -> list[DocCommand]:
    return [registry_command(e["path"], e) for e in registry["entries"]]


def merge(commands: list[DocCommand]) -> list[DocCommand]:
    """One test per distinct (cwd, command, env, skip); every place it appears is kept in sources."""
    merged: dict[tuple, DocCommand] = {}
    for cmd in commands:
        if cmd.key in merged:
            merged[cmd.key].sources.extend(cmd.sources)
        else:
            merged[cmd.key] = DocCommand(cmd.text, cmd.cwd, list(cmd.sources), cmd.skip, dict(cmd.env))
    return list(merged.values())


# -- running ---------------------------------------------------------------------------------------
class CommandFailed(AssertionError):
    pass


class NotRunnableHere(Exception):
    """The command is fine but this machine cannot run it now (e.g. its fixed port is taken)."""


@dataclass
class Servers:
    database_url: str
    elastic_url: str
    elastic_index: str
    var_dir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def fill_placeholders(text: str) -> str:
    def sub(m):
        name = m.group(1)
        if name not in PLACEHOLDERS:
            raise CommandFailed(f"unknown placeholder <{name}> in {text!r} (add it to docs_runner.PLACEHOLDERS)")
        return PLACEHOLDERS[name]

    return PLACEHOLDER.sub(sub, text)


ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def program(cmd: DocCommand) -> tuple[str, list[str]]:
    """(what runs, its arguments): the script for `python script.py ...`, else the first word.
    Leading `NAME=value` assignments are skipped; the shell would apply them to the program."""
    words = cmd.words()
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return "", []
    head, rest = words[0], words[1:]
    if re.fullmatch(r"(.*/)?python3?(\.\d+)?", head):
        while rest and rest[0].startswith("-"):
            rest = rest[2:] if rest[0] in ("-W", "-X", "-m") else rest[1:]
        if rest:
            head, rest = rest[0], rest[1:]
    elif head in ("bash", "sh", "exec") and rest:
        head, rest = rest[0], rest[1:]
    return head, rest


def kind_of(cmd: DocCommand) -> str:
    bare = cmd.bare()
    words = cmd.words()
    if words[:1] == ["cd"]:
        return "cd"
    for pattern, what in UNDRIVEN:
        if pattern.search(bare):
            return "undriven:" + what
    if any(flag in words for flag in ("--help", "-h", "--check")):
        return "plain"
    head, rest = program(cmd)
    name = Path(head).name
    sub = " ".join(rest[:2])
    for projection, (script, launcher, command) in WORKER_MARKS.items():
        if name in (script, launcher) or (name in ("cli.py", "wordloom") and sub == f"ops {command}"):
            return "worker:" + projection
    if name == "run_api.sh" or (name in ("cli.py", "wordloom") and sub == "ops api"):
        return "api"
    return "plain"


class Runner:
    """Runs DocCommands against one database + index; `python` on PATH is the project's venv."""

    def __init__(self, servers: Servers, root: Path = REPO, venv: Path | None = None):
        self.servers = servers
        self.root = root
        self.venv = venv or (REPO / ".venv")
        self.log: list[str] = []

    # environment ------------------------------------------------------------------------------
    def environ(self, cmd: DocCommand | None = None, **extra: str) -> dict[str, str]:
        drop = ("OUTBOX_", "WORDLOOM_", "HONCHO_", "PYTHON", "OTEL_", "VIRTUAL_ENV", "SEARCH_OUTBOX_",
                "CHRONICLE_OUTBOX_", "API_", "DATABASE_URL", "ELASTIC_", "JAEGER_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            # an activated venv, as the docs assume (`source .venv/bin/activate` or `make setup`)
            VIRTUAL_ENV=str(self.venv), PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            DATABASE_URL=self.servers.database_url, ELASTIC_URL=self.servers.elastic_url,
            ELASTIC_INDEX=self.servers.elastic_index, WORDLOOM_ENV="test",
            WORDLOOM_VAR_DIR=str(self.servers.var_dir), PYTHONUNBUFFERED="1",
            # never the fixed dev/test ports: a stack may be running next to the tests
            OUTBOX_METRICS_PORT="0", SEARCH_OUTBOX_METRICS_PORT="0", CHRONICLE_OUTBOX_METRICS_PORT="0",
            API_HOST="127.0.0.1", API_PORT=str(free_port()),
            OUTBOX_POLL_INTERVAL_MS="50", OUTBOX_SHUTDOWN_GRACE_SECONDS="3", WORDLOOM_WAIT_FOR_DB_SECONDS="5",
            JAEGER_QUERY_URL=f"http://127.0.0.1:{free_port()}/api",  # nothing listens: local-span fallback
        )
        if cmd is not None:
            env.update(cmd.env)
        env.update(extra)
        return env

    def cwd(self, cmd: DocCommand) -> Path:
        path = (self.root / cmd.cwd).resolve()
        if not path.is_dir():
            raise CommandFailed(f"working directory {cmd.cwd} does not exist")
        return path

    # entry -------------------------------------------------------------------------------------
    def run(self, cmd: DocCommand) -> str:
        """Run one command; return a one-line summary; raise CommandFailed (or NotRunnableHere)."""
        kind = kind_of(cmd)
        if kind.startswith("undriven:"):
            raise CommandFailed(
                f"{cmd.text!r} is long-running ({kind[9:]}) and this runner cannot drive it: mark it in the doc "
                "with <!-- not-executed: REASON --> (e.g. covered by tests/integration/test_e2e_stack.py)")
        text = fill_placeholders(cmd.text)
        if kind == "cd":
            self.cwd(DocCommand("cd", cwd=(Path(cmd.cwd) / cmd.words()[1]).as_posix()))
            return "cd: directory exists"
        ports = [int(p) for p in LOCAL_URL.findall(text) if int(p) in PORT_SERVICES]
        if kind.startswith("worker:"):
            return self.run_worker(cmd, text, kind.split(":", 1)[1])
        if kind == "api":
            return self.run_api(cmd, text)
        if ports:
            return self.run_with_service(cmd, text, ports[0])
        return self.run_plain(cmd, text)

    # plain commands ------------------------------------------------------------------------------
    def _prepare(self, text: str) -> dict:
        """Seed what a command needs to show something: a failed row for replay, a book for rebuilds."""
        import psycopg

        state: dict = {}
        if "replay" in text:
            from wordloom.labs.inserters import (ChronicleInsertSpec, SearchInsertSpec, insert_chronicle_pending,
                                                 insert_search_pending)

            m = re.search(r"--entity-type[= ](\S+)", text)
            entity_type = m.group(1) if m else "book"
            with psycopg.connect(self.servers.database_url, autocommit=True) as conn:
                search_id = insert_search_pending(conn, SearchInsertSpec(entity_type=entity_type))[0]
                made = insert_chronicle_pending(conn, ChronicleInsertSpec())
                conn.execute("UPDATE search_outbox_events SET status = 'failed', error_reason = 'es_4xx' WHERE id = %s",
                             (search_id,))
                conn.execute("UPDATE chronicle_outbox_events SET status = 'failed', error_reason = 'deterministic_exception'"
                             " WHERE id = %s", (made["outbox_id"],))
        elif "rebuild" in text:
            from wordloom.domain import create_book, create_library

            with psycopg.connect(self.servers.database_url, autocommit=True) as conn:
                lib = create_library(conn, "docs-test")
                create_book(conn, lib["id"], "Docs test book", "rebuilt by the docs test")
        if "export-jaeger" in text or "export_jaeger" in text:
            state["dirs_before"] = self._labs_dirs()
        return state

    def _labs_dirs(self) -> set[Path]:
        labs = self.root / "docs" / "labs"
        return ({labs} | {p for p in labs.rglob("*") if p.is_dir()}) if labs.exists() else set()

    def _remove_export(self, cwd: Path, out: str, dirs_before: set[Path]) -> list[Path]:
        """Delete exactly the files export-jaeger says it wrote (it prints one path per line), and the
        folders it created for them.  Anything else under docs/labs (other people's drill evidence,
        written while this runs) is never touched."""
        written = []
        for line in out.splitlines():
            path = (cwd / line.strip()).resolve() if line.strip().endswith(".json") else None
            if path is not None and path.is_file() and path.name.startswith("jaeger-"):
                written.append(path)
                path.unlink()
        labs = (self.root / "docs" / "labs").resolve()
        for path in written:
            folder = path.parent
            while folder not in dirs_before and folder.is_relative_to(labs) and folder != labs.parent:
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        return written

    def run_plain(self, cmd: DocCommand, text: str) -> str:
        state = self._prepare(text)
        proc = subprocess.run(["bash", "-c", text], cwd=self.cwd(cmd), env=self.environ(cmd),
                              capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        written = self._remove_export(self.cwd(cmd), out, state["dirs_before"]) if "dirs_before" in state else None
        detail = f"\n--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}"
        if proc.returncode != 0:
            raise CommandFailed(f"{text!r} exited {proc.returncode}{detail}")
        return self.check_output(text, out, written, detail)

    def check_output(self, text: str, out: str, written, detail: str) -> str:
        words = text.split()
        help_only = "--help" in words or "-h" in words
        if help_only:
            if "usage:" not in out:
                raise CommandFailed(f"--help printed no usage{detail}")
            return "help shown"
        if "replay" in text and "--dry-run" in words:
            if not re.search(r"^Matched failed rows: 1; will replay: 1 \(limit=\d+\)$", out, re.M):
                raise CommandFailed(f"replay --dry-run did not report the seeded failed row{detail}")
            return out.splitlines()[0]
        if "replay" in text and "--by" in words:
            if "Replayed rows:" not in out:
                raise CommandFailed(f"replay printed no 'Replayed rows:'{detail}")
            return out.strip().splitlines()[-1]
        if "rebuild-es" in text:
            if "Rebuild ES OK" not in out:
                raise CommandFailed(f"rebuild-es did not print 'Rebuild ES OK'{detail}")
            return out.strip().splitlines()[-1]
        if "rebuild" in text and "--check" not in words:
            if "Rebuild OK" not in out:
                raise CommandFailed(f"rebuild did not print 'Rebuild OK'{detail}")
            return [line for line in out.splitlines() if "Rebuild OK" in line][0]
        if "insert_search_outbox_pending" in text or "insert-search-pending" in text:
            lines = out.splitlines()
            count = re.search(r"OUTBOX_INSERT_COUNT=(\d+)", text)
            try:
                ids = [uuid.UUID(line) for line in lines]
            except ValueError:
                raise CommandFailed(f"the inserter printed something other than ids on stdout{detail}") from None
            if not ids or (count and len(ids) != int(count.group(1))):
                raise CommandFailed(f"the inserter printed {len(ids)} ids{detail}")
            return f"{len(ids)} outbox id(s) printed"
        if "insert-chronicle-pending" in text:
            try:
                made = json.loads(out)
                uuid.UUID(made["outbox_id"])
            except (ValueError, KeyError, TypeError):
                raise CommandFailed(f"the chronicle inserter did not print one JSON object{detail}") from None
            return "one JSON object printed"
        if written is not None:
            names = sorted(p.name.split("-")[1] for p in written)
            if names != ["operations", "services", "traces"]:
                raise CommandFailed(f"export-jaeger wrote {[p.name for p in written]}{detail}")
            return f"export-jaeger wrote {len(written)} files (removed again)"
        if "outbox status" in text and "--json" not in words:
            if "search" not in out or "chronicle" not in out:
                raise CommandFailed(f"outbox status did not show both outboxes{detail}")
        return "exit 0"

    # long-running processes --------------------------------------------------------------------
    def _start(self, cmd: DocCommand, text: str, env: dict, log_dir: Path) -> tuple[subprocess.Popen, Path]:
        log = log_dir / f"proc-{uuid.uuid4().hex[:8]}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", text], cwd=self.cwd(cmd), env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return proc, log

    def _stop(self, proc: subprocess.Popen, log: Path, what: str) -> None:
        """SIGTERM (as honcho sends it) to the process the person started; it must exit 0."""
        if proc.poll() is not None:
            raise CommandFailed(f"{what} exited by itself with {proc.returncode}\n{self._tail(log)}")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise CommandFailed(f"{what} did not exit within {STOP_TIMEOUT:g} s of SIGTERM\n{self._tail(log)}")
        finally:
            try:  # whatever the command left behind in its session
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if code != 0:
            raise CommandFailed(f"{what} exited {code} on SIGTERM (expected 0)\n{self._tail(log)}")

    @staticmethod
    def _tail(log: Path) -> str:
        return "--- output ---\n" + log.read_text(errors="replace")[-4000:]

    def _wait(self, predicate, proc, log: Path, what: str, timeout: float | None = None) -> None:
        timeout = PROCESS_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:
                pass
            if proc.poll() is not None:
                raise CommandFailed(f"exited with {proc.returncode} before {what}\n{self._tail(log)}")
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise CommandFailed(f"timed out after {timeout:g} s waiting for {what}\n{self._tail(log)}")

    def _insert_pending(self, projection: str) -> tuple[str, str]:
        """(outbox table, outbox id) of a pending event made with the labs inserter."""
        import psycopg

        from wordloom.labs.inserters import (ChronicleInsertSpec, SearchInsertSpec, insert_chronicle_pending,
                                             insert_search_pending)

        with psycopg.connect(self.servers.database_url, autocommit=True) as conn:
            if projection == "search":
                spec = SearchInsertSpec(create_search_index_row=True, search_index_text="docs test drain")
                return "search_outbox_events", str(insert_search_pending(conn, spec)[0])
            return "chronicle_outbox_events", insert_chronicle_pending(conn, ChronicleInsertSpec())["outbox_id"]

    def _row(self, table: str, outbox_id: str):
        import psycopg

        with psycopg.connect(self.servers.database_url, autocommit=True) as conn:
            return conn.execute(f"SELECT status, entity_type, entity_id, event_version FROM {table} WHERE id = %s",
                                (outbox_id,)).fetchone()

    def _es_version(self, entity_type: str, entity_id) -> int | None:
        url = f"{self.servers.elastic_url}/{self.servers.elastic_index}/_doc/{entity_type}:{entity_id}"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError:
            return None
        return doc.get("_source", {}).get("event_version") if doc.get("found") else None

    def run_worker(self, cmd: DocCommand, text: str, projection: str) -> str:
        table, outbox_id = self._insert_pending(projection)
        proc, log = self._start(cmd, text, self.environ(cmd), self.servers.var_dir)
        self._wait(lambda: self._row(table, outbox_id)[0] == "done", proc, log, f"{table} row {outbox_id} to be done")
        if projection == "search":
            _, entity_type, entity_id, version = self._row(table, outbox_id)
            self._wait(lambda: self._es_version(entity_type, entity_id) == version, proc, log,
                       "the document in the index", timeout=5)
        self._stop(proc, log, f"the {projection} worker")
        return f"{projection} worker drained {outbox_id} and exited 0 on SIGTERM"

    def _health(self, port: int, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def run_api(self, cmd: DocCommand, text: str) -> str:
        env = self.environ(cmd)
        port = int(env["API_PORT"])
        proc, log = self._start(cmd, text, env, self.servers.var_dir)
        self._wait(lambda: self._health(port, "/api/v1/health"), proc, log, "/api/v1/health")
        self._stop(proc, log, "the API")
        return "API answered /api/v1/health and exited 0 on SIGTERM"

    def run_with_service(self, cmd: DocCommand, text: str, port: int) -> str:
        """Start the process behind a fixed local port the command talks to, then run the command."""
        if port_open(port):
            raise NotRunnableHere(f"port {port} is already in use here (a running stack?); not touching it")
        service = PORT_SERVICES[port]
        if service == "api":
            env = self.environ(API_PORT=str(port))
            start = f"python {self.root}/backend/scripts/cli.py ops api"
            ready = "/api/v1/health"
        else:
            env = self.environ(**{f"{service.upper()}_OUTBOX_METRICS_PORT": str(port)})
            start = f"python {self.root}/backend/scripts/cli.py ops {service}-worker"
            ready = "/healthz"
        proc, log = self._start(DocCommand(start), start, env, self.servers.var_dir)
        try:
            self._wait(lambda: self._health(port, ready), proc, log, f"{service} on port {port}")
            summary = self.run_plain(cmd, text)
        finally:
            if proc.poll() is None:
                self._stop(proc, log, f"the {service} process on port {port}")
        return f"{summary} (against a {service} process on :{port})"
