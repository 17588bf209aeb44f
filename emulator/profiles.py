"""Latency profiles for the emulator (owned by the benchmark work; see issue 6).

`local` adds nothing. `aws` adds the delays real AWS would add, each figure with its public
source in a comment, so `make bench PROFILE=aws` can report added latency under that model.
The emulator sleeps these (asynchronously / in the calling thread) around the matching operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    dynamodb_ms: dict[str, float] = field(default_factory=dict)  # by operation, "*" = default
    post_to_connection_ms: float = 0.0
    lambda_invoke_ms: float = 0.0  # per invocation overhead (warm)
    stream_delivery_ms: float = 0.0  # DynamoDB Stream record -> stream_notifier
    http_api_ms: float = 0.0  # HTTP API front door overhead
    websocket_api_ms: float = 0.0  # WebSocket API message routing overhead
    sqs_fifo_ms: float = 0.0  # SendMessage to a FIFO queue + Lambda's poller receiving it (caller frames)

    def dynamodb(self, operation: str) -> float:
        return self.dynamodb_ms.get(operation, self.dynamodb_ms.get("*", 0.0))


LOCAL = LatencyProfile(name="local")

# Warm, in-region, us-east-1 service latencies as the AWS side sees them. What it does NOT include:
# the internet round trips caller -> region and agent -> region (they depend on where the caller
# and the developer sit, and any hosted tunnel pays them too), and cold starts (a new execution
# environment adds ~100-300 ms for a small Python function, once per environment; see the Lambda
# "operating Lambda: performance optimization" guide below). Figures are typical medians, chosen
# from the upper half of what the sources state, so the model errs slow, not fast.
AWS = LatencyProfile(
    name="aws",
    # DynamoDB: "consistent single-digit millisecond response times at any scale"
    #   https://aws.amazon.com/dynamodb/ and https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Introduction.html
    # Reads are cheaper than writes (a write is replicated to 3 AZs before it is acknowledged:
    #   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html ),
    # so writes get the top of the single-digit band, reads the middle; a GSI Query is a read.
    dynamodb_ms={
        "GetItem": 4.0,
        "Query": 5.0,
        "PutItem": 7.0,
        "UpdateItem": 7.0,
        "DeleteItem": 7.0,
        "BatchWriteItem": 9.0,
        "TransactWriteItems": 12.0,  # two-phase: prepare + commit
        "*": 5.0,
    },
    # PostToConnection is an HTTPS call from the Lambda to the execute-api @connections endpoint
    # (SigV4, TLS reuse within a warm environment) followed by delivery on the socket. AWS
    # publishes no figure for it; community measurements (AWS re:Post, serverless blogs) put it at
    # 10-50 ms from a warm Lambda in the same region. 20 ms, the low-middle of that range:
    #   https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html
    post_to_connection_ms=20.0,
    # Warm Lambda invoke overhead (service hop + runtime dispatch, excluding the handler's own time):
    # a few ms; AWS: "warm start ... the function reuses the execution environment"
    #   https://docs.aws.amazon.com/lambda/latest/operatorguide/execution-environments.html
    #   https://aws.amazon.com/blogs/compute/operating-lambda-performance-optimization-part-1/
    lambda_invoke_ms=5.0,
    # DynamoDB Streams -> Lambda: "Lambda polls shards in your DynamoDB stream for records at a
    # base rate of 4 times per second" -> up to 250 ms, ~125 ms on average; plus the invoke.
    #   https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html
    stream_delivery_ms=250.0,
    # HTTP API front door (routing + Lambda proxy integration, excluding IntegrationLatency):
    # what the CloudWatch metrics Latency minus IntegrationLatency show for an HTTP API,
    # typically ~5-10 ms (HTTP APIs were launched as the lower-latency flavour of API Gateway)
    #   https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html
    http_api_ms=8.0,
    # WebSocket API: agent frame -> route selection -> $default Lambda integration; same order as
    # the HTTP API front door (metric IntegrationLatency vs the message's end to end)
    #   https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-logging.html
    websocket_api_ms=10.0,
    # Caller frames (issue 24): API Gateway's SendMessage to the FIFO queue, then Lambda's SQS poller
    # receiving it. AWS publishes no latency figure for SQS; secondary notes quote "low latency (< 10 ms
    # on publish and receive)" for standard queues (https://massipssa.github.io/Docs/docs/cloud/aws/Collection/sqs)
    # and nothing for FIFO. Lambda long-polls the queue, so a message is received as it lands
    # (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html). 20 ms send + 20 ms receive: twice the
    # quoted figure each, erring slow as the rest of this profile (verify on the first deploy: make smoke).
    sqs_fifo_ms=40.0,
)

PROFILES: dict[str, LatencyProfile] = {"local": LOCAL, "aws": AWS}


def load_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown latency profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
