#!/usr/bin/env bash
# Stop the servers tests/stores/start.sh started (all of them, or only the names given: moto,
# azurite). Only pids recorded in .run/ whose command line is still the expected server are
# signalled: TERM to the server's own process group, KILL after 10 s. Safe to call repeatedly.
# The log folder is kept (its path is printed); OTEL_DELTA_STORES_SHOW_LOGS=1 prints its tails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="$here/.run"
log() { echo "[stores] $*" >&2; }

names=("$@")
((${#names[@]})) || names=(moto azurite)

pattern_of() {
  case $1 in
    moto) echo moto_server ;;
    azurite) echo azurite-blob ;;
    *) log "unknown server '$1' (expected moto or azurite)" && exit 2 ;;
  esac
}

alive() { kill -0 "$1" 2>/dev/null && grep -qa -- "$2" "/proc/$1/cmdline" 2>/dev/null; }

logdir=""
[[ -f $state/logdir ]] && logdir="$(cat "$state/logdir")"

for name in "${names[@]}"; do
  pattern="$(pattern_of "$name")"
  f="$state/$name.pid"
  if [[ ! -f $f ]]; then
    log "$name: not started by start.sh (no pid file)"
    continue
  fi
  pid="$(cat "$f")"
  if [[ -z $pid ]] || ! alive "$pid" "$pattern"; then
    log "$name: pid ${pid:-?} no longer running"
    rm -f "$f"
    continue
  fi
  # start.sh runs each server under setsid, so it leads its own group; signal the group if so.
  target="$pid"
  stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
  read -r -a fields <<<"${stat##*) }" # state ppid pgrp ...
  [[ ${fields[2]:-} == "$pid" ]] && target="-$pid"
  kill -TERM -- "$target" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" "$pattern" || break
    sleep 0.1
  done
  if alive "$pid" "$pattern"; then
    log "$name: pid $pid ignored TERM for 10 s, sending KILL"
    kill -KILL -- "$target" 2>/dev/null || true
  fi
  rm -f "$f"
  log "$name: stopped (pid $pid)"
  if [[ ${OTEL_DELTA_STORES_SHOW_LOGS:-0} == 1 && -n $logdir && -f $logdir/$name.log ]]; then
    log "---- last lines of $logdir/$name.log ----"
    tail -n 60 "$logdir/$name.log" >&2 || true
  fi
done

# Forget the log folder once nothing is running, so the next start gets a fresh one.
if ! compgen -G "$state/*.pid" >/dev/null && [[ -n $logdir ]]; then
  rm -f "$state/logdir"
  log "logs kept in $logdir"
fi
