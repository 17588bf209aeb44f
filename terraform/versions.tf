terraform {
  required_version = ">= 1.11" # write-only attributes (value_wo) for the agents' JWT secret

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

# The only provider configuration. Endpoints come from the environment: the local stack
# sets AWS_ENDPOINT_URL=http://127.0.0.1:<moto port>; real deployments use AWS_PROFILE.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}

# Only the ephemeral secret generator uses this one: the mock provider of `terraform test` (1.11)
# refuses any configuration with an ephemeral resource (hashicorp/terraform#38608), so tests/
# give this alias a real provider, configured offline, while everything else stays mocked.
provider "aws" {
  alias  = "secret_generator"
  region = var.aws_region
}
