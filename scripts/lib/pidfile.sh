# Services started by the project's scripts, tracked by pid file (sourced, not run).

# pidfile_running PIDFILE NAME: prints the pid when that process runs and is NAME (a recycled pid
# belongs to another program); fails otherwise.
pidfile_running() {
    [ -f "$1" ] || return 1
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# pidfile_stop PIDFILE NAME [SECONDS]: SIGTERM, up to SECONDS (default 10) for it to exit, then
# SIGKILL; removes the pid file. Nothing running: nothing to do.
pidfile_stop() {
    local pid
    if pid=$(pidfile_running "$1" "$2"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq $((${3:-10} * 20))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}
