#!/usr/bin/env bash
# kvgate, disaggregated: the OpenAI frontend on :8000 in front of one prefill worker and one
# decode worker (one engine each; with SGLang, one GPU each). The frontend picks the prefill
# worker by KV cost, the decode worker by load, and sends both legs with one bootstrap room;
# the engines hand the KV cache over themselves (SGLang: Mooncake or NIXL).
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>
# (TRANSFER_BACKEND=nixl|mooncake, default mooncake).
# Every command is printed before it starts; Ctrl-C (or any process exiting) stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-mocker}            # mocker | sglang
MODEL=${MODEL:-Qwen/Qwen3-0.6B}
HTTP_PORT=${HTTP_PORT:-8000}
ENGINE_WAIT=${ENGINE_WAIT:-900}     # seconds the frontend waits for a first worker (model loading)
WORKER_PORTS=(${WORKER_PORTS:-9111 9112})   # request planes of the prefill and the decode worker
TRANSFER_BACKEND=${TRANSFER_BACKEND:-mooncake}
if [ -z "${KVGATE:-}" ]; then
  [ -f dist/cli/main.js ] || { echo "kvgate is not built: run 'npm run build' first" >&2; exit 1; }
  KVGATE="node bin/kvgate.js"
fi

# Stop what this script started (the workers drain and stop their engines on SIGTERM).
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
run() { echo "+ $*" >&2; "$@" & }

# kvgate worker --role sets --disaggregation-mode and, for prefill, a free bootstrap port.
ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--tp 1 --trust-remote-code --disaggregation-transfer-backend "$TRANSFER_BACKEND")

ROLES=(prefill decode)
URLS=()
for i in 0 1; do
  port=${WORKER_PORTS[$i]}
  run env CUDA_VISIBLE_DEVICES="$i" $KVGATE worker --engine "$ENGINE" --role "${ROLES[$i]}" --port "$port" -- "${ENGINE_ARGS[@]}"
  URLS+=("ws://127.0.0.1:$port")
done
run $KVGATE serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --worker-urls "$(IFS=,; echo "${URLS[*]}")"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL  prefill: ${URLS[0]}  decode: ${URLS[1]}" >&2
wait -n
