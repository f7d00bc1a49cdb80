# Shared body of the run_*.sh launchers (sourced, never run).  CONTRACT.md section 6, CASES C21-C26.
#
# Why bash does so little here: the env file is NOT sourced (a CRLF or BOM file would leak `\r`
# or `\ufeff` into values, and shell syntax is not python-dotenv syntax).  Bash only finds the
# file and a Python, then `exec`s backend/scripts/_launch.py, which loads the file with
# python-dotenv through the command's own --env-file.  `exec` keeps one process, so honcho's
# SIGTERM reaches Python directly (C18).
#
# The caller sets LAUNCHER (message prefix, e.g. run_worker), COMMAND (wordloom.commands module)
# and WAIT_DB (seconds to wait for PostgreSQL's port; 0 = do not wait), then calls launch "$@".

LAUNCHER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# The path the person typed: a deprecated alias passes its own $0, so usage and messages name it.
TYPED="${WORDLOOM_TYPED_PATH:-$0}"
unset WORDLOOM_TYPED_PATH
REPO_ROOT="$(cd "$LAUNCHER_DIR/../../.." && pwd -P)"

say() { printf '[%s] %s\n' "$LAUNCHER" "$*" >&2; }

usage() {
    cat <<EOF
usage: $TYPED [--check] ENV_FILE [command options...]

Runs wordloom.commands.$COMMAND with ENV_FILE (e.g. .env.dev or .env.test).
ENV_FILE is looked up in the working directory first, then in the repo root ($REPO_ROOT).
Variables exported in your shell with a non-empty value win over the file; variables that honcho
read from a stray ./.env are ignored.  Python: \$VIRTUAL_ENV, then .venv, backend/.venv,
backend/.venv_linux, then \`poetry run python\`.
  --check   print the Python, env file and resulting settings (passwords masked), start nothing
EOF
}

# Sets ENV_PATH to an absolute path, or prints the paths tried and exits 1 (C26).
resolve_env_file() {
    local name="$1" tried=()
    if [[ "$name" == /* ]]; then
        tried=("$name")
    else
        tried=("$PWD/$name")
        [[ "$PWD" -ef "$REPO_ROOT" ]] || tried+=("$REPO_ROOT/$name")
    fi
    local candidate
    for candidate in "${tried[@]}"; do
        if [[ -f "$candidate" ]]; then
            ENV_PATH="$(cd "$(dirname "$candidate")" && pwd -P)/$(basename "$candidate")"
            return 0
        fi
    done
    say "env file not found: $name"
    for candidate in "${tried[@]}"; do say "tried: $candidate"; done
    exit 1
}

# Sets PY (an array: one interpreter path, or `poetry run python`), or explains the fix and exits 1.
find_python() {
    local windows="" dir
    local candidates=()
    [[ -n "${VIRTUAL_ENV:-}" ]] && candidates+=("$VIRTUAL_ENV")
    candidates+=("$REPO_ROOT/.venv" "$REPO_ROOT/backend/.venv" "$REPO_ROOT/backend/.venv_linux")
    for dir in "${candidates[@]}"; do
        if [[ -x "$dir/bin/python" ]]; then
            PY=("$dir/bin/python")
            return 0
        fi
        # A venv made by Windows Python cannot run under WSL/Linux; v3 users often have one next
        # to a Linux venv (.venv_linux), so keep looking and only refuse if nothing else works (C25).
        if [[ -z "$windows" && -f "$dir/Scripts/python.exe" ]]; then
            windows="$dir"
        fi
    done
    if command -v poetry >/dev/null 2>&1 && (cd "$REPO_ROOT" && poetry env info -p >/dev/null 2>&1); then
        PY=(poetry run --directory "$REPO_ROOT" python)
        return 0
    fi
    if [[ -n "$windows" ]]; then
        say "$windows was created on Windows (Scripts/python.exe, no bin/python) and cannot run here."
        say "fix: in this shell run: rm -rf '$windows' && make -C '$REPO_ROOT' setup   (creates a Linux .venv)"
    else
        say "no Python environment for this project (looked at \$VIRTUAL_ENV, .venv, backend/.venv, backend/.venv_linux, poetry)."
        say "fix: make -C '$REPO_ROOT' setup"
    fi
    exit 1
}

launch() {
    local check=0
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
        --check) check=1; shift ;;
    esac
    if [[ $# -lt 1 || "$1" == -* ]]; then
        [[ $# -ge 1 ]] && say "unknown option: $1"
        usage >&2
        exit 2
    fi
    resolve_env_file "$1"
    shift
    find_python
    # The user's site-packages must not shadow the venv; output must reach honcho line by line
    # even when its stdout is a file (C19).
    export PYTHONNOUSERSITE=1 PYTHONUNBUFFERED=1
    local mode=run
    [[ $check == 1 ]] && mode=check
    exec "${PY[@]}" "$REPO_ROOT/backend/scripts/_launch.py" \
        "$mode" "$TYPED" "$LAUNCHER" "$ENV_PATH" "$WAIT_DB" "$COMMAND" "$@"
}
