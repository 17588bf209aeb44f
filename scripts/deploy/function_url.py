"""The one statement of the function URL edge Terraform cannot write: `lambda:InvokeFunction` for
`*`, conditioned on `lambda:InvokedViaFunctionUrl = true`.

Since October 2025 a public function URL needs `lambda:InvokeFunction` besides
`lambda:InvokeFunctionUrl` (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). Provider
5.x has no `invoked_via_function_url` on `aws_lambda_permission` (6.29+), and an unconditioned
InvokeFunction for `*` would let any AWS account invoke forward_stream with a forged event. So
`make deploy` adds the conditioned statement after the apply with botocore's
`AddPermission(InvokedViaFunctionUrl=True)` (terraform output `function_url_invoke_statement`
says what), and `make doctor` checks it is there. Until it is, the URL answers 403: closed,
never open.

Drift, on purpose: Terraform does not know this statement. It lives in forward_stream's resource
policy until the function is destroyed (it goes with it), a `terraform apply` never removes it,
and a function replaced by Terraform (renamed, or a new name_prefix) loses it until the next
`make deploy`. Adding it is idempotent: a statement of that id that is not exactly this one is
replaced.
"""

from __future__ import annotations

import json
from typing import Any

ACTION = "lambda:InvokeFunction"
CONDITION_KEY = "lambda:InvokedViaFunctionUrl"


def wanted(outputs: dict[str, Any]) -> dict[str, Any] | None:
    """The statement `terraform output` asks for (public_edge = function_url), else None."""
    statement = (outputs.get("function_url_invoke_statement") or {}).get("value")
    return statement if isinstance(statement, dict) and statement.get("function_name") else None


def policy_statements(lam: Any, function_name: str, qualifier: str | None = None) -> list[dict[str, Any]] | None:
    """forward_stream's resource policy statements; [] without a policy, None when the function is absent."""
    kwargs = {"FunctionName": function_name, **({"Qualifier": qualifier} if qualifier else {})}
    try:
        lam.get_function_configuration(**kwargs)
    except lam.exceptions.ResourceNotFoundException:
        return None
    try:
        policy = lam.get_policy(**kwargs)["Policy"]
    except lam.exceptions.ResourceNotFoundException:  # the function has no resource policy at all
        return []
    statements = json.loads(policy).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def has_url(lam: Any, function_name: str, qualifier: str | None = None) -> bool:
    """Whether the function has a function URL (GetFunctionUrlConfig)."""
    try:
        lam.get_function_url_config(FunctionName=function_name, **({"Qualifier": qualifier} if qualifier else {}))
    except lam.exceptions.ResourceNotFoundException:
        return False
    return True


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement.get("Action", [])
    return {action} if isinstance(action, str) else set(action)


def _public(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")


def _via_url_only(statement: dict[str, Any]) -> bool:
    value = (statement.get("Condition") or {}).get("Bool", {}).get(CONDITION_KEY)
    return str(value).lower() == "true"


def is_conditioned(statement: dict[str, Any]) -> bool:
    """Allow lambda:InvokeFunction for `*`, only when invoked through a function URL."""
    return (statement.get("Effect") == "Allow" and _actions(statement) == {ACTION} and _public(statement)
            and _via_url_only(statement))


def open_invokes(statements: list[dict[str, Any]]) -> list[str]:
    """Sids of statements letting anyone invoke the function directly (InvokeFunction or lambda:* for `*`
    without the function URL condition): each would let any AWS account send forged events."""
    return [str(s.get("Sid", "?")) for s in statements
            if s.get("Effect") == "Allow" and _public(s) and _actions(s) & {ACTION, "lambda:*", "*"}
            and not _via_url_only(s)]


def ensure(lam: Any, statement: dict[str, Any]) -> str:
    """Add the conditioned statement unless it is there (idempotent); what was done, in words."""
    name, qualifier, sid = statement["function_name"], statement.get("qualifier"), statement["statement_id"]
    if statement.get("action") != ACTION or statement.get("principal") != "*" or not statement.get("invoked_via_function_url"):
        raise ValueError(f"refusing to add {statement!r}: only {ACTION} for * conditioned on {CONDITION_KEY}")
    target = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
    existing = policy_statements(lam, name, qualifier)
    if existing is None:
        raise LookupError(f"{name} does not exist: nothing to grant")
    same_sid = [s for s in existing if s.get("Sid") == sid]
    if same_sid and is_conditioned(same_sid[0]):
        return f"{name}: {sid} already allows {ACTION} through the function URL only"
    if same_sid:  # an older or edited statement under our id: replace it with the conditioned one
        lam.remove_permission(StatementId=sid, **target)
    lam.add_permission(StatementId=sid, Action=ACTION, Principal="*", InvokedViaFunctionUrl=True, **target)
    return f"{name}: added {sid} ({ACTION} for *, only through the function URL)"
