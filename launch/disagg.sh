#!/usr/bin/env bash
# kvgate, disaggregated: the OpenAI frontend on :8000 in front of one prefill worker and one
# decode worker (one engine each; with SGLang, one GPU each). The frontend picks the prefill
# worker by KV cost, the decode worker by load, and sends both legs with one bootstrap room;
# the engines hand the KV cache over themselves (SGLang: Mooncake or NIXL).
# Runs on kvgate's mocker by default; on SGLang with ENGINE=sglang MODEL=<hub id or path>
# (TRANSFER_BACKEND=nixl|mooncake, default mooncake).
# Every command is printed before it starts; Ctrl-C (or any process exiting) stops all.
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

read -r -a WORKER_PORTS <<< "${WORKER_PORTS:-9111 9112}"   # request planes of the prefill and the decode worker
TRANSFER_BACKEND=${TRANSFER_BACKEND:-mooncake}

# kvgate worker --role sets --disaggregation-mode and, for prefill, a free bootstrap port.
ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--tp 1 --trust-remote-code --disaggregation-transfer-backend "$TRANSFER_BACKEND")

run_pd "${WORKER_PORTS[@]}" 0 1 "${ENGINE_ARGS[@]}"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL  prefill: ${URLS[0]}  decode: ${URLS[1]}" >&2
wait -n
