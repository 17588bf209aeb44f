# A public Lambda function URL in front of one function: the `function_url` public edge (issue 23;
# shared/README.md, "The live web: the streaming edge (design)").
#
# RESPONSE_STREAM makes Lambda call the function with InvokeWithResponseStream: up to 200 MB,
# 15 minutes, no API throttle in front (the root requires forward_reserved_concurrency on this
# edge). Since October 2025 a public URL needs lambda:InvokeFunctionUrl AND lambda:InvokeFunction
# (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). This module grants only the first:
# an unconditioned InvokeFunction for "*" would let any AWS account invoke the function directly
# with a forged event, and provider 5.x cannot add the lambda:InvokedViaFunctionUrl condition
# (aws_lambda_permission.invoked_via_function_url is 6.29+). The conditioned statement is the
# output `invoke_function_statement`, which the deploy adds through botocore; until it exists the
# URL answers 403 (closed, never open).

resource "aws_lambda_function_url" "this" {
  #checkov:skip=CKV_AWS_258:a tunnel's public URL is public by design; callers are checked by the tunnel's edge policy, and IAM auth would need SigV4 from every caller
  function_name      = var.function_name
  qualifier          = var.qualifier
  authorization_type = "NONE"
  invoke_mode        = var.invoke_mode
}

resource "aws_lambda_permission" "invoke_url" {
  #checkov:skip=CKV_AWS_301:the URL is public by design; this statement allows only lambda:InvokeFunctionUrl with auth type NONE, not a direct invoke
  statement_id           = "AllowPublicFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = var.function_name
  qualifier              = var.qualifier
  principal              = "*"
  function_url_auth_type = "NONE"
}
