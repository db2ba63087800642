"""The broker's own hop: produce at RATE records/s for SECONDS (Kafka timestamps = produce time) and
consume them at once; print p50/p95/p99 of (consumed − produced) in milliseconds.

What `make bench-features` compares event → feature-in-Redis latency with: the same broker, rate and
client library (librdkafka), without the job or Redis in between.

    python scripts/broker_hop.py BOOTSTRAP TOPIC RATE SECONDS [librdkafka.key=value ...]
"""
import sys
import threading
import time

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    boot, topic, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    producer_config = {"bootstrap.servers": boot, "linger.ms": 5}
    for kv in sys.argv[5:]:
        key, sep, value = kv.partition("=")
        if not sep:
            sys.exit(f"broker_hop: '{kv}' is not key=value")
        producer_config[key] = value
    partitions = len(AdminClient({"bootstrap.servers": boot}).list_topics(topic, timeout=10).topics[topic].partitions)
    latencies: list[float] = []
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        c = Consumer({"bootstrap.servers": boot, "group.id": "broker-hop", "enable.auto.commit": False,
                      "fetch.wait.max.ms": 10})  # as the job's source
        c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
        c.poll(0.5)
        ready.set()
        while not stop.is_set():
            m = c.poll(0.05)  # returns at the first record (consume(n, t) would wait for n or t)
            if m is not None and not m.error():
                latencies.append(time.time() * 1000 - m.timestamp()[1])
        c.close()

    t = threading.Thread(target=consume)
    t.start()
    ready.wait(10)
    time.sleep(1)
    p = Producer(producer_config)
    start, n = time.time(), 0
    while time.time() - start < seconds:
        due = start + n / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        p.produce(topic, key=str(n % 10_000).encode(), value=b"x" * 90)
        p.poll(0)
        n += 1
    p.flush(30)
    time.sleep(1)
    stop.set()
    t.join()
    if not latencies:
        sys.exit("broker_hop: nothing consumed")
    latencies.sort()

    def q(f: float) -> float:
        return latencies[int(f * (len(latencies) - 1))]

    extra = " ".join(sys.argv[5:]) or "linger.ms=5"
    print(f"broker alone ({extra}): {len(latencies)} records at {rate:.0f}/s, produced → consumed "
          f"p50 {q(.5):.0f} ms, p95 {q(.95):.0f} ms, p99 {q(.99):.0f} ms")


if __name__ == "__main__":
    main()
