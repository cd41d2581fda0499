# Sourced by bin/test and .ci/run: the mailbox polling tests start a private Dovecot
# (IMAP and POP3) of their own on loopback (tests/dovecot.py). Install Debian's
# dovecot-imapd and dovecot-pop3d when absent and we may (root, apt), without letting
# the system's dovecot service start and take ports 110/143/993/995 (policy-rc.d says
# no to every service start during the install; the unit is then disabled). Without
# them the polling tests skip (and fail in CI, where CRM_REQUIRE_SERVICES is set).
DOVECOT="${CRM_DOVECOT:-/usr/sbin/dovecot}"
_dovecot_install() {
  local policy=/usr/sbin/policy-rc.d had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd dovecot-pop3d \
    >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd dovecot-pop3d \
      >/dev/null 2>&1
  }
  local rc=$?
  [ "$had_policy" = 0 ] && rm -f "$policy"
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
  fi
  return $rc
}
if [ ! -x "$DOVECOT" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "==> installing Dovecot for the mailbox polling tests (apt-get install dovecot-imapd dovecot-pop3d)"
  _dovecot_install || echo "could not install dovecot: the mailbox polling tests will skip" >&2
fi
unset -f _dovecot_install
