output "function_url" {
  description = "The URL callers use (https://<url-id>.lambda-url.<region>.on.aws/), path URLs of every tunnel under it."
  value       = aws_lambda_function_url.this.function_url
}

output "url_id" {
  description = "The URL's id (the first label of its hostname)."
  value       = aws_lambda_function_url.this.url_id
}

output "invoke_mode" {
  description = "The URL's invoke mode."
  value       = aws_lambda_function_url.this.invoke_mode
}

output "invoke_function_statement" {
  description = "The lambda:InvokeFunction statement a public URL also needs, conditioned on lambda:InvokedViaFunctionUrl: provider 5.x cannot write it, so the deploy adds it with botocore's AddPermission(InvokedViaFunctionUrl=True)."
  value = {
    function_name            = var.function_name
    qualifier                = var.qualifier
    statement_id             = "AllowInvokeViaFunctionUrl"
    action                   = "lambda:InvokeFunction"
    principal                = "*"
    invoked_via_function_url = true
  }
}
