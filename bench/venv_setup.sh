# Sourced by the set-up scripts that make a benchmark's own virtual environment under DATA
# (bench/setup_trl.sh, bench/corpora/setup_datatrove.sh): the one `--data DIR` argument, and the
# ready-marker that makes a second run return at once.
#
#   source bench/venv_setup.sh; venv_setup_args NAME "$@"; venv_ready_or_continue DIR LABEL

DATA=/tmp/occi-bench

venv_setup_args() {
    local script=$1; shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --data) DATA=$2; shift 2 ;;
            *) echo "$script: unknown argument $1 (use --data DIR)" >&2; exit 2 ;;
        esac
    done
}

# exits the calling script when VENV was made to the end before
venv_ready_or_continue() {
    if [ -f "$1/.occi-bench-ready" ]; then
        echo "$2's venv is ready in $1"
        exit 0
    fi
}
