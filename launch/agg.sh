#!/usr/bin/env bash
# kvgate, aggregated: the OpenAI frontend on :8000 in front of one worker (one engine).
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>.
# Every command is printed before it starts; Ctrl-C (or either process exiting) stops both.
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

WORKER_PORT=${WORKER_PORT:-9100}    # the worker's request plane (WebSocket)

ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--tp 1 --trust-remote-code)

run "${KV[@]}" worker --engine "$ENGINE" --port "$WORKER_PORT" -- "${ENGINE_ARGS[@]}"
run "${KV[@]}" serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --worker-urls "ws://127.0.0.1:$WORKER_PORT"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL" >&2
wait -n
