# Mocked AWS values for terraform/tests (mock_provider "aws" { source = "./tests/mocks" }): the ARNs and
# endpoints the root module parses, so a mocked plan gets well-formed ones.

mock_data "aws_caller_identity" {
  defaults = { account_id = "123456789012" }
}
mock_data "aws_partition" {
  defaults = { partition = "aws" }
}
mock_resource "aws_apigatewayv2_api" {
  defaults = {
    api_endpoint  = "wss://abc123.execute-api.us-east-1.amazonaws.com"
    execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
  }
}
mock_resource "aws_dynamodb_table" {
  defaults = {
    arn        = "arn:aws:dynamodb:us-east-1:123456789012:table/mock"
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock/stream/2020"
  }
}
mock_resource "aws_lambda_function" {
  defaults = {
    arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock"
    invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/mock/invocations"
  }
}
mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
}
mock_resource "aws_cloudwatch_event_bus" {
  defaults = { arn = "arn:aws:events:us-east-1:123456789012:event-bus/mock" }
}
mock_resource "aws_s3_bucket" {
  defaults = { arn = "arn:aws:s3:::mock-bucket", bucket = "mock-bucket" }
}
mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
}
mock_resource "aws_cloudwatch_event_rule" {
  defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/mock" }
}
mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:us-east-1:123456789012:http-tunnel-alarms" }
}
mock_resource "aws_lambda_layer_version" {
  defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:layer:mock:1" }
}
