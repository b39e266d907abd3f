#!/usr/bin/env bash
# The web UI's vendored files (crates/causeway-ui/assets/vendor): with --check, verifies the
# committed files against the sha256 sums in VENDORED.md (no network; .ci/run does this); without,
# fetches uPlot from the npm registry, checks the tarball's sha512, and copies its files in.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=crates/causeway-ui/assets/vendor
version=1.6.32
tarball_sha512=2883159c6ebccefbb95d751b0b82d010f9e1c0ec41b8bc96d401eda66e882935c89a46cb824332fa369b8cb8122cc6ac36e186cd09bf7a9ded3a4c93c6989023

check() {
  # The sums are the lines of VENDORED.md's code block: "<sha256>  <file>".
  (cd "$vendor" && grep -E '^[0-9a-f]{64}  ' VENDORED.md | sha256sum --check --strict --quiet) \
    || { echo "error: $vendor differs from the sums in VENDORED.md; run scripts/vendor-ui.sh" >&2; exit 1; }
  echo "vendored UI files match VENDORED.md" >&2
}

if [ "${1:-}" = "--check" ]; then
  check
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "uplot@$version" --silent >/dev/null)
echo "$tarball_sha512  $work/uplot-$version.tgz" | sha512sum --check --strict --quiet \
  || { echo "error: the uplot@$version tarball's sha512 is not the pinned one" >&2; exit 1; }
tar -xzf "$work/uplot-$version.tgz" -C "$work"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$vendor/"
cp "$work/package/LICENSE" "$vendor/LICENSE-uPlot"
(cd "$vendor" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE-uPlot)
check
