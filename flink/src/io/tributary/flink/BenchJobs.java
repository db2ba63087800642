package io.tributary.flink;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.co.ProcessJoinFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * The bench-windows workloads on Apache Flink's DataStream API, on the same generated data:
 * record i (0 ≤ i < N) is card (i * 7919) % keys, amount i & 1023, event time i ms — bench-windows
 * generates the same N records as two interleaved splits (even and odd milliseconds), which is the
 * same set of events in the same event-time order. Watermarks: bounded out-of-orderness 5 s, the
 * default 200 ms interval, as bench-windows.
 *
 * Usage: BenchJobs [--records N] [--keys K] [--only CASE] [--parallelism P] [--json PATH]
 * Prints one line per case: name, parallelism, records, seconds (job net runtime), records/s.
 */
public final class BenchJobs {

    /** A transaction of the benchmark (a Flink POJO: public fields, no-arg constructor). */
    public static final class Txn {
        public long card;
        public long amountCents;
        public long ts;

        public Txn() {}

        Txn(long card, long amountCents, long ts) {
            this.card = card;
            this.amountCents = amountCents;
            this.ts = ts;
        }
    }

    public static final class CountSumAcc {
        public long count;
        public long sum;
    }

    /** Count and sum of amounts, as bench-windows' CountSum. */
    public static final class CountSum implements AggregateFunction<Txn, CountSumAcc, Long> {
        @Override public CountSumAcc createAccumulator() { return new CountSumAcc(); }
        @Override public CountSumAcc add(Txn t, CountSumAcc acc) { acc.count += 1; acc.sum += t.amountCents; return acc; }
        @Override public Long getResult(CountSumAcc acc) { return acc.count + acc.sum; }
        @Override public CountSumAcc merge(CountSumAcc a, CountSumAcc b) {
            CountSumAcc m = new CountSumAcc();
            m.count = a.count + b.count;
            m.sum = a.sum + b.sum;
            return m;
        }
    }

    public static final class JoinSum extends ProcessJoinFunction<Txn, Txn, Long> {
        @Override public void processElement(Txn l, Txn r, Context ctx, Collector<Long> out) {
            out.collect(l.amountCents + r.amountCents);
        }
    }

    static final class ByCard implements KeySelector<Txn, Long> {
        @Override public Long getKey(Txn t) { return t.card; }
    }

    /** Sequence number j → the bench's record: j's event time is j ms. */
    static final class TxnGenerator implements GeneratorFunction<Long, Txn> {
        final long records;
        final long keys;

        TxnGenerator(long records, long keys) {
            this.records = records;
            this.keys = keys;
        }

        @Override public Txn map(Long j) {
            // bench-windows: split 0 holds i < half at ts 2i, split 1 holds i ≥ half at ts 2(i-half)+1.
            long half = records / 2;
            long i = (j % 2 == 0) ? j / 2 : half + j / 2;
            return new Txn((i * 7919) % keys, i & 1023, j);
        }
    }

    static KeyedStream<Txn, Long> transactions(StreamExecutionEnvironment env, long records, long keys) {
        DataGeneratorSource<Txn> source =
            new DataGeneratorSource<>(new TxnGenerator(records, keys), records, TypeInformation.of(Txn.class));
        WatermarkStrategy<Txn> wm = WatermarkStrategy.<Txn>forBoundedOutOfOrderness(Duration.ofSeconds(5))
            .withTimestampAssigner((t, previous) -> t.ts);
        return env.fromSource(source, wm, "Generator").keyBy(new ByCard());
    }

    static void windowed(StreamExecutionEnvironment env, WindowAssigner<Object, TimeWindow> assigner, long records, long keys) {
        transactions(env, records, keys).window(assigner).aggregate(new CountSum()).sinkTo(new DiscardingSink<>());
    }

    static void intervalJoin(StreamExecutionEnvironment env, long records, long keys) {
        KeyedStream<Txn, Long> left = transactions(env, records / 2, keys);
        KeyedStream<Txn, Long> right = transactions(env, records / 2, keys);
        left.intervalJoin(right).between(Duration.ofMinutes(-5), Duration.ZERO).process(new JoinSum())
            .sinkTo(new DiscardingSink<>());
    }

    public static void main(String[] args) throws Exception {
        long records = 10_000_000L;
        long keys = 10_000L;
        String only = null;
        String jsonPath = null;
        List<Integer> parallelisms = List.of(1);
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--records": records = Long.parseLong(args[++a]); break;
                case "--keys": keys = Long.parseLong(args[++a]); break;
                case "--only": only = args[++a]; break;
                case "--parallelism": parallelisms = List.of(Integer.parseInt(args[++a])); break;
                case "--json": jsonPath = args[++a]; break;
                default:
                    System.err.println("unknown argument " + args[a]
                        + "; usage: BenchJobs [--records N] [--keys K] [--only tumbling-5m|sliding-30m-5m|session-30m|interval-join] [--parallelism P] [--json PATH]");
                    System.exit(2);
            }
        }
        String[] cases = {"tumbling-5m", "sliding-30m-5m", "session-30m", "interval-join"};
        List<String> json = new ArrayList<>();
        for (int p : parallelisms) {
            for (String name : cases) {
                if (only != null && !only.equals(name)) continue;
                Configuration conf = new Configuration();
                conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ofMillis(200));
                StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
                env.setParallelism(p);
                switch (name) {
                    case "tumbling-5m": windowed(env, TumblingEventTimeWindows.of(Duration.ofMinutes(5)), records, keys); break;
                    case "sliding-30m-5m": windowed(env, SlidingEventTimeWindows.of(Duration.ofMinutes(30), Duration.ofMinutes(5)), records, keys); break;
                    case "session-30m": windowed(env, EventTimeSessionWindows.withGap(Duration.ofMinutes(30)), records, keys); break;
                    case "interval-join": intervalJoin(env, records, keys); break;
                    default: throw new IllegalStateException(name);
                }
                JobExecutionResult result = env.execute(name);
                double seconds = result.getNetRuntime() / 1000.0;
                double rate = records / seconds;
                System.out.printf("flink %-16s p=%d records=%d seconds=%.3f records/s=%.0f%n", name, p, records, seconds, rate);
                json.add(String.format("{\"name\":\"%s\",\"parallelism\":%d,\"records\":%d,\"seconds\":%.6f,\"recordsPerSecond\":%.1f}",
                    name, p, records, seconds, rate));
            }
        }
        if (jsonPath != null) {
            java.nio.file.Files.writeString(java.nio.file.Path.of(jsonPath), "[" + String.join(",\n", json) + "]\n");
        }
    }
}
