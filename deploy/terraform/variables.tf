# SKELETON (deploy/terraform/README.md).
variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource"
  type        = string
  default     = "tributary"
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Private subnets, one per AZ (MSK wants as many as it has brokers per AZ group)"
  type        = list(string)
}

# Sizing: docs/cloud.md. 12 partitions on txn.events and click.events; 3 brokers carry 50k events/s.
variable "kafka_version" {
  type    = string
  default = "3.7.x"
}

variable "kafka_broker_count" {
  type    = number
  default = 3
}

variable "kafka_instance_type" {
  type    = string
  default = "kafka.m7g.large"
}

variable "kafka_volume_gb" {
  type    = number
  default = 500
}

variable "redis_node_type" {
  type    = string
  default = "cache.r7g.large"
}

variable "redis_replicas" {
  type    = number
  default = 1
}

variable "offline_retention_days" {
  type    = number
  default = 365
}
