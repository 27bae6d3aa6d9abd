#!/usr/bin/env bash
# kvgate with KV-aware routing: the OpenAI frontend on :8000 routes on the exact KV events
# of two workers (one engine each; with SGLang, one GPU each).
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>.
# Every command is printed before it starts; Ctrl-C (or any process exiting) stops all.
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

read -r -a WORKER_PORTS <<< "${WORKER_PORTS:-9101 9102}"

ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--tp 1 --trust-remote-code)

URLS=()
for i in "${!WORKER_PORTS[@]}"; do
  port=${WORKER_PORTS[$i]}
  # SGLang engines get one GPU each; the mocker ignores it.
  run env CUDA_VISIBLE_DEVICES="$i" "${KV[@]}" worker --engine "$ENGINE" --port "$port" -- "${ENGINE_ARGS[@]}"
  URLS+=("ws://127.0.0.1:$port")
done
run "${KV[@]}" serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --router-mode kv --worker-urls "$(IFS=,; echo "${URLS[*]}")"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL  workers: ${URLS[*]}" >&2
wait -n
