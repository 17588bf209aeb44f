terraform {
  required_version = ">= 1.9"

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
