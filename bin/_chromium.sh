# Sourced by bin/test and .ci/run: the browser tests drive Debian's Chromium
# (/usr/bin/chromium). Install the package when it is absent and we may (root, apt);
# Playwright itself never downloads a browser. Without it the browser tests skip
# (and fail in CI, where CRM_REQUIRE_SERVICES is set).
CHROMIUM="${CRM_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "==> installing Chromium for the browser tests (apt-get install chromium)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
      || echo "could not install chromium: the browser tests will skip" >&2
  fi
fi
