# Caller WebSockets in order (issue 24; shared/README.md "Ordering, both ways, and what it costs").
#
# A Lambda proxy integration on the caller API's $default runs one invocation per caller frame, all
# at once, so a socket's frames reached the counter that numbers them in any order. Instead, $default
# is an AWS service integration: API Gateway sends each frame to an SQS FIFO queue with the caller's
# connection id as its message group, and caller_message reads the queue through an event source
# mapping, which hands one group's messages to one invocation at a time, in queue order
# (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html; the pattern of
# https://github.com/aws-samples/serverless-patterns/tree/main/apigw-websocket-api-sqs-lambda-terraform).

locals {
  caller_queue_name = "${var.name_prefix}-caller-frames.fifo"
  # The caller API's $default integration (modules/websocket_api service_integrations). A WebSocket
  # API's AWS integration takes a form-encoded SQS query request built by a mapping template
  # (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-transformations.html);
  # every value is URL-encoded (connection ids are base64: '+', '/', '='). The frame travels base64:
  # SQS refuses a body holding NUL, other C0 controls or U+FFFE/U+FFFF (InvalidMessageContents,
  # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html),
  # all of which a WebSocket text frame may carry, and +33 % stays under SQS's 256 KB for a
  # 128 KB message. MessageDeduplicationId is
  # the frame's own messageId, so a SendMessage API Gateway retries is stored once; the connection id
  # travels twice: as the group and as a message attribute the Lambda reads.
  caller_frame_template = join("&", [
    "Action=SendMessage",
    "MessageGroupId=$util.urlEncode($context.connectionId)",
    "MessageDeduplicationId=$util.urlEncode($context.messageId)",
    "MessageAttribute.1.Name=connectionId",
    "MessageAttribute.1.Value.DataType=String",
    "MessageAttribute.1.Value.StringValue=$util.urlEncode($context.connectionId)",
    "MessageBody=$util.urlEncode($util.base64Encode($input.body))",
  ])
  caller_frames_integration = {
    integration_uri    = "arn:${data.aws_partition.current.partition}:apigateway:${var.aws_region}:sqs:path/${data.aws_caller_identity.current.account_id}/${local.caller_queue_name}"
    credentials_arn    = aws_iam_role.caller_frames_sender.arn
    request_parameters = { "integration.request.header.Content-Type" = "'application/x-www-form-urlencoded'" }
    request_templates  = { "$default" = local.caller_frame_template }
    # "\$default": the template keyed $default, whatever the frame holds
    template_selection_expression = "\\$default"
  }
}

# High-throughput FIFO (deduplication and throughput per message group): a plain FIFO queue takes
# 300 SendMessage calls per second for the whole queue, i.e. for every caller of every tunnel; per
# group, the caller API's own throttle is the bound
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/high-throughput-fifo.html).
resource "aws_sqs_queue" "caller_frames" {
  name                        = local.caller_queue_name
  fifo_queue                  = true
  content_based_deduplication = false
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId"
  sqs_managed_sse_enabled     = true
  # six times caller_message's timeout (10 s), as Lambda asks of a queue it reads
  # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)
  visibility_timeout_seconds = 60
  # a socket lives at most 2 h; a frame older than its socket has nobody to reach
  message_retention_seconds = 7200
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.caller_frames_dead.arn
    # a frame whose invocation fails 3 times goes aside, so it stops holding its socket's later frames
    maxReceiveCount = 3
  })
}

resource "aws_sqs_queue" "caller_frames_dead" {
  name                      = "${var.name_prefix}-caller-frames-dead.fifo"
  fifo_queue                = true
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days, to look at what failed
}

# The role API Gateway assumes to send caller frames: SendMessage to this one queue, nothing else.
resource "aws_iam_role" "caller_frames_sender" {
  name_prefix = "${var.name_prefix}-caller-frames-"
  description = "API Gateway (caller WebSocket API $default) sends caller frames to the FIFO queue"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "apigateway.amazonaws.com" } }]
  })
}

resource "aws_iam_role_policy" "caller_frames_send" {
  name = "send-caller-frames"
  role = aws_iam_role.caller_frames_sender.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Sid = "SendCallerFrames", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.caller_frames.arn] }]
  })
}

# caller_message reads the queue (what an SQS event source mapping needs of the function's role:
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
resource "aws_iam_role_policy" "caller_frames_read" {
  name = "read-caller-frames"
  role = module.functions["caller_message"].role_name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ReadCallerFrames", Effect = "Allow",
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
      Resource = [aws_sqs_queue.caller_frames.arn]
    }]
  })
}

# Batches of up to 10 (a FIFO queue's most), one message group per invocation at a time, in order.
# ReportBatchItemFailures: caller_message names a failed frame and every later frame of its socket,
# so one bad record does not make Lambda resend the frames of the batch that were already posted.
resource "aws_lambda_event_source_mapping" "caller_frames" {
  event_source_arn        = aws_sqs_queue.caller_frames.arn
  function_name           = module.functions["caller_message"].function_arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  depends_on = [aws_iam_role_policy.caller_frames_read] # AWS checks the role when the mapping is created
}
