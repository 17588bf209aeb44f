"""Run Terraform offline: find the local provider mirror and write a CLI config under .local/.

The inherited TF_CLI_CONFIG_FILE may name a file that does not exist; we never rely on it.
The mirror is discovered (a folder holding registry.terraform.io/hashicorp/aws), not hard-coded:
TF_PROVIDER_MIRROR if set, else the usual plugin folders, else a search of /opt and /usr/share.
With no mirror found, Terraform is left to use the network as usual.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PROVIDER = os.path.join("registry.terraform.io", "hashicorp", "aws")


def find_mirror() -> str | None:
    candidates = [os.environ.get("TF_PROVIDER_MIRROR", "")]
    candidates += [
        os.path.expanduser("~/.terraform.d/plugins"),
        os.path.expanduser("~/.local/share/terraform/plugins"),
        "/usr/local/share/terraform/plugins",
        "/usr/share/terraform/plugins",
    ]
    candidates += sorted(p[: -len(PROVIDER) - 1] for p in glob.glob(f"/opt/*/{PROVIDER}"))
    candidates += sorted(p[: -len(PROVIDER) - 1] for p in glob.glob(f"/opt/*/*/{PROVIDER}"))
    for folder in candidates:
        if folder and os.path.isdir(os.path.join(folder, PROVIDER)):
            return folder
    return None


def cli_config() -> Path | None:
    """Write .local/terraformrc pointing at the mirror; None when there is no mirror."""
    mirror = find_mirror()
    if mirror is None:
        return None
    LOCAL.mkdir(exist_ok=True)
    path = LOCAL / "terraformrc"
    text = (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n"
    )
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def terraform_env(base: dict[str, str] | None = None, data_dir: Path | None = None) -> dict[str, str]:
    """Environment for running terraform offline (and quietly)."""
    env = dict(os.environ if base is None else base)
    config = cli_config()
    if config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(config)
    elif not os.path.exists(env.get("TF_CLI_CONFIG_FILE", "")):
        env.pop("TF_CLI_CONFIG_FILE", None)
    if data_dir is not None:
        env["TF_DATA_DIR"] = str(data_dir)
    env.setdefault("TF_IN_AUTOMATION", "1")
    env.setdefault("CHECKPOINT_DISABLE", "1")
    return env


def terraform(args: list[str], chdir: Path, env: dict[str, str], check: bool = True,
              capture: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["terraform", f"-chdir={chdir}", *args], env=env, check=check,
                          capture_output=capture, text=True, timeout=timeout)
