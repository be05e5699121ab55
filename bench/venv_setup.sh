# Sourced by the set-up scripts that make a benchmark's own virtual environment under DATA
# (bench/setup_trl.sh, bench/corpora/setup_datatrove.sh): the one `--data DIR` argument, and the
# ready-marker that makes a second run return at once.
#
#   source bench/venv_setup.sh; venv_setup_args NAME "$@"; venv_ready_or_continue DIR LABEL PACKAGES...
#   ... pip install PACKAGES ...; venv_mark_ready DIR PACKAGES...

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

# exits the calling script when VENV was made to the end before with the same package list (a
# list that grew, e.g. the URL filter's pyahocorasick and tldextract, installs again)
venv_ready_or_continue() {
    local venv=$1 label=$2; shift 2
    if [ -f "$venv/.occi-bench-ready" ] && [ "$(cat "$venv/.occi-bench-ready")" = "$*" ]; then
        echo "$label's venv is ready in $venv"
        exit 0
    fi
}

venv_mark_ready() {
    local venv=$1; shift
    echo "$*" >"$venv/.occi-bench-ready"
}
