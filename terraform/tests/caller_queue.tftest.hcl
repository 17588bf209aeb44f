# The caller API's $default as an SQS FIFO queue (terraform/caller_queue.tf): the queue, the service
# integration's template, the mapping that gives caller_message one socket's frames in order, and the
# two roles' permissions. Mocked AWS provider, offline; tests/infra/test_terraform.py runs it.

mock_provider "aws" {
  source = "./tests/mocks"
}

mock_provider "aws" {
  alias = "us_east_1"
}

provider "aws" {
  alias                       = "secret_generator"
  region                      = "us-east-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_resource {
  target = aws_sqs_queue.caller_frames
  values = { arn = "arn:aws:sqs:us-east-1:123456789012:http-tunnel-caller-frames.fifo" }
}

override_resource {
  target = aws_sqs_queue.caller_frames_dead
  values = { arn = "arn:aws:sqs:us-east-1:123456789012:http-tunnel-caller-frames-dead.fifo" }
}

override_resource {
  target = aws_iam_role.caller_frames_sender
  values = { arn = "arn:aws:iam::123456789012:role/http-tunnel-caller-frames-1", id = "http-tunnel-caller-frames-1" }
}

override_resource {
  target = module.functions["caller_message"].aws_iam_role.this
  values = { name = "http-tunnel-caller-message", arn = "arn:aws:iam::123456789012:role/http-tunnel-caller-message" }
}

override_resource {
  target = module.functions["caller_message"].aws_lambda_function.this
  values = {
    arn           = "arn:aws:lambda:us-east-1:123456789012:function:caller_message"
    function_name = "http-tunnel-caller-message"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/caller_message/invocations"
  }
}

variables {
  build_dir                 = "./tests/fixtures/build"
  jwt_secret_ssm_parameter  = "/tunnel/jwt"
  request_id_key_ssm_prefix = "/tunnel/request-id-key-"
}

run "caller_frames_queue" {
  command = apply

  assert {
    condition = (aws_sqs_queue.caller_frames.fifo_queue && !aws_sqs_queue.caller_frames.content_based_deduplication
      && aws_sqs_queue.caller_frames.deduplication_scope == "messageGroup" && aws_sqs_queue.caller_frames.fifo_throughput_limit == "perMessageGroupId"
    && endswith(aws_sqs_queue.caller_frames.name, ".fifo"))
    error_message = "caller frames go to a high-throughput FIFO queue (order and deduplication per message group)"
  }

  assert {
    condition     = aws_sqs_queue.caller_frames.sqs_managed_sse_enabled && aws_sqs_queue.caller_frames_dead.sqs_managed_sse_enabled
    error_message = "caller frames are encrypted at rest, in the queue and its dead-letter queue"
  }

  assert {
    condition = (jsondecode(aws_sqs_queue.caller_frames.redrive_policy).deadLetterTargetArn == aws_sqs_queue.caller_frames_dead.arn
    && jsondecode(aws_sqs_queue.caller_frames.redrive_policy).maxReceiveCount == 3 && aws_sqs_queue.caller_frames_dead.fifo_queue)
    error_message = "a frame that fails 3 times goes to the FIFO dead-letter queue, so it stops holding its socket's later frames"
  }

  assert {
    condition     = aws_sqs_queue.caller_frames.visibility_timeout_seconds >= 6 * 10
    error_message = "the queue's visibility timeout is at least six times caller_message's 10 s timeout"
  }
}

run "default_route_sends_to_the_queue" {
  command = apply

  assert {
    condition     = module.caller_websocket_api.route_targets["$default"] == "arn:aws:apigateway:us-east-1:sqs:path/123456789012/http-tunnel-caller-frames.fifo"
    error_message = "the caller API's $default is the SQS queue's path, not a Lambda"
  }

  assert {
    condition = (module.caller_websocket_api.service_integrations["$default"].integration_type == "AWS"
      && module.caller_websocket_api.service_integrations["$default"].passthrough_behavior == "NEVER"
      && module.caller_websocket_api.service_integrations["$default"].credentials_arn == aws_iam_role.caller_frames_sender.arn
    && module.caller_websocket_api.service_integrations["$default"].template_selection_expression == "\\$default")
    error_message = "$default is an AWS service integration with its own role and the $default template"
  }

  assert {
    condition     = length(module.caller_websocket_api.service_integrations["$default"].request_parameters) == 1 && module.caller_websocket_api.service_integrations["$default"].request_parameters["integration.request.header.Content-Type"] == "'application/x-www-form-urlencoded'"
    error_message = "the SQS query request is form-encoded"
  }

  assert {
    condition = alltrue([for part in [
      "Action=SendMessage", "MessageGroupId=$util.urlEncode($context.connectionId)",
      "MessageDeduplicationId=$util.urlEncode($context.messageId)", "MessageAttribute.1.Name=connectionId",
      "MessageAttribute.1.Value.StringValue=$util.urlEncode($context.connectionId)", "MessageBody=$util.urlEncode($util.base64Encode($input.body))",
    ] : contains(split("&", module.caller_websocket_api.service_integrations["$default"].request_templates["$default"]), part)])
    error_message = "one message group per caller connection, deduplicated by the frame's messageId, the connection id as an attribute, the frame base64 (SQS refuses NUL and other controls)"
  }

  assert {
    condition     = !contains(keys(module.caller_websocket_api.permission_qualifiers), "$default")
    error_message = "no Lambda invoke permission for the caller API's $default: API Gateway no longer invokes caller_message"
  }

  assert {
    condition     = module.caller_websocket_api.route_targets["$connect"] == "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/mock/invocations"
    error_message = "$connect stays a Lambda proxy integration"
  }
}

run "caller_message_reads_the_queue_in_order" {
  command = apply

  assert {
    condition = (aws_lambda_event_source_mapping.caller_frames.event_source_arn == aws_sqs_queue.caller_frames.arn
    && aws_lambda_event_source_mapping.caller_frames.function_name == "arn:aws:lambda:us-east-1:123456789012:function:caller_message")
    error_message = "caller_message is the queue's event source mapping"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.caller_frames.batch_size == 10 && aws_lambda_event_source_mapping.caller_frames.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "batches of up to 10 (FIFO's most), partial failures reported per record"
  }
}

run "permissions" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role.caller_frames_sender.assume_role_policy).Statement == [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "apigateway.amazonaws.com" } }]
    error_message = "only API Gateway assumes the sender role"
  }

  assert {
    condition = (aws_iam_role_policy.caller_frames_send.role == aws_iam_role.caller_frames_sender.id
    && jsondecode(aws_iam_role_policy.caller_frames_send.policy).Statement == [{ Sid = "SendCallerFrames", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.caller_frames.arn] }])
    error_message = "API Gateway's role may only SendMessage, and only to the caller frames queue"
  }

  assert {
    condition = (aws_iam_role_policy.caller_frames_read.role == "http-tunnel-caller-message"
      && [for st in jsondecode(aws_iam_role_policy.caller_frames_read.policy).Statement : st.Action] == [["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]]
    && [for st in jsondecode(aws_iam_role_policy.caller_frames_read.policy).Statement : st.Resource] == [[aws_sqs_queue.caller_frames.arn]])
    error_message = "caller_message's own role may read, delete and hide messages of the caller frames queue only, never send"
  }
}
