# Sourced by the launch scripts: the settings they share, how they find kvgate, and `run`,
# which prints a command and starts it in the background. Everything started is stopped when
# the script exits (the workers drain and stop their engines on SIGTERM).
# shellcheck shell=bash disable=SC2034  # the settings are read by the scripts that source this
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENGINE=${ENGINE:-mocker}            # mocker | sglang
MODEL=${MODEL:-Qwen/Qwen3-0.6B}
HTTP_PORT=${HTTP_PORT:-8000}
ENGINE_WAIT=${ENGINE_WAIT:-900}     # seconds the frontend waits for a first worker (model loading)
if [ -z "${KVGATE:-}" ]; then
  [ -f dist/cli/main.js ] || { echo "kvgate is not built: run 'npm run build' first" >&2; exit 1; }
  KVGATE="node bin/kvgate.js"
fi
read -r -a KV <<< "$KVGATE"   # a command with its arguments

trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
run() { echo "+ $*" >&2; "$@" & }

# A prefill and a decode worker (request-plane ports $1 and $2, CUDA_VISIBLE_DEVICES $3 and $4,
# engine arguments after them) and the frontend in front of both; URLS holds their addresses.
run_pd() {
  local ports=("$1" "$2") gpus=("$3" "$4") roles=(prefill decode)
  shift 4
  URLS=()
  for i in 0 1; do
    run env CUDA_VISIBLE_DEVICES="${gpus[$i]}" "${KV[@]}" worker --engine "$ENGINE" --role "${roles[$i]}" --port "${ports[$i]}" -- "$@"
    URLS+=("ws://127.0.0.1:${ports[$i]}")
  done
  run "${KV[@]}" serve --port "$HTTP_PORT" --engine-wait "$ENGINE_WAIT" --worker-urls "$(IFS=,; echo "${URLS[*]}")"
}
