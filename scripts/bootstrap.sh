#!/usr/bin/env bash
# Prepare a fresh machine: OpenSSH server and rsync (the local cloud's nodes), and a
# project virtualenv with pinned dependencies. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need_apt[*]}; install them (Debian/Ubuntu: sudo apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies (pinned by constraints.txt)"
  if ! .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[airflow,dev]" \
      > .venv/pip-install.log 2>&1; then
    grep -v "WARNING: Location" .venv/pip-install.log | tail -30 >&2
    echo "bootstrap: pip install failed (full log: .venv/pip-install.log)" >&2
    exit 1
  fi
  .venv/bin/python -c "import airflow_provider_sky, airflow.sdk, paramiko" >/dev/null
  rm -f .venv/.installed-*
  touch "$stamp"
fi
