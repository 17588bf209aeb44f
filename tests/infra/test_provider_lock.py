"""terraform/.terraform.lock.hcl lets `terraform init` verify hashicorp/aws on every platform.

With only linux_amd64's h1: hash, init on macOS, Linux arm64 or Windows refuses the registry's
package ("doesn't match any of the checksums previously recorded", hashicorp/terraform#27135,
#29958). The registry's zip hashes (zh:) cover every platform; the h1: stays for the unpacked
offline mirror of this machine, which only h1: verifies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import tfenv

from .conftest import ROOT, TERRAFORM_DIR

pytestmark = pytest.mark.infra

FIXTURE = json.loads((ROOT / "tests" / "infra" / "fixtures" / "aws_provider_5.100.0.json").read_text())
LOCK = TERRAFORM_DIR / ".terraform.lock.hcl"


def lock_hashes(text: str, provider: str) -> tuple[str, list[str]]:
    """(version, hashes) of one provider block of a lock file."""
    block = re.search(r'provider "' + re.escape(provider) + r'" \{(.*?)\n\}', text, re.S)
    assert block, f"no block for {provider}"
    version = re.search(r'version\s*=\s*"([^"]+)"', block.group(1))
    assert version
    return version.group(1), re.findall(r'"((?:h1|zh):[^"]+)"', block.group(1))


def published_zh() -> set[str]:
    sums = FIXTURE["sha256sums"]
    zips = sums["terraform-provider-aws_5.100.0_<os>_<arch>.zip"]
    return {f"zh:{h}" for h in [*zips, sums["terraform-provider-aws_5.100.0_manifest.json"]]}


def test_fixture_agrees_with_two_public_lock_files():
    """The pinned SHA256SUMS is what two independent repositories' lock files hold for 5.100.0."""
    assert len(FIXTURE["sources"]) == 2
    assert len({s["lock_file"].split("/")[3] for s in FIXTURE["sources"]}) == 2, "two different owners"
    zips = FIXTURE["sha256sums"]["terraform-provider-aws_5.100.0_<os>_<arch>.zip"]
    assert len(zips) == len(set(zips)) == 14
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in zips)
    for source in FIXTURE["sources"]:
        assert {f"zh:{h}" for h in source["zh"]} == published_zh(), source["lock_file"]
        assert FIXTURE["unpacked_h1"]["linux_amd64"].removeprefix("h1:") in source["h1"], source["lock_file"]


def test_lock_holds_every_published_hash_and_the_mirror_h1():
    version, hashes = lock_hashes(LOCK.read_text(), FIXTURE["provider"])
    assert version == FIXTURE["version"]
    assert {h for h in hashes if h.startswith("zh:")} == published_zh(), (
        "terraform/.terraform.lock.hcl must hold every zh: of terraform-provider-aws_5.100.0_SHA256SUMS "
        "(init on any platform but linux_amd64 fails otherwise)")
    assert FIXTURE["unpacked_h1"]["linux_amd64"] in hashes, "the offline mirror (unpacked) verifies only by h1:"
    assert len(hashes) == len(set(hashes))


def test_offline_init_with_plugin_dir_keeps_the_lock(tmp_path: Path):
    """`terraform init -plugin-dir=<unpacked mirror>` still installs the provider, and leaves the
    committed lock as it is (no hash added or dropped)."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    mirror = tfenv.find_mirror()
    if mirror is None:
        pytest.skip("no local provider mirror found for hashicorp/aws (tfenv.find_mirror); init would need the network")
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, work, ignore=shutil.ignore_patterns(".terraform", "tests", "*.tfstate*"))
    env = tfenv.terraform_env(data_dir=tmp_path / "data")
    env["TF_CLI_CONFIG_FILE"] = str(tmp_path / "empty.tfrc")  # only -plugin-dir, not tfenv's mirror config
    (tmp_path / "empty.tfrc").write_text("")
    proc = subprocess.run(["terraform", f"-chdir={work}", "init", "-backend=false", "-input=false", "-no-color",
                           f"-plugin-dir={mirror}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / ".terraform.lock.hcl").read_text() == LOCK.read_text()
