"""Creates the topics of the design (../shared/DESIGN.md) on a Kafka-compatible broker; idempotent.

    python scripts/create_topics.py HOST:PORT

txn.events (12 partitions, key card_id), click.events (12, user_id), device.enrich (6, device_id),
a DLQ per stream, and the features topics (features.txn, features.click).
"""
import sys

from confluent_kafka.admin import AdminClient, NewTopic

TOPICS = {
    "txn.events": 12,
    "click.events": 12,
    "device.enrich": 6,
    "txn.events.dlq": 3,
    "click.events.dlq": 3,
    "device.enrich.dlq": 3,
    "features.txn": 12,
    "features.click": 12,
}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    admin = AdminClient({"bootstrap.servers": sys.argv[1]})
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in TOPICS.items() if name not in existing]
    failed = False
    for name, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(timeout=10)
            print(f"created {name} ({TOPICS[name]} partitions)")
        except Exception as e:  # noqa: BLE001 - report every topic's failure, then fail
            if "TOPIC_ALREADY_EXISTS" in str(e):
                continue
            print(f"create_topics: {name}: {e}", file=sys.stderr)
            failed = True
    metadata = admin.list_topics(timeout=10).topics
    for name, n in TOPICS.items():
        have = len(metadata[name].partitions) if name in metadata else 0
        if have != n:
            print(f"create_topics: {name} has {have} partitions, expected {n}", file=sys.stderr)
            failed = True
    if not failed:
        print(f"topics ok: {', '.join(f'{k} ({v})' for k, v in TOPICS.items())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
