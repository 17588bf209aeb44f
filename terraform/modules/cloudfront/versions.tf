terraform {
  required_version = ">= 1.11" # value_wo (write-only) of the secret's SSM parameter

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
