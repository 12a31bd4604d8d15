#!/usr/bin/env bash
# `make docker-smoke`: build the image and run the compose demo for real, then check an answer.
#
# No registry image can be pulled here, so this starts a private dockerd (vfs storage, host
# networking), bootstraps a Debian base image with debootstrap, builds the project image on it, runs
# `docker-compose up` with the host-network override, uploads a score PDF that is not in the demo
# library, identifies a recording of it, and checks that the right piece comes back. Everything it
# started is stopped and removed on exit, also when a step fails.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SHEETID_DOCKER_CACHE:-/var/tmp/sheetid-docker}  # debootstrap rootfs + docker data-root, reused
PROBE_PIECE=${SHEETID_SMOKE_PIECE:-bach/bwv10.7}  # a test-chorales piece: not in the demo library
PORT=8000
API_KEY=smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
RUN=$(mktemp -d /tmp/sheetid-smoke.XXXXXX)
export DOCKER_HOST=unix://$RUN/docker.sock
export COMPOSE_HTTP_TIMEOUT=900  # vfs copies the whole image for each new container: minutes, not seconds
COMPOSE=(docker-compose -p sheetid-smoke -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.hostnet.yml")
START=$(date +%s)
DOCKERD_PID=""

log() { echo "[docker-smoke +$(($(date +%s) - START))s] $*"; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$DOCKERD_PID" ]; then
        [ $rc -ne 0 ] && "${COMPOSE[@]}" logs --tail 40 2>/dev/null
        SHEETID_API_KEY=$API_KEY "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
        # vfs stores every layer as a full copy: drop superseded images so repeated runs do not fill the disk
        docker image prune -f >/dev/null 2>&1
        kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
        # dockerd leaves its default network namespace mounted under the exec root
        for ns in "$RUN"/exec/netns/*; do umount "$ns" 2>/dev/null; done
        [ $rc -ne 0 ] && tail -20 "$RUN/dockerd.log"
    fi
    rm -rf "$RUN" "$ROOT/.docker/wheels/"*.whl
    log "$([ $rc -eq 0 ] && echo PASSED || echo "FAILED (exit $rc)")"
    exit $rc
}
trap cleanup EXIT INT TERM

need_root() { [ "$(id -u)" = 0 ] || { echo "docker-smoke runs dockerd and debootstrap: run it as root" >&2; exit 2; }; }
need_root
missing=$(for p in docker.io docker-compose debootstrap curl; do dpkg -s $p >/dev/null 2>&1 || echo $p; done)
if [ -n "$missing" ]; then
    log "installing $missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
    echo "port $PORT is already in use: stop the server there first" >&2
    exit 2
fi

log "starting a private dockerd"
mkdir -p "$CACHE/docker-root"
dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
    --data-root "$CACHE/docker-root" --exec-root "$RUN/exec" -H "$DOCKER_HOST" \
    --pidfile "$RUN/docker.pid" >"$RUN/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null

if ! docker image inspect local/base >/dev/null 2>&1; then
    if [ ! -x "$CACHE/rootfs/usr/bin/python3" ]; then
        # the machine's own apt mirror (deb822 sources, else a classic sources.list line)
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print ($2 ~ /^\[/ ? $3 : $2); exit}' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
        [ -n "$mirror" ] || { log "no apt mirror configured on this machine: debootstrap needs one"; exit 1; }
        log "debootstrap bookworm from $mirror"
        rm -rf "$CACHE/rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$CACHE/rootfs" "$mirror" >"$RUN/debootstrap.log"
    fi
    # the machine's CA bundle and a pip.conf naming it, so pip and apt in the build reach what the host does
    cp /etc/ssl/certs/ca-certificates.crt "$CACHE/rootfs/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$CACHE/rootfs/etc/pip.conf"
    log "importing local/base"
    tar -C "$CACHE/rootfs" -c . | docker import - local/base >/dev/null
fi

# The CPU torch wheel this machine has on disk (PyTorch's own index is not reachable from here).
mkdir -p "$ROOT/.docker/wheels"
cp /opt/wheels/torch-2.13.0+cpu-*.whl "$ROOT/.docker/wheels/" 2>/dev/null || log "no local torch wheel: using TORCH_INDEX"
log "building the image"
build_start=$(date +%s)
docker build --network host --build-arg BASE=local/base --build-arg TORCH_INDEX= -t sheetid:latest "$ROOT" \
    >"$RUN/build.log" 2>&1 || { tail -40 "$RUN/build.log"; exit 1; }
log "image built in $(($(date +%s) - build_start)) s; size $(docker image inspect sheetid:latest --format '{{.Size}}' \
    | awk '{printf "%.0f MB", $1 / 1e6}')"

log "docker-compose up (host network)"
SHEETID_API_KEY=$API_KEY "${COMPOSE[@]}" up -d
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 2; done
curl -fsS "http://127.0.0.1:$PORT/readyz"
echo
log "ready; the demo library holds $(curl -fsS "http://127.0.0.1:$PORT/pieces" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') pieces"

log "engraving and synthesizing $PROBE_PIECE with the project's pipeline"
"${COMPOSE[@]}" exec -T api sheetid data build --only "$PROBE_PIECE" --out /tmp/probe --workers 1 >/dev/null
key=${PROBE_PIECE//\//__}  # the data engine's file key (model/data/dataset.py piece_key)
"${COMPOSE[@]}" exec -T api cat "/tmp/probe/pdf/$key.pdf" >"$RUN/probe.pdf"
"${COMPOSE[@]}" exec -T api cat "/tmp/probe/audio/$key.flac" >"$RUN/probe.flac"

log "POST /pieces with the API key"
job=$(curl -fsS -H "X-API-Key: $API_KEY" -F "file=@$RUN/probe.pdf;type=application/pdf" -F "title=smoke probe" \
    "http://127.0.0.1:$PORT/pieces")
job_id=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 120); do
    state=$(curl -fsS "http://127.0.0.1:$PORT/jobs/$job_id")
    echo "$state" | grep -q '"status":"\(done\|failed\)"' && break
    sleep 1
done
echo "$state"
piece_id=$(echo "$state" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["status"]=="done", j; print(j["piece_id"])')

log "POST /identify with the recording"
answer=$(curl -fsS -F "file=@$RUN/probe.flac;type=audio/flac" "http://127.0.0.1:$PORT/identify")
echo "$answer" | python3 -c '
import json, sys
answer, expected = json.load(sys.stdin), int(sys.argv[1])
top = answer["pieces"][0]
print("top:", top["title"], "id", top["id"], "votes", top["votes"], "score", top["score"],
      "| confidence", answer["confidence"], "no_match", answer["no_match"])
assert top["id"] == expected, f"expected piece {expected} first"
' "$piece_id"
log "docker build + compose demo + identify check: all passed"
