"""Fixtures for the offline infrastructure checks (terraform, checkov, code/infra contract)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts import tfenv

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="session")
def tf_env() -> dict[str, str]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed (the infra checks need Terraform 1.9+)")
    if tfenv.find_mirror() is None:
        pytest.skip("no local provider mirror found for hashicorp/aws (tfenv.find_mirror); init would need the network")
    return tfenv.terraform_env(data_dir=ROOT / ".local" / "tf-infra")


@pytest.fixture(scope="session")
def tf_initialized(tf_env: dict[str, str]) -> dict[str, str]:
    proc = tfenv.terraform(["init", "-backend=false", "-input=false", "-no-color"], TERRAFORM_DIR, tf_env,
                           check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tf_env
