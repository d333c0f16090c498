/* idem_producer: an idempotent librdkafka producer for the Kafka tests.
 *
 *   idem-producer BOOTSTRAP TOPIC COUNT SIZE
 *
 * Produces COUNT messages to TOPIC with enable.idempotence=true and
 * acks=all; message i has key "k<i>" and a SIZE-byte value starting with
 * "<i>:" (i from 0). Prints "delivered I OFFSET" for every message the
 * cluster acknowledged and "failed I ERROR" for every one it did not; exits
 * 0 when all were delivered, 1 otherwise (2: usage or setup). The test
 * kills the leader meanwhile and checks the topic on every node
 * (test/integration/test_kafka_idempotent.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    long i = (long)(intptr_t)m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        printf("delivered %ld %lld\n", i, (long long)m->offset);
        delivered++;
    } else {
        printf("failed %ld %s\n", i, rd_kafka_err2str(m->err));
        failed++;
    }
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "idem-producer: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc != 5) {
        fprintf(stderr, "usage: idem-producer BOOTSTRAP TOPIC COUNT SIZE\n");
        return 2;
    }
    long count = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", argv[1]) != 0 ||
        set(conf, "enable.idempotence", "true") != 0 || set(conf, "acks", "all") != 0 ||
        set(conf, "message.timeout.ms", "120000") != 0 || set(conf, "linger.ms", "5") != 0 ||
        set(conf, "socket.timeout.ms", "3000") != 0 ||
        set(conf, "topic.metadata.refresh.interval.ms", "1000") != 0) {
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "idem-producer: %s\n", err);
        return 2;
    }
    char *value = malloc(size + 32);
    if (value == NULL) {
        return 2;
    }
    for (long i = 0; i < count; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "k%ld", i);
        int vl = snprintf(value, size + 32, "%ld:", i);
        size_t len = (size_t)vl < size ? size : (size_t)vl;
        memset(value + vl, 'x', len - (size_t)vl);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(key, (size_t)kl),
                RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 50);
                continue;
            }
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fprintf(stderr, "idem-producer: produce %ld: %s\n", i, rd_kafka_err2str(e));
                free(value);
                rd_kafka_destroy(rk);
                return 2;
            }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    /* Bounded: message.timeout.ms fails what is still not delivered. */
    while (rd_kafka_outq_len(rk) > 0 && delivered + failed < count) {
        rd_kafka_poll(rk, 100);
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, err, sizeof err);
    if (fatal != RD_KAFKA_RESP_ERR_NO_ERROR) {
        printf("fatal %s\n", err);
    }
    fflush(stdout);
    free(value);
    rd_kafka_destroy(rk);
    fprintf(stderr, "idem-producer: %ld delivered, %ld failed\n", delivered, failed);
    return failed == 0 && delivered == count && fatal == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : 1;
}
