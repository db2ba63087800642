# SKELETON module: MSK for txn.events / click.events / device.enrich / *.dlq / features.
# Topics are created by the same script as locally (scripts/create_topics.py against KAFKA_BOOTSTRAP).
variable "name" { type = string }
variable "vpc_id" { type = string }
variable "subnet_ids" { type = list(string) }
variable "kafka_version" { type = string }
variable "broker_count" { type = number }
variable "instance_type" { type = string }
variable "volume_gb" { type = number }

resource "aws_security_group" "kafka" {
  name   = "${var.name}-msk"
  vpc_id = var.vpc_id
  # SKELETON: ingress 9092/9094 from the jobs' node group only.
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count

  broker_node_group_info {
    instance_type   = var.instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.kafka.id]
    storage_info {
      ebs_storage_info {
        volume_size = var.volume_gb
      }
    }
  }

  encryption_info {
    encryption_in_transit {
      client_broker = "TLS_PLAINTEXT"
    }
  }
}

output "bootstrap_brokers" {
  value = aws_msk_cluster.this.bootstrap_brokers
}
