# SKELETON (deploy/terraform/README.md): the managed services behind the feature contract's env vars.

module "msk" {
  source        = "./modules/msk"
  name          = var.name
  subnet_ids    = var.subnet_ids
  vpc_id        = var.vpc_id
  kafka_version = var.kafka_version
  broker_count  = var.kafka_broker_count
  instance_type = var.kafka_instance_type
  volume_gb     = var.kafka_volume_gb
}

module "elasticache" {
  source     = "./modules/elasticache"
  name       = var.name
  subnet_ids = var.subnet_ids
  vpc_id     = var.vpc_id
  node_type  = var.redis_node_type
  replicas   = var.redis_replicas
}

module "s3" {
  source         = "./modules/s3"
  name           = var.name
  retention_days = var.offline_retention_days
}
