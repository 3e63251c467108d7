#!/usr/bin/env bash
# Install everything Form Station needs on a Debian machine, as root. Idempotent: a second run
# installs nothing new. Usage: scripts/setup.sh [--test]   (--test adds chromium and postgresql)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(tesseract-ocr tesseract-ocr-chi-sim poppler-utils fonts-wqy-zenhei fonts-arphic-ukai)
if [[ "${1:-}" == "--test" ]]; then
  APT_PKGS+=(chromium postgresql)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/formstation --help >/dev/null && echo formstation OK))"
