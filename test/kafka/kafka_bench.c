/* kafka-bench: librdkafka throughput against a Kafka listener, for
 * bench/kafka.sh (never part of make check's pass/fail).
 *
 *   kafka-bench produce BOOTSTRAP TOPIC COUNT SIZE
 *   kafka-bench consume BOOTSTRAP TOPIC COUNT
 *
 * produce: COUNT messages of SIZE random bytes each (different for every
 * message, so no compression helps), enable.idempotence=true,
 * acks=all, librdkafka's default batching plus linger.ms=5; the clock runs
 * from the first produce call until every delivery report is in.
 * consume: assign partition 0 from offset 0 and read COUNT messages, in
 * batches (rd_kafka_consume_batch_queue), up to 4 MiB per fetch like the
 * native `tally bench consume`.
 * Last line: 'msgs/s=... MB/s=...' (MB/s of values). Exit 0, or 1 when a
 * message failed or the consume ran 60 s without a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static long done, failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    done++;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failed++;
    }
}

static rd_kafka_conf_t *conf_new(const char *bootstrap, const char *const *kv)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) != 0) {
        fprintf(stderr, "kafka-bench: %s\n", err);
        exit(2);
    }
    for (; kv[0] != NULL; kv += 2) {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof err) != 0) {
            fprintf(stderr, "kafka-bench: %s=%s: %s\n", kv[0], kv[1], err);
            exit(2);
        }
    }
    return conf;
}

static int bench_produce(const char *bootstrap, const char *topic, long count, size_t size)
{
    static const char *const kv[] = {"enable.idempotence", "true", "acks", "all",
                                     "linger.ms", "5", "queue.buffering.max.messages",
                                     "1000000", NULL};
    char err[256];
    rd_kafka_conf_t *conf = conf_new(bootstrap, kv);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "kafka-bench: %s\n", err);
        return 2;
    }
    uint8_t *value = malloc(size + 8);
    uint64_t x = 88172645463325252u;
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        /* Random bytes per message, as tally bench produce writes: neither
         * tally's lz4 nor anything else can shrink them. */
        for (size_t k = 0; k < size; k += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(value + k, &x, 8);
        }
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(value, size),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    double secs = now_s() - t0;
    free(value);
    rd_kafka_destroy(rk);
    printf("msgs/s=%.0f MB/s=%.1f failed=%ld\n", (double)count / secs,
           (double)count * (double)size / secs / 1e6, failed + (count - done));
    return failed == 0 && done == count ? 0 : 1;
}

static int bench_consume(const char *bootstrap, const char *topic, long count)
{
    static const char *const kv[] = {"group.id", "kafka-bench", "enable.auto.commit", "false",
                                     "fetch.max.bytes", "4194304",
                                     "max.partition.fetch.bytes", "4194304", NULL};
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf_new(bootstrap, kv), err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "kafka-bench: %s\n", err);
        return 2;
    }
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = 0;
    rd_kafka_assign(rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    long got = 0;
    size_t bytes = 0;
    double t0 = 0, last = now_s();
    /* Messages are taken in batches, as a fast application would: one
     * rd_kafka_consumer_poll() per message costs the client more than the
     * whole fetch path costs the server. */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *msgs[4096];
    while (got < count && now_s() - last < 60) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, 4096);
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (got == 0) {
                    t0 = now_s();
                }
                got++;
                bytes += msgs[i]->len;
                last = now_s();
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    rd_kafka_queue_destroy(q);
    double secs = now_s() - t0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    printf("msgs/s=%.0f MB/s=%.1f got=%ld\n", (double)got / secs, (double)bytes / secs / 1e6,
           got);
    return got == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "produce") == 0) {
        return bench_produce(argv[2], argv[3], atol(argv[4]), (size_t)atol(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "consume") == 0) {
        return bench_consume(argv[2], argv[3], atol(argv[4]));
    }
    fprintf(stderr, "usage: kafka-bench produce BOOTSTRAP TOPIC COUNT SIZE\n"
                    "       kafka-bench consume BOOTSTRAP TOPIC COUNT\n");
    return 2;
}
