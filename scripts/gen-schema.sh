#!/usr/bin/env bash
# Regenerates the TypeScript of schema/*.fbs into src/transport/generated/ (committed).
# Debian's flatc 2.0.8 writes extensionless relative imports; tsconfig uses NodeNext, which
# needs `.js` on every relative import, so they are rewritten after generation.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/src/transport/generated"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

flatc --version
flatc --ts -o "$tmp" "$root"/schema/*.fbs
find "$tmp" -name '*.ts' -print0 | xargs -0 sed -i -E "s#(from '\.{1,2}/[^']*)'#\1.js'#"
rm -rf "$out"
mkdir -p "$out"
cp -R "$tmp"/. "$out"/
echo "generated: $(find "$out" -name '*.ts' | wc -l) files in ${out#$root/}"
