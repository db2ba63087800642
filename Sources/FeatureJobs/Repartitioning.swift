import Kafka
import StreamCore

/// Scale-out over processes (docs/scaling.md): each process reads its share of the input
/// partitions; a stream re-keyed by something other than its topic's key goes out through a
/// repartition topic — records and watermarks, exactly once — and comes back in at the process that
/// owns the new key's partition (Kafka Streams' repartition topics, with Flink's watermarks).
extension FeatureJobContext {
    /// This process's share of every input topic; nil when one process reads everything.
    public var assignment: KafkaStaticAssignment? {
        settings.processCount > 1 ? KafkaStaticAssignment(index: settings.processIndex, count: settings.processCount) : nil
    }

    /// Kafka Streams' naming: `<application id>-<name>-repartition`, the group id standing in for
    /// the application id (every process of a job shares it).
    public func repartitionTopic(_ name: String) -> String { "\(settings.groupId)-\(name)-repartition" }

    /// Creates `topic` with `partitions` unless it exists; an existing one must have that many.
    func ensureTopic(_ topic: String, partitions: Int) throws {
        try KafkaAdmin.createTopics(kafka, [topic: partitions])
        let found = try KafkaAdmin.partitionCounts(kafka, [topic])[topic]
        guard found == partitions else {
            throw JobConfigurationError("the repartition topic \(topic) has \(found.map(String.init) ?? "no") partitions, the job needs \(partitions) (those of the topic it mirrors); delete it, or use another --group-id")
        }
    }

    /// `stream` re-keyed by `key` across the processes of the job: written to the repartition topic
    /// `name` (partition = Kafka's murmur2 of the key modulo `partitions`, so it lines up with
    /// an input topic keyed the same way) with one transaction per checkpoint and this process's
    /// watermarks as markers, and read back — this process's partitions only — with the
    /// watermark the writers' markers give (the minimum over every writer, as between Flink tasks).
    public func repartition<T: Codable & Sendable>(
        _ stream: DataStream<T>, _ env: StreamExecutionEnvironment, name: String, partitions: Int,
        key: @escaping @Sendable (T) -> String, eventTime: @escaping @Sendable (T) -> Int64
    ) throws -> DataStream<T> {
        let s = settings
        let topic = repartitionTopic(name)
        try ensureTopic(topic, partitions: partitions)
        stream.transform("\(name) watermark markers") {
            RepartitionMarkers<T>(partitions: partitions, processIndex: s.processIndex, processCount: s.processCount, setup: $0)
        }.sinkTo(KafkaSink(config: kafka, topic: topic,
                           guarantee: .exactlyOnce(transactionalIdPrefix: "\(s.groupId)-\(name)-p\(s.processIndex)")) {
            RepartitionSerializer<T>(partitions: partitions, key: key, eventTime: eventTime)
        }, name: "\(name) repartition out")

        var config = kafka
        config.properties["isolation.level"] = s.repartitionIsolation
        var source = KafkaSource<Repartitioned<T>>(config: config, topics: [topic], groupId: s.groupId,
                                                   startingOffsets: startingOffsets, bounded: s.bounded) {
            RepartitionDeserializer<T>()
        }
        source.assignment = assignment
        return env.fromSource(source, watermarkStrategy: RepartitionWatermarks<T>.strategy(eventTime: eventTime),
                              name: "\(name) repartition in")
            .flatMap(name: "\(name) records") { (e: Repartitioned<T>, out: Collector<T>) in
                if case .record(let v) = e { try out.collect(v) }
            }
    }
}
