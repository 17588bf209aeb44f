"""terraform fmt / init (offline mirror) / validate / test (mock provider), and checkov."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from scripts import tfenv

from .conftest import CHECKOV, ROOT, TERRAFORM_DIR

pytestmark = pytest.mark.infra

MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")


def test_fmt(tf_env):
    proc = tfenv.terraform(["fmt", "-check", "-recursive", "-diff", "-no-color"], TERRAFORM_DIR, tf_env, check=False)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def test_init_offline_and_validate(tf_initialized):
    proc = tfenv.terraform(["validate", "-no-color"], TERRAFORM_DIR, tf_initialized, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def fixture_zips(tmp_path):
    """Placeholder zips where terraform/tests/*.tftest.hcl point build_dir (build/ is never committed)."""
    from scripts.package.__main__ import FUNCTIONS, write_zip

    src = tmp_path / "src"
    src.mkdir()
    (src / "handler.py").write_text("def handler(event, context):\n    return None\n")
    fixtures = TERRAFORM_DIR / "tests" / "fixtures" / "build"
    write_zip(src, fixtures / "layer.zip")
    for name in FUNCTIONS:
        write_zip(src, fixtures / "functions" / f"{name}.zip")
    return fixtures


def test_terraform_test_with_mock_provider(tf_initialized, fixture_zips):
    # ~50 plans of the root with a mocked provider: minutes on 2 shared cores (600 s ran out at load 20)
    proc = tfenv.terraform(["test", "-no-color"], TERRAFORM_DIR, tf_initialized, check=False, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout, proc.stdout


THRESHOLDS_OF = "(thresholds of modules/observability)"


def plan_root_with(tf_env: dict[str, str], assignments: str) -> str:
    """Plan the ROOT module with ``assignments`` (HCL lines) in a run of its own, under the mocks of
    observability.tftest.hcl (everything before its first run), and return the output, whitespace
    collapsed. A root run cannot name a module's variable in expect_failures, and expect_failures
    does not say which message a validation gave: this shows both."""
    source = (TERRAFORM_DIR / "tests" / "observability.tftest.hcl").read_text()
    mocks = source[:source.index('\nrun "')]
    folder = TERRAFORM_DIR / "tests" / "fixtures" / "plan_failures"  # terraform test wants it under terraform/
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "bad_setting.tftest.hcl").write_text(
            mocks + f'\nrun "bad_setting_at_the_root" {{\n  command = plan\n\n  variables {{\n    {assignments}\n  }}\n}}\n')
        proc = tfenv.terraform(["test", "-no-color", "-test-directory=tests/fixtures/plan_failures"], TERRAFORM_DIR,
                               tf_env, check=False, timeout=300)
    finally:
        shutil.rmtree(folder)
    return re.sub(r"\s+", " ", proc.stdout + proc.stderr) + f" (exit {proc.returncode})"


@pytest.mark.parametrize("assignment, message", [
    ("alarm_thresholds = { period_seconds = 90 }",
     f"alarm_thresholds.period_seconds {THRESHOLDS_OF} must be a whole number of minutes"),
    ("alarm_thresholds = { tunnel_error_percent = { tunnel_bored = 5 } }",
     f"alarm_thresholds.tunnel_error_percent {THRESHOLDS_OF} keys must be x-tunnel-error codes: agent_gone,"),
    ('alarm_email = "ops at example.com"', 'alarm_email (root and modules/observability) must be an e-mail address'),
    ("lambda_concurrency_limit = 0",
     "lambda_concurrency_limit (account_concurrency_limit of modules/observability) must be at least 1"),
])
def test_bad_observability_settings_stop_the_root_plan(tf_initialized, fixture_zips, assignment, message):
    """modules/observability owns the checks of the root variables it is given unchanged: a root plan
    with one bad value fails with the module's message."""
    output = plan_root_with(tf_initialized, assignment)
    assert "(exit 0)" not in output and "0 passed, 1 failed" in output, output[-3000:]
    assert "Invalid value for variable" in output and message in output, output[-3000:]


WAF_NEEDS_CLOUDFRONT = ('waf_enabled = true needs the CloudFront edge: public_edge = "function_url" and a domain_name '
                        "(with a us-east-1 certificate). AWS WAF attaches to the CloudFront distribution")


@pytest.mark.parametrize("assignments", [
    # the http_api edge, with a domain: API Gateway's names, no distribution
    'waf_enabled = true\n    domain_name = "t.example.com"\n'
    '    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"\n    path_routing = false',
    # the function_url edge without a domain: the bare function URL, no distribution
    'waf_enabled = true\n    public_edge = "function_url"\n    forward_reserved_concurrency = 50',
], ids=["http_api_edge", "function_url_without_domain"])
def test_waf_without_cloudfront_is_refused_at_plan_with_a_readable_message(tf_initialized, fixture_zips, assignments):
    """issue 29 item 4: waf_enabled where no CloudFront distribution exists stops the plan and says
    why (WAF attaches to CloudFront, not to HTTP or WebSocket APIs), rather than creating an ACL
    that guards nothing."""
    output = plan_root_with(tf_initialized, assignments)
    assert "(exit 0)" not in output and "0 passed, 1 failed" in output, output[-3000:]
    assert "Invalid value for variable" in output and WAF_NEEDS_CLOUDFRONT in output, output[-3000:]
    assert "it cannot attach to the HTTP API" in output, output[-3000:]


def test_root_creates_the_waf_acl_through_us_east_1():
    """A CLOUDFRONT-scope ACL exists only in us-east-1: the root hands modules/waf a provider whose
    region is that literal, whatever aws_region is (a mocked provider in terraform test cannot show
    which region the real one is configured for; modules/waf's precondition refuses any other)."""
    text = (TERRAFORM_DIR / "waf.tf").read_text()
    providers = re.findall(r'^provider "aws" \{\n(.*?)^\}', text, re.M | re.S)
    assert any(re.search(r'^\s*alias\s*=\s*"us_east_1"$', p, re.M) and re.search(r'^\s*region\s*=\s*"us-east-1"$', p, re.M)
               for p in providers), "waf.tf: no provider aws.us_east_1 with region = \"us-east-1\""
    module = re.search(r'^module "waf" \{\n(.*?)^\}', text, re.M | re.S)
    assert module and re.search(r"providers\s*=\s*\{\s*aws\s*=\s*aws\.us_east_1\s*\}", module.group(1)), \
        "module \"waf\" must get providers = { aws = aws.us_east_1 }"


def test_modules_follow_the_layout():
    modules = sorted(p for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
    assert modules, "no modules"
    for module in modules:
        missing = [f for f in MODULE_FILES if not (module / f).is_file()]
        assert not missing, f"{module.name} lacks {missing}"
        text = "\n".join(p.read_text() for p in module.glob("*.tf"))
        assert not re.search(r'^\s*provider\s+"', text, re.M), f"{module.name} configures a provider"
        assert "archive_file" not in text, f"{module.name} uses archive_file (zips come from build/)"


def test_every_variable_and_output_is_described():
    for path in TERRAFORM_DIR.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        text = path.read_text()
        for kind, name, body in re.findall(r'^(variable|output) "([^"]+)" \{\n(.*?)^\}', text, re.M | re.S):
            assert "description" in body, f"{path.relative_to(ROOT)}: {kind} {name} has no description"
            if kind == "variable":
                assert re.search(r"^\s*type\s*=", body, re.M), f"{path.relative_to(ROOT)}: variable {name} has no type"


def test_every_checkov_skip_has_a_reason():
    skips = []
    for path in TERRAFORM_DIR.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                skips.append((path, line.strip()))
                assert re.fullmatch(r"#checkov:skip=CKV2?_AWS_\d+:\S.{10,}", line.strip()), \
                    f"{path.relative_to(ROOT)}: skip without a one-line reason: {line.strip()}"
    assert skips, "expected the documented skips (a parse error would hide them)"


def test_checkov_passes():
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: run `make .venv-checkov/.installed` (make test does)")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM_DIR), "--framework", "terraform", "--skip-download",
         "--compact", "--quiet", "--skip-path", "tests/fixtures"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"checkov failures:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"
    assert "Failed checks: 0" in proc.stdout or proc.stdout.strip() == "", proc.stdout[-4000:]
