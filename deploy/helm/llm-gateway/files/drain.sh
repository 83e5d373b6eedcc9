#!/bin/bash
# preStop hook of both gateway containers, so a pod being stopped finishes the requests it has in flight
# (LLM streams run for minutes) instead of cutting them when Envoy gets SIGTERM (Envoy exits at once on it).
#
#   drain.sh envoy   fail Envoy's readiness (/healthcheck/fail: the ops listener's /ready answers 503), start
#                    a graceful drain (/drain_listeners?graceful: HTTP/1.1 responses get "connection: close",
#                    HTTP/2 connections a GOAWAY), then wait
#   drain.sh wait    only wait (extproc: it must keep serving the requests Envoy is finishing)
#
# Waiting lasts at least DRAIN_MIN_WAIT_S (time for the pod's removal from Service endpoints to reach every
# load balancer), then until Envoy has no active downstream request, Envoy's admin is gone, or
# DRAIN_MAX_WAIT_S has passed. The kubelet sends SIGTERM when the hook returns; keep DRAIN_MAX_WAIT_S below
# the pod's terminationGracePeriodSeconds. Plain bash (/dev/tcp): the Envoy image has no curl.
set -u
mode=${1:-wait}
admin_port=${ENVOY_ADMIN_PORT:-9901}
min_wait=${DRAIN_MIN_WAIT_S:-10}
max_wait=${DRAIN_MAX_WAIT_S:-270}
stat=${DRAIN_STAT:-http.llm_gateway.downstream_rq_active}

# admin METHOD PATH: prints the raw response of one request to Envoy's admin on loopback.
admin() {
  local line response=""
  exec 3<>"/dev/tcp/127.0.0.1/${admin_port}" || return 1
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n' "$1" "$2" >&3
  while IFS= read -r -t 5 -u 3 line || [ -n "$line" ]; do
    response+="$line"$'\n'
    line=""
  done
  exec 3<&-
  printf '%s' "$response"
}

# Prints Envoy's number of active downstream requests; fails when the admin does not answer.
active() {
  local response
  response=$(admin GET "/stats?filter=downstream_rq_active") || return 1
  [[ $response =~ (^|$'\n')${stat//./\\.}:\ ([0-9]+) ]] || return 1
  printf '%s' "${BASH_REMATCH[2]}"
}

log() { printf 'drain.sh %s: %s\n' "$mode" "$*" >&2; }

if [ "$mode" = envoy ]; then
  admin POST /healthcheck/fail >/dev/null || log "admin unreachable"
  admin POST "/drain_listeners?graceful" >/dev/null || log "admin unreachable"
  log "readiness failed, listeners draining"
fi

start=$SECONDS
sleep "$min_wait"
while ((SECONDS - start < max_wait)); do
  if ! n=$(active); then
    log "Envoy admin gone"
    exit 0
  fi
  if ((n == 0)); then
    log "no request in flight after $((SECONDS - start)) s"
    exit 0
  fi
  sleep 1
done
log "still busy after ${max_wait} s; stopping anyway"
exit 0
