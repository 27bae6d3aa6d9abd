#!/usr/bin/env bash
# What a user of the npm package gets: `npm pack`, then in an empty directory
# `npm install <tarball> --omit=dev` (no TypeScript, no @types: the tarball ships dist/ and
# its install script builds only the native addon), `npx kvgate --help`, and a real
# `kvgate serve` answering one chat completion. Prints the installed size. Used by .ci/run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d /tmp/kvgate-pack.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cd "$root"
tarball="$(npm pack --silent --pack-destination "$tmp" | tail -1)"
echo "packed $tarball ($(du -h "$tmp/$tarball" | cut -f1))"
mkdir "$tmp/app" && cd "$tmp/app"
echo '{ "name": "app", "private": true }' > package.json
npm install "../$tarball" --omit=dev --no-audit --no-fund --loglevel=error
echo "installed: $(du -sh node_modules | cut -f1) in node_modules"
# No compiler at install time (@types/node may still arrive as protobufjs's own dependency).
[ ! -e node_modules/typescript ] && [ ! -e node_modules/tsx ] || { echo 'a devDependency was installed'; exit 1; }
npx --no-install kvgate --help | grep -q '^usage: kvgate <command>'
npx --no-install kvgate --version

# The bin itself, not through npx (npx does not pass SIGTERM on).
node_modules/.bin/kvgate serve --port 0 --workers 1 >serve.out 2>serve.err &
pid=$!
for _ in $(seq 1 600); do grep -q 'listening on' serve.out 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
url="$(sed -n 's/^kvgate serve: listening on \(http:[^ ]*\).*/\1/p' serve.out)"
[ -n "$url" ] || { echo 'kvgate serve did not start'; tail -20 serve.err; exit 1; }
curl -sf "$url/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"Qwen/Qwen3-0.6B","messages":[{"role":"user","content":"Hello!"}],"max_tokens":8}' | grep -q '"finish_reason"'
kill -TERM "$pid"
status=0; wait "$pid" || status=$?; pid=""
[ "$status" -eq 0 ] || { echo "kvgate serve exited with $status on SIGTERM"; exit 1; }
echo 'the installed package serves'
