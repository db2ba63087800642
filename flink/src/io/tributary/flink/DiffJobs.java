package io.tributary.flink;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.datastream.WindowedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.co.ProcessJoinFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.windows.GlobalWindow;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The reference side of the differential test (scripts/flink-diff.py): the same jobs as
 * Tools/FlinkDiff (Tributary), run on Apache Flink 2.3 at parallelism 1, reading the generated
 * events and writing one CSV file per job output.
 *
 * Flink SQL for TUMBLE, HOP, OVER and the interval join (watermark `rt - INTERVAL b`, emitted after
 * every record that raises it: auto-watermark-interval 0); the DataStream API for allowed lateness,
 * late side outputs, session windows, count windows and timers, with a watermark generator that
 * emits `maxTs - b - 1` after every record that raises it (what forBoundedOutOfOrderness emits at
 * interval 0 on our side).
 *
 * Usage: DiffJobs --input DIR --output DIR --bound-ms B --lateness-ms L [--only JOB]
 * DIR holds events.csv (key,ts,value in arrival order) and right.csv (the join's right side).
 */
public final class DiffJobs {

    /** One input row (a Flink POJO). */
    public static final class Event {
        public long k;
        public long ts;
        public long v;

        public Event() {}

        Event(long k, long ts, long v) {
            this.k = k;
            this.ts = ts;
            this.v = v;
        }
    }

    public static final class Acc {
        public long count;
        public long sum;
    }

    public static final class CountSum implements AggregateFunction<Event, Acc, Acc> {
        @Override public Acc createAccumulator() { return new Acc(); }
        @Override public Acc add(Event e, Acc a) { a.count += 1; a.sum += e.v; return a; }
        @Override public Acc getResult(Acc a) { return a; }
        @Override public Acc merge(Acc a, Acc b) { Acc m = new Acc(); m.count = a.count + b.count; m.sum = a.sum + b.sum; return m; }
    }

    /** k,start,end,count,sum,watermark — one row per firing. */
    public static final class WindowRow extends ProcessWindowFunction<Acc, String, Long, TimeWindow> {
        @Override public void process(Long key, Context ctx, Iterable<Acc> elements, Collector<String> out) {
            Acc a = elements.iterator().next();
            out.collect(key + "," + ctx.window().getStart() + "," + ctx.window().getEnd() + "," + a.count + "," + a.sum
                + "," + ctx.currentWatermark());
        }
    }

    /** k,count,sum per count-window firing. */
    public static final class CountWindowRow extends ProcessWindowFunction<Acc, String, Long, GlobalWindow> {
        @Override public void process(Long key, Context ctx, Iterable<Acc> elements, Collector<String> out) {
            Acc a = elements.iterator().next();
            out.collect(key + "," + a.count + "," + a.sum);
        }
    }

    /**
     * Per key: counts records; each record registers an event-time timer at ts + 3000 (a late
     * record's timer may already be behind the watermark); a timer emits k,timerTs,count,watermark.
     */
    public static final class Timers extends KeyedProcessFunction<Long, Event, String> {
        transient ValueState<Long> count;

        @Override public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
        }

        @Override public void processElement(Event e, Context ctx, Collector<String> out) throws Exception {
            Long c = count.value();
            count.update(c == null ? 1 : c + 1);
            ctx.timerService().registerEventTimeTimer(e.ts + 3000);
        }

        @Override public void onTimer(long t, OnTimerContext ctx, Collector<String> out) throws Exception {
            out.collect(ctx.getCurrentKey() + "," + t + "," + count.value() + "," + ctx.timerService().currentWatermark());
        }
    }

    public static final class JoinRow extends ProcessJoinFunction<Event, Event, String> {
        @Override public void processElement(Event l, Event r, Context ctx, Collector<String> out) {
            out.collect(l.k + "," + l.ts + "," + l.v + "," + r.ts + "," + r.v);
        }
    }

    static final class ByKey implements KeySelector<Event, Long> {
        @Override public Long getKey(Event e) { return e.k; }
    }

    /** Emits maxTs - bound - 1 after every record that raises it (no periodic emission). */
    static final class PerRecordBoundedOutOfOrderness implements WatermarkGenerator<Event> {
        final long bound;
        long maxTs;
        long emitted = Long.MIN_VALUE;

        PerRecordBoundedOutOfOrderness(long bound) {
            this.bound = bound;
            this.maxTs = Long.MIN_VALUE + bound + 1;
        }

        @Override public void onEvent(Event e, long ts, WatermarkOutput out) {
            maxTs = Math.max(maxTs, ts);
            long wm = maxTs - bound - 1;
            if (wm > emitted) {
                emitted = wm;
                out.emitWatermark(new Watermark(wm));
            }
        }

        @Override public void onPeriodicEmit(WatermarkOutput out) {}
    }

    /** Index → event, from the rows read from the input file. */
    static final class FromRows implements GeneratorFunction<Long, Event> {
        final long[] rows;

        FromRows(long[] rows) { this.rows = rows; }

        @Override public Event map(Long i) {
            int at = (int) (i * 3);
            return new Event(rows[at], rows[at + 1], rows[at + 2]);
        }
    }

    static long[] read(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file);
        long[] rows = new long[lines.size() * 3];
        int n = 0;
        for (String line : lines) {
            if (line.isBlank()) continue;
            String[] f = line.split(",");
            rows[n++] = Long.parseLong(f[0]);
            rows[n++] = Long.parseLong(f[1]);
            rows[n++] = Long.parseLong(f[2]);
        }
        return java.util.Arrays.copyOf(rows, n);
    }

    static DataStream<Event> source(StreamExecutionEnvironment env, long[] rows, WatermarkStrategy<Event> wm, String name) {
        DataGeneratorSource<Event> src =
            new DataGeneratorSource<>(new FromRows(rows), rows.length / 3, TypeInformation.of(Event.class));
        return env.fromSource(src, wm, name);
    }

    static StreamExecutionEnvironment newEnv() {
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ZERO);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(1);
        return env;
    }

    static void write(Path out, String job, List<String> rows) throws IOException {
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(out.resolve(job + ".csv")))) {
            for (String r : rows) w.println(r);
        }
    }

    static long epochMillis(Object o) {
        if (o instanceof LocalDateTime) return ((LocalDateTime) o).toInstant(ZoneOffset.UTC).toEpochMilli();
        if (o instanceof Instant) return ((Instant) o).toEpochMilli();
        throw new IllegalArgumentException("not a timestamp: " + o);
    }

    static List<String> collectSql(TableResult result, int timestampColumnsFrom, int timestampColumnsTo) throws Exception {
        List<String> rows = new ArrayList<>();
        try (CloseableIterator<Row> it = result.collect()) {
            while (it.hasNext()) {
                Row r = it.next();
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < r.getArity(); i++) {
                    if (i > 0) sb.append(',');
                    Object f = r.getField(i);
                    if (i >= timestampColumnsFrom && i < timestampColumnsTo) sb.append(epochMillis(f));
                    else sb.append(f);
                }
                rows.add(sb.toString());
            }
        }
        return rows;
    }

    static String seconds(long ms) {
        if (ms % 1000 != 0) throw new IllegalArgumentException("SQL intervals here are whole seconds, got " + ms + " ms");
        return "INTERVAL '" + (ms / 1000) + "' SECOND";
    }

    static Table table(StreamTableEnvironment tEnv, StreamExecutionEnvironment env, long[] rows, long bound, String name) {
        DataStream<Event> ds = source(env, rows, WatermarkStrategy.noWatermarks(), name);
        return tEnv.fromDataStream(ds, Schema.newBuilder()
            .columnByExpression("rt", "TO_TIMESTAMP_LTZ(ts, 3)")
            .watermark("rt", "rt - " + seconds(bound))
            .build());
    }

    static StreamTableEnvironment sqlEnv(StreamExecutionEnvironment env) {
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
        tEnv.getConfig().setLocalTimeZone(ZoneOffset.UTC);
        return tEnv;
    }

    public static void main(String[] args) throws Exception {
        Path input = null, output = null;
        long bound = 2000, lateness = 5000;
        String only = null;
        for (int a = 0; a < args.length; a++) {
            switch (args[a]) {
                case "--input": input = Path.of(args[++a]); break;
                case "--output": output = Path.of(args[++a]); break;
                case "--bound-ms": bound = Long.parseLong(args[++a]); break;
                case "--lateness-ms": lateness = Long.parseLong(args[++a]); break;
                case "--only": only = args[++a]; break;
                default:
                    System.err.println("unknown argument " + args[a] + "; usage: DiffJobs --input DIR --output DIR [--bound-ms B] [--lateness-ms L] [--only JOB]");
                    System.exit(2);
            }
        }
        if (input == null || output == null) {
            System.err.println("DiffJobs needs --input DIR and --output DIR");
            System.exit(2);
        }
        Files.createDirectories(output);
        long[] events = read(input.resolve("events.csv"));
        long[] right = read(input.resolve("right.csv"));
        final long b = bound;
        WatermarkStrategy<Event> perRecord = WatermarkStrategy.<Event>forGenerator(ctx -> new PerRecordBoundedOutOfOrderness(b))
            .withTimestampAssigner((e, previous) -> e.ts);

        String[] jobs = {"sql-tumble", "sql-hop", "sql-over", "sql-join", "ds-tumble", "ds-slide", "ds-session",
                         "ds-timers", "ds-count", "ds-count-sliding", "ds-join"};
        for (String job : jobs) {
            if (only != null && !only.equals(job)) continue;
            long t0 = System.nanoTime();
            StreamExecutionEnvironment env = newEnv();
            switch (job) {
                case "sql-tumble":
                case "sql-hop": {
                    StreamTableEnvironment tEnv = sqlEnv(env);
                    tEnv.createTemporaryView("events", table(tEnv, env, events, bound, "events"));
                    String tvf = job.equals("sql-tumble")
                        ? "TUMBLE(TABLE events, DESCRIPTOR(rt), INTERVAL '10' SECOND)"
                        : "HOP(TABLE events, DESCRIPTOR(rt), INTERVAL '10' SECOND, INTERVAL '30' SECOND)";
                    TableResult r = tEnv.executeSql("SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TABLE(" + tvf
                        + ") GROUP BY k, window_start, window_end");
                    write(output, job, collectSql(r, 1, 3));
                    break;
                }
                case "sql-over": {
                    StreamTableEnvironment tEnv = sqlEnv(env);
                    tEnv.createTemporaryView("events", table(tEnv, env, events, bound, "events"));
                    TableResult r = tEnv.executeSql("SELECT k, ts, v, COUNT(v) OVER w, SUM(v) OVER w, MIN(v) OVER w, MAX(v) OVER w"
                        + " FROM events WINDOW w AS (PARTITION BY k ORDER BY rt RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)");
                    write(output, job, collectSql(r, 0, 0));
                    break;
                }
                case "sql-join": {
                    StreamTableEnvironment tEnv = sqlEnv(env);
                    tEnv.createTemporaryView("l", table(tEnv, env, events, bound, "left"));
                    tEnv.createTemporaryView("r", table(tEnv, env, right, bound, "right"));
                    // r.ts ∈ [l.ts - 5 s, l.ts + 1 s], both bounds inclusive.
                    TableResult r = tEnv.executeSql("SELECT l.k, l.ts, l.v, r.ts, r.v FROM l, r WHERE l.k = r.k"
                        + " AND r.rt BETWEEN l.rt - INTERVAL '5' SECOND AND l.rt + INTERVAL '1' SECOND");
                    write(output, job, collectSql(r, 0, 0));
                    break;
                }
                case "ds-tumble":
                case "ds-slide":
                case "ds-session": {
                    WindowAssigner<Object, TimeWindow> assigner =
                        job.equals("ds-tumble") ? TumblingEventTimeWindows.of(Duration.ofSeconds(10))
                        : job.equals("ds-slide") ? SlidingEventTimeWindows.of(Duration.ofSeconds(30), Duration.ofSeconds(10))
                        : EventTimeSessionWindows.withGap(Duration.ofSeconds(5));
                    OutputTag<Event> lateTag = new OutputTag<Event>("late") {};
                    SingleOutputStreamOperator<String> fired = source(env, events, perRecord, "events").keyBy(new ByKey())
                        .window(assigner).allowedLateness(Duration.ofMillis(lateness)).sideOutputLateData(lateTag)
                        .aggregate(new CountSum(), new WindowRow());
                    DataStream<String> late = fired.getSideOutput(lateTag).map(e -> "late," + e.k + "," + e.ts + "," + e.v);
                    List<String> rows = new ArrayList<>();
                    try (CloseableIterator<String> it = fired.union(late).executeAndCollect(job)) {
                        it.forEachRemaining(rows::add);
                    }
                    write(output, job, rows);
                    break;
                }
                case "ds-timers": {
                    DataStream<String> fired = source(env, events, perRecord, "events").keyBy(new ByKey()).process(new Timers());
                    List<String> rows = new ArrayList<>();
                    try (CloseableIterator<String> it = fired.executeAndCollect(job)) { it.forEachRemaining(rows::add); }
                    write(output, job, rows);
                    break;
                }
                case "ds-count":
                case "ds-count-sliding": {
                    KeyedStream<Event, Long> keyed = source(env, events, perRecord, "events").keyBy(new ByKey());
                    WindowedStream<Event, Long, GlobalWindow> w = job.equals("ds-count") ? keyed.countWindow(3) : keyed.countWindow(4, 2);
                    List<String> rows = new ArrayList<>();
                    try (CloseableIterator<String> it = w.aggregate(new CountSum(), new CountWindowRow()).executeAndCollect(job)) {
                        it.forEachRemaining(rows::add);
                    }
                    write(output, job, rows);
                    break;
                }
                case "ds-join": {
                    KeyedStream<Event, Long> l = source(env, events, perRecord, "left").keyBy(new ByKey());
                    KeyedStream<Event, Long> r = source(env, right, perRecord, "right").keyBy(new ByKey());
                    // r.ts ∈ [l.ts - 5 s, l.ts + 1 s), the upper bound exclusive.
                    DataStream<String> joined = l.intervalJoin(r).between(Duration.ofSeconds(-5), Duration.ofSeconds(1))
                        .upperBoundExclusive().process(new JoinRow());
                    List<String> rows = new ArrayList<>();
                    try (CloseableIterator<String> it = joined.executeAndCollect(job)) { it.forEachRemaining(rows::add); }
                    write(output, job, rows);
                    break;
                }
                default: throw new IllegalStateException(job);
            }
            System.out.printf("flink %-17s %6d ms%n", job, (System.nanoTime() - t0) / 1_000_000);
        }
    }
}
