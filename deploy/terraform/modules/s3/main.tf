# SKELETON module: the offline feature log (offline/<view>/date=…/hour=…/*.avro) and the jobs'
# externalized checkpoints (checkpoints/<job>/<process>/chk-N/).
variable "name" { type = string }
variable "retention_days" { type = number }

resource "aws_s3_bucket" "this" {
  bucket_prefix = "${var.name}-features-"
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    id     = "offline-retention"
    status = "Enabled"
    filter {
      prefix = "offline/"
    }
    expiration {
      days = var.retention_days
    }
  }
}

output "bucket" {
  value = aws_s3_bucket.this.bucket
}
