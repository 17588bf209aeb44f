#!/usr/bin/env bash
# make version-check: Python >= 3.11 and Terraform >= 1.11, checked before any of our Python runs
# (macOS ships Python 3.9; Homebrew's own `terraform` formula stays at 1.5.7).
# Usage: scripts/deploy/version_check.sh [python interpreter]   (exit 1 on a failure)
python=${1:-python3}
status=0

# check NAME VERSION MIN_MAJOR MIN_MINOR MISSING FIX: one line, ok or FAILED with its fix
check() {
  local name=$1 version=$2 want_major=$3 want_minor=$4 missing=$5 fix=$6 major minor
  if [ -z "$version" ]; then
    echo "version-check: FAILED: $missing; need $name >= $want_major.$want_minor"
    echo "  fix: $fix"
    status=1
    return
  fi
  IFS=. read -r major minor _ <<<"$version"
  if [ "${major:-0}" -lt "$want_major" ] || { [ "${major:-0}" -eq "$want_major" ] && [ "${minor:-0}" -lt "$want_minor" ]; }; then
    echo "version-check: FAILED: $name $version; need $name >= $want_major.$want_minor"
    echo "  fix: $fix"
    status=1
  else
    echo "version-check: $name $version ok"
  fi
}

py=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
check Python "$py" 3 11 "no Python at '$python'" \
  "macOS ships 3.9: brew install python@3.12, then rm -rf .venv and run make with PYTHON=python3.12"

tf=$(terraform version 2>/dev/null | sed -n '1s/^Terraform v\([0-9][0-9.]*\).*/\1/p')
check Terraform "$tf" 1 11 "terraform not found on PATH" \
  "macOS: brew install hashicorp/tap/terraform (Homebrew's own 'terraform' formula stays at 1.5.7); elsewhere https://developer.hashicorp.com/terraform/install"
exit $status
