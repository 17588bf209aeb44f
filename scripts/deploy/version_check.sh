#!/usr/bin/env bash
# make version-check: Python >= 3.11 and Terraform >= 1.11, checked before any of our Python runs
# (macOS ships Python 3.9; Homebrew's own `terraform` formula stays at 1.5.7).
# Usage: scripts/deploy/version_check.sh [python interpreter]   (exit 1 on a failure)
python=${1:-python3}
status=0

py=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
IFS=. read -r pmaj pmin _ <<<"${py:-0.0.0}"
if [ -z "$py" ]; then
  echo "version-check: FAILED: no Python at '$python'; need Python >= 3.11"
  echo "  fix: install Python 3.11+ (macOS: brew install python@3.12) and run make with PYTHON=python3.12"
  status=1
elif [ "$pmaj" -lt 3 ] || { [ "$pmaj" -eq 3 ] && [ "$pmin" -lt 11 ]; }; then
  echo "version-check: FAILED: $python is Python $py; need Python >= 3.11"
  echo "  fix: macOS ships 3.9: brew install python@3.12, then rm -rf .venv and run make with PYTHON=python3.12"
  status=1
else
  echo "version-check: Python $py ok"
fi

tf=$(terraform version 2>/dev/null | sed -n '1s/^Terraform v\([0-9][0-9.]*\).*/\1/p')
IFS=. read -r tmaj tmin _ <<<"${tf:-0.0.0}"
fix_tf="  fix: macOS: brew install hashicorp/tap/terraform (Homebrew's own 'terraform' formula stays at 1.5.7); elsewhere https://developer.hashicorp.com/terraform/install"
if [ -z "$tf" ]; then
  echo "version-check: FAILED: terraform not found on PATH; need Terraform >= 1.11"
  echo "$fix_tf"
  status=1
elif [ "$tmaj" -lt 1 ] || { [ "$tmaj" -eq 1 ] && [ "$tmin" -lt 11 ]; }; then
  echo "version-check: FAILED: Terraform $tf; need >= 1.11 (write-only attributes; S3 state locking)"
  echo "$fix_tf"
  status=1
else
  echo "version-check: Terraform $tf ok"
fi
exit $status
