"""Startup failures a person can fix are one line with the right exit code."""
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_busy_metrics_port_is_a_runtime_failure_exit_1_naming_the_fix(worker_env):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dict(worker_env, OUTBOX_METRICS_PORT=str(port))
        proc = subprocess.run([sys.executable, "-m", "wordloom.cli", "ops", "search-worker"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "OUTBOX_METRICS_PORT" in errors[0] and "Traceback" not in proc.stderr


def test_uvicorn_colour_codes_never_reach_json_logs():

    import logging

    from wordloom.observability.logs import JsonFormatter

    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = JsonFormatter().format(record)
    assert "color_message" not in line and "\\u001b" not in line and "Started server process [7]" in line
