# modules/function_url on its own (mocked AWS provider, offline): a public streaming URL whose only
# grant is lambda:InvokeFunctionUrl; the conditioned lambda:InvokeFunction is an output for the
# deploy, never an unconditioned statement for "*". wiring.tftest.hcl checks the root's public_edge.
# tests/infra/test_terraform.py runs it.

mock_provider "aws" {}

variables {
  function_name = "http-tunnel-forward"
}

run "a_public_streaming_url_granted_only_the_url_action" {
  command = apply

  module {
    source = "./modules/function_url"
  }

  assert {
    condition     = aws_lambda_function_url.this.invoke_mode == "RESPONSE_STREAM" && aws_lambda_function_url.this.authorization_type == "NONE"
    error_message = "the edge is a public URL that streams"
  }

  assert {
    condition = (aws_lambda_permission.invoke_url.action == "lambda:InvokeFunctionUrl" && aws_lambda_permission.invoke_url.principal == "*"
    && aws_lambda_permission.invoke_url.function_url_auth_type == "NONE" && aws_lambda_permission.invoke_url.function_name == "http-tunnel-forward")
    error_message = "the only statement Terraform writes is InvokeFunctionUrl for auth type NONE"
  }

  assert {
    condition = (output.invoke_function_statement.action == "lambda:InvokeFunction" && output.invoke_function_statement.principal == "*"
      && output.invoke_function_statement.invoked_via_function_url == true && output.invoke_function_statement.qualifier == null
    && output.invoke_function_statement.statement_id == "AllowInvokeViaFunctionUrl" && output.invoke_function_statement.function_name == "http-tunnel-forward")
    error_message = "the InvokeFunction statement the deploy adds must carry the InvokedViaFunctionUrl condition"
  }
}

run "buffered_mode_and_an_alias" {
  command = apply

  module {
    source = "./modules/function_url"
  }

  variables {
    invoke_mode = "BUFFERED"
    qualifier   = "live"
  }

  assert {
    condition     = aws_lambda_function_url.this.invoke_mode == "BUFFERED" && aws_lambda_function_url.this.qualifier == "live" && aws_lambda_permission.invoke_url.qualifier == "live"
    error_message = "the URL and its permission follow the alias"
  }
}

run "refuses_an_unknown_invoke_mode" {
  command = plan

  module {
    source = "./modules/function_url"
  }

  variables {
    invoke_mode = "STREAM"
  }

  expect_failures = [var.invoke_mode]
}
