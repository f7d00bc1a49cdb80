"""Docs as tests (issue 4, "Done when"): every command in a shell block under docs/ and README.md,
and every registry path, runs verbatim against this session's real PostgreSQL and index.

One test per distinct command (its id is the command; the places it appears are in the failure
message). A command the doc marks `<!-- not-executed: REASON -->` (block) or `# not-executed: REASON`
(line) is reported as skipped with that reason. How each kind of command is judged: see
tests/entrypoints/docs_runner.py.  The last tests check the runner itself: a broken path, a failing
command, an unmarked long-running command and an unknown placeholder must all fail it.
"""
from __future__ import annotations

import pytest

from tests.entrypoints import docs_runner as dr
from tests.entrypoints.support import REGISTRY, REPO

DOC_COMMANDS = dr.collect_docs()
REGISTRY_COMMANDS = dr.collect_registry(REGISTRY)
ALL = dr.merge(DOC_COMMANDS + REGISTRY_COMMANDS)


@pytest.fixture
def runner(stack, db_url, es_index, tmp_path):
    return dr.Runner(dr.Servers(db_url, stack.elastic_url, es_index, tmp_path))


@pytest.mark.parametrize("cmd", [pytest.param(c, id=c.test_id) for c in ALL])
def test_documented_command_runs(cmd, runner):
    where = ", ".join(cmd.sources)
    if cmd.skip:
        pytest.skip(f"not-executed ({where}): {cmd.skip}")
    try:
        summary = runner.run(cmd)
    except dr.NotRunnableHere as exc:
        pytest.skip(f"{where}: {exc}")
    except dr.CommandFailed as exc:
        pytest.fail(f"{where} (cwd {cmd.cwd}):\n{exc}", pytrace=False)
    print(f"{cmd.test_id} -> {summary}")


# -- what was collected ------------------------------------------------------------------------------
SEED_COMMANDS = [
    "./backend/scripts/ops/run_worker.sh .env.dev",
    "./backend/scripts/ops/run_worker.sh .env.test",
    "python backend/scripts/search_outbox_worker.py",
    "python backend/scripts/rebuild_search_index.py --truncate --emit-outbox",
    "python backend/scripts/search_outbox_replay_failed.py --by <who> --reason <why> --limit 100 --dry-run",
    "python backend/scripts/labs/labs_009_insert_search_outbox_pending.py",
    "python backend/scripts/cli.py labs export-jaeger --service wordloom-search-outbox-worker --lookback 24h",
    "python backend/scripts/chronicle_outbox_worker.py",
    "python backend/scripts/rebuild_chronicle_entries.py --truncate --emit-outbox",
    "python backend/scripts/chronicle_outbox_replay_failed.py --by <who> --reason <why> --limit 100 --dry-run",
]
OLDER_FORMS = [
    ("backend", "python3 scripts/search_outbox_worker.py"),
    ("backend", "./scripts/run_worker.sh .env.test"),
    ("backend", "./scripts/run_api.sh .env.test"),
    (".", "./run_worker.sh .env.test"),
    (".", "chmod +x scripts/*.sh backend/scripts/*.sh"),
]


def runnable(cmds):
    return {(c.cwd, c.text) for c in cmds if not c.skip}


def test_every_seed_command_is_in_the_log_and_runs_from_the_root():
    log = [c for c in DOC_COMMANDS if c.sources[0].startswith("docs/logs/")]
    assert {(".", text) for text in SEED_COMMANDS} <= runnable(log)


def test_older_forms_are_documented_and_run_from_their_directory():
    assert set(OLDER_FORMS) <= runnable(DOC_COMMANDS)


def test_every_registry_path_is_run():
    ran = {c.sources[0].removeprefix("registry:") for c in REGISTRY_COMMANDS if not c.skip}
    assert ran == {e["path"] for e in REGISTRY["entries"]}


@pytest.mark.parametrize("doc", ["docs/QUICK_COMMANDS.md", "docs/ENVIRONMENTS.md", "docs/ONE_COMMAND_START_WSL2.md",
                                 "docs/runbook/search_projection.md", "docs/runbook/chronicle_projection.md"])
def test_owned_docs_exist_and_hold_runnable_commands(doc):
    assert (REPO / doc).is_file()
    assert any(c.sources[0].startswith(doc + ":") and not c.skip for c in DOC_COMMANDS)


def test_every_skip_marker_gives_a_reason_and_long_runners_name_their_covering_test():
    for cmd in DOC_COMMANDS:
        if cmd.skip:
            assert len(cmd.skip) > 8, cmd.sources
            if dr.kind_of(cmd).startswith("undriven:") and "make test" not in cmd.text:
                assert "test_e2e_stack.py" in cmd.skip, (cmd.sources, cmd.skip)


def test_report_of_what_was_skipped(capsys):
    skipped = [c for c in ALL if c.skip]
    with capsys.disabled():
        print(f"\n[docs commands] collected {len(DOC_COMMANDS)} doc lines + {len(REGISTRY_COMMANDS)} registry paths "
              f"-> {len(ALL)} distinct commands, {len(skipped)} marked not-executed:")
        for c in skipped:
            print(f"  - {c.text}  [{c.sources[0]}]: {c.skip}")
    assert len(ALL) - len(skipped) > 40


# -- the runner itself -------------------------------------------------------------------------------
def parse(md: str) -> list[dr.DocCommand]:
    return dr.parse_markdown(md, "snippet.md")


def test_parser_honours_markers_cd_console_and_continuations():
    md = "\n".join([
        "```sh", "# a comment", "python a.py", "cd backend", "python3 scripts/b.py \\", "  --flag", "```",
        "<!-- not-executed: needs Docker -->", "", "```bash", "docker compose up", "```",
        "```console", "$ echo hi", "hi", "```",
        "```sh", "run.exe # not-executed: Windows only", "```",
        "```python", "print('not shell')", "```",
    ])
    got = [(c.cwd, c.text, c.skip) for c in parse(md)]
    assert got == [
        (".", "python a.py", None),
        (".", "cd backend", None),
        ("backend", "python3 scripts/b.py --flag", None),
        (".", "docker compose up", "needs Docker"),
        (".", "echo hi", None),
        (".", "run.exe # not-executed: Windows only", "Windows only"),
    ]


def test_a_broken_path_fails_the_runner(runner):
    (cmd,) = parse("```sh\npython backend/scripts/no_such_entry_point.py --limit 1\n```")
    with pytest.raises(dr.CommandFailed, match="exited 2"):
        runner.run(cmd)


def test_a_command_that_exits_non_zero_fails_the_runner(runner):
    (cmd,) = parse("```sh\npython backend/scripts/search_outbox_replay_failed.py --by x\n```")
    with pytest.raises(dr.CommandFailed, match="exited 2"):
        runner.run(cmd)


def test_a_missing_working_directory_fails_the_runner(runner):
    cmds = parse("```sh\ncd no-such-dir\npython3 scripts/search_outbox_worker.py\n```")
    for cmd in cmds:
        with pytest.raises(dr.CommandFailed, match="does not exist"):
            runner.run(cmd)


def test_a_worker_that_cannot_start_fails_the_runner(runner):
    (cmd,) = parse("```sh\n./backend/scripts/ops/run_worker.sh .env.nowhere\n```")
    with pytest.raises(dr.CommandFailed, match="exited with 1 before"):
        runner.run(cmd)


def test_a_worker_that_does_not_drain_fails_the_runner(runner, monkeypatch):
    # A real worker pointed at another outbox's rows never marks ours done: the wait must time out.
    monkeypatch.setattr(dr, "PROCESS_TIMEOUT", 3.0)
    (cmd,) = parse("```sh\npython backend/scripts/cli.py ops chronicle-worker  # search_outbox_worker.py\n```")
    monkeypatch.setattr(dr, "kind_of", lambda c: "worker:search")
    with pytest.raises(dr.CommandFailed, match="timed out"):
        runner.run(cmd)


def test_wrong_output_fails_the_runner(runner):
    (cmd,) = parse("```sh\npython backend/scripts/cli.py outbox status --help # rebuild\n```")
    # --help passes as help; the same output judged as a rebuild must not.
    assert runner.run(cmd) == "help shown"
    with pytest.raises(dr.CommandFailed, match="Rebuild OK"):
        runner.check_output("python x.py rebuild --truncate", "usage: x\n", None, "")


def test_an_unmarked_long_running_command_fails_the_runner(runner):
    (cmd,) = parse("```sh\nhoncho start -f Procfile.dev\n```")
    with pytest.raises(dr.CommandFailed, match="not-executed"):
        runner.run(cmd)


def test_an_unknown_placeholder_fails_the_runner(runner):
    (cmd,) = parse("```sh\npython backend/scripts/cli.py outbox prune --older-than <age>\n```")
    with pytest.raises(dr.CommandFailed, match="unknown placeholder <age>"):
        runner.run(cmd)
