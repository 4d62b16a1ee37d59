#!/usr/bin/env bash
# Debian packages for the browser end-to-end test: Chromium (driven by Playwright through
# executable_path, never `playwright install`), a Japanese font for the page, Node for the worklet
# unit tests. Needs root (CI runs as root); without root it says what to install and goes on.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
grep -qi "Noto Sans CJK" <(fc-list 2>/dev/null || true) || need+=(fonts-noto-cjk)
command -v node >/dev/null 2>&1 || need+=(nodejs)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "browser test prerequisites missing (${need[*]}): sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
echo "installing ${need[*]} (Debian) ..."
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null; }; then
  echo "could not install ${need[*]}: the browser test will say it is skipped" >&2
fi
