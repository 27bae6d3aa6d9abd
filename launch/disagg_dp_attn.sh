#!/usr/bin/env bash
# kvgate, disaggregated with DP attention (the seed's 4-GPU layout): the OpenAI frontend on :8000
# in front of one prefill worker and one decode worker, each an engine with --tp 2 --dp-size 2
# --enable-dp-attention (with SGLang: prefill on GPUs 0,1, decode on 2,3). Each engine has two
# DP ranks: the frontend routes the prefill leg by KV cost per (worker, rank), on each rank's
# own KV events, names the rank on the leg (routed_dp_rank) and tells decode where the KV is
# (disagg_prefill_dp_rank); the decode leg goes to the least loaded (worker, rank).
# Runs on kvgate's mocker by default (it accepts --tp and --enable-dp-attention and runs two
# ranks); on SGLang with ENGINE=sglang MODEL=<hub id or path> (TRANSFER_BACKEND=nixl|mooncake,
# default mooncake).
# Every command is printed before it starts; Ctrl-C (or any process exiting) stops all.
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

read -r -a PORTS <<< "${WORKER_PORTS:-9111 9112}"   # request planes of the prefill and the decode worker
read -r -a GPUS <<< "${GPUS:-0,1 2,3}"               # CUDA_VISIBLE_DEVICES of the prefill and the decode engine
TRANSFER_BACKEND=${TRANSFER_BACKEND:-mooncake}

# kvgate worker --role sets --disaggregation-mode and, for prefill, a free bootstrap port; it
# subscribes to one KV-event stream per DP rank (port base + rank).
ENGINE_ARGS=(--model-path "$MODEL" --served-model-name "$MODEL" --page-size 16 --tp 2 --dp-size 2 --enable-dp-attention)
[ "$ENGINE" = sglang ] && ENGINE_ARGS+=(--trust-remote-code --disaggregation-transfer-backend "$TRANSFER_BACKEND")

run_pd "${PORTS[@]}" "${GPUS[@]}" "${ENGINE_ARGS[@]}"

echo "frontend: http://127.0.0.1:$HTTP_PORT/v1  model: $MODEL  prefill: ${URLS[0]}  decode: ${URLS[1]}  (tp 2, dp 2 each)" >&2
wait -n
