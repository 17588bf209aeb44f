"""The function URL edge outside Terraform: the conditioned lambda:InvokeFunction statement
`make deploy` adds after the apply (scripts/deploy/function_url.py), and what `make doctor` checks
on that edge (the statement on a deployed stack; CloudFront's us-east-1 certificate with a domain).

AddPermission is checked with botocore's Stubber against the real service model: moto 5.2.5
accepts `InvokedViaFunctionUrl` but stores it as a bare key instead of the
`{"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}` condition AWS writes
(moto/awslambda/policy.py has no formatter for it), so a moto round trip would prove nothing.
GetPolicy answers are written in AWS's shape.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.deploy import __main__ as deploy
from scripts.deploy import doctor, function_url
from scripts.deploy.settings import DeployError

from .test_doctor import REGION, aws, moto_clients, run  # noqa: F401 - aws is a fixture

pytestmark = pytest.mark.infra

FUNCTION = "http-tunnel-forward-stream"
STATEMENT = {"function_name": FUNCTION, "qualifier": None, "statement_id": "AllowInvokeViaFunctionUrl",
             "action": "lambda:InvokeFunction", "principal": "*", "invoked_via_function_url": True}
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}"
CONDITIONED = {"Sid": "AllowInvokeViaFunctionUrl", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
               "Resource": ARN, "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}}
URL_ONLY = {"Sid": "AllowPublicFunctionUrl", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
            "Resource": ARN, "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}}
OPEN = {"Sid": "AllowInvokeViaFunctionUrl", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": "lambda:InvokeFunction", "Resource": ARN}


def lambda_client() -> tuple[Any, Stubber]:
    client = botocore.session.get_session().create_client(
        "lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def deployed(stub: Stubber, statements: list[dict[str, Any]] | None) -> None:
    """GetFunctionConfiguration + GetPolicy answers: statements None = a function without a policy."""
    stub.add_response("get_function_configuration", {"FunctionName": FUNCTION}, {"FunctionName": FUNCTION})
    if statements is None:
        stub.add_client_error("get_policy", "ResourceNotFoundException", "The resource you requested does not exist.",
                              404, expected_params={"FunctionName": FUNCTION})
    else:
        policy = json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": statements})
        stub.add_response("get_policy", {"Policy": policy, "RevisionId": "r1"}, {"FunctionName": FUNCTION})


ADD = {"FunctionName": FUNCTION, "StatementId": "AllowInvokeViaFunctionUrl", "Action": "lambda:InvokeFunction",
       "Principal": "*", "InvokedViaFunctionUrl": True}


def test_the_conditioned_statement_is_added_after_the_apply():
    lam, stub = lambda_client()
    deployed(stub, [URL_ONLY])
    stub.add_response("add_permission", {"Statement": json.dumps(CONDITIONED)}, ADD)
    with stub:
        assert "added AllowInvokeViaFunctionUrl" in function_url.ensure(lam, STATEMENT)
    stub.assert_no_pending_responses()


def test_adding_it_again_changes_nothing():
    lam, stub = lambda_client()
    deployed(stub, [URL_ONLY, CONDITIONED])
    with stub:  # no add_permission queued: a call would fail the Stubber
        assert "already allows" in function_url.ensure(lam, STATEMENT)
    stub.assert_no_pending_responses()


def test_an_open_statement_under_our_id_is_replaced_by_the_conditioned_one():
    lam, stub = lambda_client()
    deployed(stub, [URL_ONLY, OPEN])
    stub.add_response("remove_permission", {}, {"FunctionName": FUNCTION, "StatementId": "AllowInvokeViaFunctionUrl"})
    stub.add_response("add_permission", {"Statement": json.dumps(CONDITIONED)}, ADD)
    with stub:
        function_url.ensure(lam, STATEMENT)
    stub.assert_no_pending_responses()


def test_a_first_statement_on_a_function_without_a_policy_and_an_alias():
    lam, stub = lambda_client()
    stub.add_response("get_function_configuration", {"FunctionName": FUNCTION},
                      {"FunctionName": FUNCTION, "Qualifier": "live"})
    stub.add_client_error("get_policy", "ResourceNotFoundException", "no policy", 404,
                          expected_params={"FunctionName": FUNCTION, "Qualifier": "live"})
    stub.add_response("add_permission", {"Statement": "{}"}, {**ADD, "Qualifier": "live"})
    with stub:
        function_url.ensure(lam, {**STATEMENT, "qualifier": "live"})
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("change", [{"invoked_via_function_url": False}, {"principal": "123456789012"},
                                    {"action": "lambda:*"}])
def test_never_an_unconditioned_invoke_for_anyone(change):
    lam, stub = lambda_client()
    with stub, pytest.raises(ValueError, match="refusing"):  # nothing queued: no call is made
        function_url.ensure(lam, {**STATEMENT, **change})


def test_open_invokes_are_found_and_the_conditioned_one_is_not():
    lambda_star = {"Sid": "x", "Effect": "Allow", "Principal": "*", "Action": ["lambda:*"], "Resource": ARN}
    assert function_url.open_invokes([URL_ONLY, CONDITIONED]) == []
    assert function_url.open_invokes([URL_ONLY, OPEN, lambda_star]) == ["AllowInvokeViaFunctionUrl", "x"]
    assert function_url.is_conditioned(CONDITIONED) and not function_url.is_conditioned(OPEN)
    assert function_url.is_conditioned({**CONDITIONED, "Principal": {"AWS": "*"}})


def test_deploy_grants_only_on_the_function_url_edge():
    assert deploy.grant_function_url({"http_url": {"value": "x"}}, {}) == "public_edge = http_api: no function URL to grant"
    lam, stub = lambda_client()
    deployed(stub, [URL_ONLY])
    stub.add_client_error("add_permission", "AccessDeniedException", "not allowed", 403, expected_params=ADD)
    outputs = {"function_url_invoke_statement": {"value": STATEMENT}}
    with stub, pytest.raises(DeployError, match="answers 403 until it is; run make deploy again"):
        deploy.grant_function_url(outputs, {}, clients=lambda service: lam)


# ------------------------------------------------------------------------------------------ doctor

class PolicyOf:
    """lambda answers for the doctor: moto's clients, with forward_stream's policy as AWS shows it."""

    def __init__(self, statements: list[dict[str, Any]] | None, deployed: bool = True, url: bool | None = None) -> None:
        self.lam, stub = lambda_client()
        if deployed:
            globals()["deployed"](stub, statements)
        if url:
            stub.add_response("get_function_url_config", {
                "FunctionUrl": "https://abcdefurl.lambda-url.eu-west-1.on.aws/", "FunctionArn": ARN, "AuthType": "NONE",
                "CreationTime": "2026-12-07T00:00:00Z", "LastModifiedTime": "2026-12-07T00:00:00Z",
                "InvokeMode": "RESPONSE_STREAM"}, {"FunctionName": FUNCTION})
        elif url is False:
            stub.add_client_error("get_function_url_config", "ResourceNotFoundException", "no URL", 404,
                                  expected_params={"FunctionName": FUNCTION})
        else:
            stub.add_client_error("get_function_configuration", "ResourceNotFoundException",
                                  f"Function not found: {ARN}", 404)
        stub.activate()

    def clients(self, service: str) -> Any:
        return self.lam if service == "lambda" else moto_clients()(service)


EDGE = ["-var=public_edge=function_url", "-var=forward_reserved_concurrency=50"]


@pytest.mark.parametrize("statements, url, status, words", [
    ([URL_ONLY, CONDITIONED], None, doctor.OK, "InvokeFunction only through the function URL"),
    ([URL_ONLY], True, doctor.WARN, "its function URL answers 403"),
    (None, True, doctor.WARN, "its function URL answers 403"),
    (None, False, doctor.OK, "has no function URL yet (public_edge was http_api)"),
    ([URL_ONLY, OPEN], None, doctor.FAIL, "lets anyone invoke it directly (AllowInvokeViaFunctionUrl)"),
])
@pytest.mark.usefixtures("aws")
def test_doctor_checks_the_statement_on_a_deployed_stack(tmp_path, statements, url, status, words):
    checks = run(tmp_path, EDGE, clients=PolicyOf(statements, url=url).clients)
    check = checks["function URL permission"]
    assert check.status == status and words in check.detail, check


@pytest.mark.usefixtures("aws")
def test_doctor_before_the_first_deploy_says_the_deploy_adds_it(tmp_path):
    checks = run(tmp_path, EDGE, clients=PolicyOf(None, deployed=False).clients)
    assert checks["function URL permission"].status == doctor.OK
    assert "make deploy adds the statement" in checks["function URL permission"].detail


@pytest.mark.usefixtures("aws")
def test_doctor_has_no_function_url_lines_on_the_http_api_edge(tmp_path):
    checks = run(tmp_path)
    assert "function URL permission" not in checks and "cloudfront certificate" not in checks


def issued_certificate(names: list[str], region: str = "us-east-1") -> str:
    """An ISSUED certificate in moto (imported: moto issues those at once) for ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return boto3.client("acm", region_name=region).import_certificate(
        Certificate=cert.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))["CertificateArn"]


def us_east_1(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def domain_run(tmp_path: Path, extra: list[str]) -> doctor.Check:
    regional = issued_certificate(["t.example.com", "*.t.example.com"], REGION)
    checks = run(tmp_path, [*EDGE, "-var=domain_name=t.example.com", f"-var=certificate_arn={regional}", *extra],
                 clients=PolicyOf(None, deployed=False).clients, us_east_1=us_east_1)
    return checks["cloudfront certificate"]


@pytest.mark.usefixtures("aws")
def test_doctor_accepts_an_issued_us_east_1_certificate_for_both_names(tmp_path):
    arn = issued_certificate(["t.example.com", "*.t.example.com"])
    check = domain_run(tmp_path, [f"-var=cloudfront_certificate_arn={arn}"])
    assert check.status == doctor.OK and "covers t.example.com, *.t.example.com" in check.detail, check


@pytest.mark.usefixtures("aws")
def test_doctor_refuses_a_regional_certificate_for_cloudfront(tmp_path):
    check = domain_run(tmp_path, [])  # only certificate_arn, in eu-west-1
    assert check.status == doctor.FAIL and "not in us-east-1" in check.detail
    assert "aws acm request-certificate --region us-east-1 --domain-name t.example.com" in check.fix


@pytest.mark.usefixtures("aws")
def test_doctor_refuses_a_certificate_without_the_wildcard(tmp_path):
    arn = issued_certificate(["t.example.com"])
    check = domain_run(tmp_path, [f"-var=cloudfront_certificate_arn={arn}"])
    assert check.status == doctor.FAIL and "does not cover *.t.example.com" in check.detail


@pytest.mark.usefixtures("aws")
def test_doctor_refuses_a_certificate_pending_validation(tmp_path):
    arn = boto3.client("acm", region_name="us-east-1").request_certificate(
        DomainName="t.example.com", SubjectAlternativeNames=["*.t.example.com"], ValidationMethod="DNS")["CertificateArn"]
    check = domain_run(tmp_path, [f"-var=cloudfront_certificate_arn={arn}"])
    assert check.status == doctor.FAIL and "PENDING_VALIDATION" in check.detail
