# SKELETON: the values for deploy/k8s/configmap.yaml.
output "kafka_bootstrap" {
  description = "KAFKA_BOOTSTRAP"
  value       = module.msk.bootstrap_brokers
}

output "redis_host" {
  description = "REDIS_HOST"
  value       = module.elasticache.primary_endpoint
}

output "redis_port" {
  description = "REDIS_PORT"
  value       = module.elasticache.port
}

output "s3_bucket" {
  description = "Offline feature log (offline/) and checkpoints (checkpoints/)"
  value       = module.s3.bucket
}
