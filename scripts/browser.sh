#!/usr/bin/env bash
# Makes sure a headless Chromium is installed and works, and prints its path on the last line
# (everything else goes to stderr). Safe to run repeatedly; installs with apt only when missing.
#   scripts/browser.sh
set -euo pipefail
# Test binaries run in parallel and may all ask at once: one of them installs, the others wait.
exec 9>/tmp/causeway-browser.lock
flock 9
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  echo "installing chromium with apt-get" >&2
  $sudo apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium fonts-liberation >&2
fi
chromium="$(command -v chromium)" || {
  echo "scripts/browser.sh: chromium is still not on PATH after apt-get install" >&2
  exit 1
}
# Captured rather than piped into grep -q, so an early grep exit cannot fail the pipeline.
dom="$(timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>ok</p>' 2>/dev/null || true)"
if [[ "$dom" != *'<p>ok</p>'* ]]; then
  echo "scripts/browser.sh: $chromium --headless --dump-dom did not render a test page; got: ${dom:-nothing}" >&2
  exit 1
fi
echo "$chromium"
