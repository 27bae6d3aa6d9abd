#!/usr/bin/env bash
# kvgate, aggregated: the OpenAI frontend on :8000 in front of one worker (one engine).
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>.
# Every command is printed before it starts; Ctrl-C (or either process exiting) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-mocker}            # mocker | sglang
MODEL=${MODEL:-Qwen/Qwen3-0.6B}
HTTP_PORT=${HTTP_PORT:-8000}
ENGINE_WAIT=${ENGINE_WAIT:-900}     # seconds the frontend waits for a first worker (model loading)
WORKER_PORT=${WORKER_PORT:-9100}    # the worker's request plane (WebSocket)
if [ -z "${KVGATE:-}" ]; then
  [ -f dist/cli/main.js ] || { echo "kvgate is not built: run 'npm run build' first" >&2; exit 1; }
  KVGATE="node bin/kvgate.js"
fi

# Stop what this script started (the workers drain and stop their engines on SIGTERM).
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
run() { echo "+ $*" >&2; "$@" & }

ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--tp 1 --trust-remote-code)

run $KVGATE worker --engine "$ENGINE" --port "$WORKER_PORT" -- "${ENGINE_ARGS[@]}"
run $KVGATE serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --worker-urls "ws://127.0.0.1:$WORKER_PORT"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL" >&2
wait -n
