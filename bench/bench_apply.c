/* bench-apply: what the store's apply costs per record, in this process:
 * APPEND entries of keyed batches (keys k0, k1, ... in turn, as `tally
 * bench produce --keys`; 100-byte values) applied to a fresh store in a
 * temporary directory (page cache writes, no fsync), timed with the
 * process's CPU clock around store_apply only (building the batches is
 * not counted). Runs next to nothing else of tally (no Raft, no network),
 * so two builds compare without the noise of a shared machine: run each
 * build's binary in turn (docs/performance.md, Streams).
 *
 *   bench-apply [RECORDS (1000000)] [KEYS (100000)] [PER_BATCH (2000)] [DIR (/tmp)]
 *
 * Prints `apply_cpu_s_per_M=S records=N keys=K per_batch=B`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "store/command.h"
#include "store/store.h"

static double bench_apply__cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_apply__one(struct store *s, uint64_t index, const struct buf *e,
                            double *spent, char *errmsg)
{
    struct store_result *res = NULL;
    double t0 = bench_apply__cpu();
    int rv = store_apply(s, index, e->data, e->len, &res, errmsg);
    *spent += bench_apply__cpu() - t0;
    if (rv == 0 && res->items[0].code != 0) {
        snprintf(errmsg, ERR_MSG_SIZE, "item refused: %d", res->items[0].code);
        rv = res->items[0].code;
    }
    free(res);
    return rv;
}

int main(int argc, char **argv)
{
    unsigned long records = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned long keys = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    unsigned long per_batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;
    const char *parent = argc > 4 ? argv[4] : "/tmp";
    char dir[4096], errmsg[ERR_MSG_SIZE];
    struct store *s = NULL;
    struct log_config lc;
    struct buf e;
    double spent = 0, ignored = 0;
    uint64_t index = 1;
    int rv;

    if (records == 0 || keys == 0 || per_batch == 0 || per_batch > 100000) {
        fprintf(stderr, "usage: bench-apply [RECORDS] [KEYS] [PER_BATCH (1..100000)] [DIR]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/bench-apply-XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    log_config_init(&lc);
    buf_init(&e);
    rv = store_open(dir, &lc, &s, errmsg);
    if (rv == 0) {
        struct command_topic_config c;
        memset(&c, 0, sizeof c);
        c.policy = TALLY_POLICY_RETAIN;
        c.retention_ms = -1;
        c.retention_bytes = -1;
        command_encode_topic_create(&e, "t", &c);
        rv = bench_apply__one(s, ++index, &e, &ignored, errmsg);
    }
    char value[100];
    memset(value, 'v', sizeof value);
    unsigned long k = 0;
    for (unsigned long done = 0; rv == 0 && done < records; done += per_batch) {
        struct batch_builder b;
        struct buf out;
        batch_builder_init(&b, 0, 0);
        buf_init(&out);
        for (unsigned long i = 0; rv == 0 && i < per_batch; i++) {
            char key[24];
            int n = snprintf(key, sizeof key, "k%lu", k++ % keys);
            rv = batch_builder_add(&b, key, (size_t)n, value, sizeof value);
        }
        if (rv == 0) {
            rv = batch_builder_finish(&b, false, &out);
        }
        if (rv == 0) {
            batch_stamp(out.data, 0, 1700000000000, 0);
            e.len = 0;
            command_append_begin(&e);
            command_append_add(&e, "t", out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
            command_append_end(&e, 1);
            rv = buf_ok(&e) ? bench_apply__one(s, ++index, &e, &spent, errmsg) : TALLY_NOMEM;
        }
        batch_builder_free(&b);
        buf_free(&out);
    }
    if (rv == 0) {
        printf("apply_cpu_s_per_M=%.4f records=%lu keys=%lu per_batch=%lu\n",
               spent * 1e6 / (double)records, records, keys, per_batch);
    } else {
        fprintf(stderr, "bench-apply: %s (%d)\n", errmsg, rv);
    }
    buf_free(&e);
    if (s != NULL) {
        store_close(s);
    }
    if (fs_remove_tree(dir, errmsg) != 0) {
        fprintf(stderr, "bench-apply: %s\n", errmsg);
    }
    return rv == 0 ? 0 : 1;
}
