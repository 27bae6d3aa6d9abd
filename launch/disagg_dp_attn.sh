#!/usr/bin/env bash
# kvgate, disaggregated with DP attention (the seed's 4-GPU layout): one prefill worker and one
# decode worker, each an engine with --tp 2 --dp-size 2 --enable-dp-attention (prefill on GPUs
# 0,1, decode on 2,3), behind the OpenAI frontend on :8000. Each engine has two DP ranks: the
# frontend routes prefill by KV cache per (worker, rank), on each rank's own KV events.
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>.
# Every command is printed before it starts; Ctrl-C (or any process exiting) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-mocker}              # mocker | sglang
MODEL=${MODEL:-Qwen/Qwen3-0.6B}
HTTP_PORT=${HTTP_PORT:-8000}
ENGINE_WAIT=${ENGINE_WAIT:-900}       # seconds the frontend waits for a first worker (model loading)
PREFILL_PORT=${PREFILL_PORT:-9100}    # request planes (WebSocket) of the two workers
DECODE_PORT=${DECODE_PORT:-9101}
PREFILL_GPUS=${PREFILL_GPUS:-0,1}
DECODE_GPUS=${DECODE_GPUS:-2,3}
TRANSFER_BACKEND=${TRANSFER_BACKEND:-nixl}   # SGLang's KV transfer: nixl | mooncake
if [ -z "${KVGATE:-}" ]; then
  [ -f dist/cli/main.js ] || { echo "kvgate is not built: run 'npm run build' first" >&2; exit 1; }
  KVGATE="node bin/kvgate.js"
fi

# Stop what this script started (the workers drain and stop their engines on SIGTERM).
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
run() { echo "+ $*" >&2; "$@" & }

ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16 --tp 2 --dp-size 2 --enable-dp-attention)
if [ "$ENGINE" = sglang ]; then
  ENGINE_ARGS+=(--trust-remote-code --disaggregation-transfer-backend "$TRANSFER_BACKEND")
  PREFILL_ENV=(env CUDA_VISIBLE_DEVICES="$PREFILL_GPUS")
  DECODE_ENV=(env CUDA_VISIBLE_DEVICES="$DECODE_GPUS")
else
  PREFILL_ENV=()
  DECODE_ENV=()
fi

run "${PREFILL_ENV[@]}" $KVGATE worker --role prefill --engine "$ENGINE" --port "$PREFILL_PORT" -- "${ENGINE_ARGS[@]}"
run "${DECODE_ENV[@]}" $KVGATE worker --role decode --engine "$ENGINE" --port "$DECODE_PORT" -- "${ENGINE_ARGS[@]}"
run $KVGATE serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --worker-urls "ws://127.0.0.1:$PREFILL_PORT,ws://127.0.0.1:$DECODE_PORT"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL  (1 prefill + 1 decode worker, tp 2 x dp 2 each)" >&2
wait -n
