#!/usr/bin/env bash
# Start the object stores the integration tests write Delta tables to, on loopback only:
#   S3     moto 5.2.5 server      http://127.0.0.1:${OTEL_DELTA_S3_PORT:-4566}   bucket    otel-delta-test
#   Azure  Azurite 3.37.0 (blob)  http://127.0.0.1:${OTEL_DELTA_AZURITE_PORT:-10000}  container otel-delta-test
#
#   bash tests/stores/start.sh && . tests/stores/env.sh && cargo test ...; bash tests/stores/stop.sh
#
# Idempotent: installs what is missing (pinned by requirements.txt and package-lock.json, into a
# cache outside the work tree keyed by those files' hash, so fresh clones reuse it), reuses servers
# it started before if they still run, creates the bucket and container if absent, and writes the
# variables a test needs to env.sh (also printed). PIDs and the log folder are kept in .run/ for
# stop.sh. Knobs: OTEL_DELTA_S3_PORT, OTEL_DELTA_AZURITE_PORT, OTEL_DELTA_STORES_TIMEOUT (s, 60),
# OTEL_DELTA_STORES_CACHE (install cache), OTEL_DELTA_STORES_VERIFY=1 (also run `stores.py verify`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
s3_port=${OTEL_DELTA_S3_PORT:-4566}
az_port=${OTEL_DELTA_AZURITE_PORT:-10000}
timeout_s=${OTEL_DELTA_STORES_TIMEOUT:-60}
cache=${OTEL_DELTA_STORES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otel-delta-stores}
state="$here/.run"
bucket=otel-delta-test
az_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

log() { echo "[stores] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
mkdir -p "$cache" "$state"

# ---------------------------------------------------------------------------------------- install
venv="$cache/moto-$(hash_of "$here/requirements.txt")"
azdir="$cache/azurite-$(hash_of "$here/package.json" "$here/package-lock.json")"

install_moto() {
  [[ -f $venv/.installed && -x $venv/bin/moto_server ]] && return 0
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's own python3 ships venv/ensurepip separately.
    rm -rf "$venv"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      log "python3 -m venv unavailable: installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      die "python3 -m venv does not work here (install python3-venv)"
    fi
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$here/requirements.txt" ||
    die "pip install of moto failed"
  touch "$venv/.installed"
}

install_azurite() {
  [[ -f $azdir/.installed && -x $azdir/node_modules/.bin/azurite-blob ]] && return 0
  command -v npm >/dev/null || die "npm not found (Node.js 20+ is needed for Azurite)"
  rm -rf "$azdir" && mkdir -p "$azdir"
  cp "$here/package.json" "$here/package-lock.json" "$azdir/"
  # No install scripts are needed (the only one, protobufjs' postinstall, is a version notice).
  (cd "$azdir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null) ||
    die "npm ci of Azurite failed"
  touch "$azdir/.installed"
}

t0=$SECONDS
if [[ ! -f $venv/.installed || ! -f $azdir/.installed ]]; then
  log "installing (pinned) moto into $venv and Azurite into $azdir"
  npm_log="$(mktemp)"
  install_azurite >"$npm_log" 2>&1 &
  npm_pid=$!
  trap 'kill "$npm_pid" 2>/dev/null || true' EXIT
  install_moto
  if ! wait "$npm_pid"; then
    tail -n 40 "$npm_log" >&2
    die "npm install of Azurite failed"
  fi
  trap - EXIT
  rm -f "$npm_log"
  log "installed in $((SECONDS - t0)) s"
fi
py="$venv/bin/python"

# ------------------------------------------------------------------------------------------ start
if [[ -f $state/logdir && -d $(cat "$state/logdir") ]]; then
  logdir="$(cat "$state/logdir")"
else
  logdir="$(mktemp -d "${TMPDIR:-/tmp}/otel-delta-stores.XXXXXX")"
  echo "$logdir" >"$state/logdir"
fi

# our_pid NAME PATTERN: prints the recorded pid if that process is alive and is still ours.
our_pid() {
  local f="$state/$1.pid" pid
  [[ -f $f ]] || return 1
  pid="$(cat "$f")"
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -qa -- "$2" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"
  else
    rm -f "$f"
    return 1
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_log_and_die() { # NAME MESSAGE
  log "---- last lines of $logdir/$1.log ----"
  tail -n 60 "$logdir/$1.log" >&2 || true
  log "----"
  die "$2"
}

# spawn NAME PORT PORT_VAR CMD...: start CMD detached (own session), record its pid.
spawn() {
  local name=$1 port=$2 port_var=$3
  shift 3
  if port_open "$port"; then
    die "127.0.0.1:$port is already in use by a process this script did not start; free it or set $port_var"
  fi
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  (cd "$logdir" && exec "${launcher[@]}" "$@" </dev/null >>"$logdir/$name.log" 2>&1) &
  echo $! >"$state/$name.pid"
  log "started $name (pid $!) on 127.0.0.1:$port, log $logdir/$name.log"
}

# await NAME PATTERN URL: wait for URL to answer while the process stays alive.
await() {
  local name=$1 pattern=$2 url=$3 deadline=$((SECONDS + timeout_s))
  until "$py" "$here/stores.py" wait "$url" 1; do
    our_pid "$name" "$pattern" >/dev/null || show_log_and_die "$name" "$name exited before answering on $url"
    ((SECONDS < deadline)) || show_log_and_die "$name" "$name did not answer on $url within ${timeout_s}s"
  done
}

started=()
# On any failure from here on, stop what this run started (servers found running are left alone).
on_exit() {
  local rc=$?
  if ((rc != 0 && ${#started[@]} > 0)); then
    log "stopping what this run started: ${started[*]}"
    bash "$here/stop.sh" "${started[@]}" >&2 || true
  fi
  exit "$rc"
}
trap on_exit EXIT
if pid="$(our_pid moto moto_server)"; then
  log "moto already running (pid $pid)"
else
  spawn moto "$s3_port" OTEL_DELTA_S3_PORT "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port"
  started+=(moto)
fi
if pid="$(our_pid azurite azurite-blob)"; then
  log "azurite already running (pid $pid)"
else
  # --disableTelemetry: Azurite 3.3x sends usage telemetry by default (no network here anyway).
  # --inMemoryPersistence: nothing written to disk, state gone at stop (2 GiB extent cap).
  spawn azurite "$az_port" OTEL_DELTA_AZURITE_PORT "$azdir/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$az_port" \
    --skipApiVersionCheck --loose --inMemoryPersistence --extentMemoryLimit 2048 \
    --disableTelemetry --disableProductStyleUrl
  started+=(azurite)
fi

await moto moto_server "http://127.0.0.1:$s3_port/moto-api/"
await azurite azurite-blob "http://127.0.0.1:$az_port/"

# ------------------------------------------------------------------------------ setup and env.sh
env_lines=(
  "AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port"
  "AWS_ACCESS_KEY_ID=test"
  "AWS_SECRET_ACCESS_KEY=test"
  "AWS_REGION=us-east-1"
  "AWS_ALLOW_HTTP=true"
  "AWS_CONDITIONAL_PUT=etag"
  "AWS_EC2_METADATA_DISABLED=true"
  "AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1"
  "AZURE_STORAGE_ACCOUNT_KEY=$az_key"
  "AZURE_STORAGE_USE_EMULATOR=true"
  "AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$az_port"
  "OTEL_DELTA_TEST_S3=s3://$bucket"
  "OTEL_DELTA_TEST_AZURE=az://$bucket"
)
for kv in "${env_lines[@]}"; do export "${kv?}"; done

"$py" "$here/stores.py" setup >&2
if [[ ${OTEL_DELTA_STORES_VERIFY:-0} == 1 ]]; then
  "$py" "$here/stores.py" verify >&2
fi

{
  echo "# Written by tests/stores/start.sh; source it before running the store tests."
  for kv in "${env_lines[@]}"; do printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"; done
} >"$here/env.sh"
trap - EXIT
log "ready in $((SECONDS - t0)) s; environment (also in $here/env.sh):"
printf '%s\n' "${env_lines[@]}"
