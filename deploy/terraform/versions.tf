# SKELETON (deploy/terraform/README.md): never planned or applied.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
  # backend "s3" { bucket = "…" key = "tributary/terraform.tfstate" region = "…" }
}

provider "aws" {
  region = var.region
}
