"""What the simulator bills, at AWS list prices: the figures' dollars come from here alone."""

from __future__ import annotations

# (DynamoDB after its 2024-11-01 on-demand price cut), as quoted in 2026 and checked 2026-11-30 --
# AWS Fargate pricing, Linux/x86: per vCPU-hour and per GB-hour, per second, one-minute minimum.
FARGATE_VCPU_HOUR_USD = 0.04048
FARGATE_GB_HOUR_USD = 0.004445
FARGATE_MINIMUM_SECONDS = 60.0
# The template's agent task size (template.yaml AgentCpu 1024, AgentMemory 2048 defaults).
AGENT_TASK_VCPU = 1.0
AGENT_TASK_GB = 2.0
# AWS Lambda pricing, x86: per request and per GB-second; the template's functions use 512 MB.
LAMBDA_REQUEST_USD = 0.20 / 1e6
LAMBDA_GB_SECOND_USD = 0.0000166667
LAMBDA_MEMORY_GB = 0.5
# Amazon DynamoDB on-demand: per write request unit and per read request unit (items ≤ 1 KB
# written, ≤ 4 KB read strongly consistent: one unit each).
DYNAMODB_WRITE_USD = 0.625 / 1e6
DYNAMODB_READ_USD = 0.125 / 1e6
# Amazon SQS standard queue: per request (send, receive and delete each count).
SQS_REQUEST_USD = 0.40 / 1e6
# Amazon API Gateway HTTP API: per request (each webhook delivery attempt).
HTTP_API_REQUEST_USD = 1.00 / 1e6

PRICES = {
    "fargate_vcpu_hour_usd": FARGATE_VCPU_HOUR_USD,
    "fargate_gb_hour_usd": FARGATE_GB_HOUR_USD,
    "fargate_minimum_seconds": FARGATE_MINIMUM_SECONDS,
    "agent_task_vcpu": AGENT_TASK_VCPU,
    "agent_task_gb": AGENT_TASK_GB,
    "lambda_request_usd": LAMBDA_REQUEST_USD,
    "lambda_gb_second_usd": LAMBDA_GB_SECOND_USD,
    "lambda_memory_gb": LAMBDA_MEMORY_GB,
    "dynamodb_write_request_usd": DYNAMODB_WRITE_USD,
    "dynamodb_read_request_usd": DYNAMODB_READ_USD,
    "sqs_request_usd": SQS_REQUEST_USD,
    "http_api_request_usd": HTTP_API_REQUEST_USD,
    "region": "us-east-1",
    "checked": "2026-11-30",
    "sources": [
        "aws.amazon.com/fargate/pricing",
        "aws.amazon.com/lambda/pricing",
        "aws.amazon.com/dynamodb/pricing/on-demand",
        "aws.amazon.com/sqs/pricing",
        "aws.amazon.com/api-gateway/pricing",
    ],
}
