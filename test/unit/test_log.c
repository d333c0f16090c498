/* Unit tests of the segmented log (src/log/): append, read, roll, index,
 * recovery from torn and corrupt files, truncation, retention, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "log/log.h"
#include "../lib/tmpdir.h"

/* ------------------------------------------------------------------------
 * Fixture and helpers
 * ------------------------------------------------------------------------ */

struct fixture {
    char *dir;
    struct log_config cfg;
    struct tally_log *l;
    char errmsg[ERR_MSG_SIZE];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tmpdir_make();
    log_config_init(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fs_fault_reset();
    log_close(f->l);
    tmpdir_remove(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void open_log(struct fixture *f, uint64_t start)
{
    int rv = log_open(f->dir, &f->cfg, start, &f->l, f->errmsg);
    if (rv != 0) {
        fail_msg("log_open: %s (%s)", f->errmsg, err_name(rv));
    }
}

static void reopen_log(struct fixture *f)
{
    log_close(f->l);
    f->l = NULL;
    open_log(f, 0);
}

static void close_log(struct fixture *f)
{
    log_close(f->l);
    f->l = NULL;
}

/* Build a stamped batch of @n records with values of @vsize bytes (value
 * bytes derive from the offset, so reads can be checked). */
static void make_batch(struct buf *out, uint64_t base, int64_t ts, uint64_t raft_index,
                       unsigned n, size_t vsize, bool compress)
{
    struct batch_builder b;
    uint8_t *val = malloc(vsize ? vsize : 1);
    batch_builder_init(&b, 7, base);
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "k%llu", (unsigned long long)(base + i));
        for (size_t j = 0; j < vsize; j++) {
            val[j] = (uint8_t)(base + i + j);
        }
        assert_int_equal(batch_builder_add(&b, key, (size_t)klen, val, vsize), 0);
    }
    out->len = 0;
    assert_int_equal(batch_builder_finish(&b, compress, out), 0);
    batch_stamp(out->data, base, ts, raft_index);
    batch_builder_free(&b);
    free(val);
}

/* Append one batch of @n records at the log's next offset. */
static void append(struct fixture *f, unsigned n, size_t vsize, int64_t ts)
{
    struct buf b;
    int rv;
    buf_init(&b);
    make_batch(&b, log_next_offset(f->l), ts, log_next_offset(f->l) + 1, n, vsize, false);
    rv = log_append(f->l, b.data, b.len, ts, f->errmsg);
    if (rv != 0) {
        fail_msg("log_append: %s (%s)", f->errmsg, err_name(rv));
    }
    buf_free(&b);
}

/* Read every record from the start, with a small byte limit so that many
 * reads and segment boundaries are crossed; check offsets are dense and
 * values are those make_batch wrote. Returns the number of records. */
static uint64_t check_all(struct fixture *f, size_t max_bytes)
{
    uint64_t off = log_start_offset(f->l), expect = off, count = 0;
    while (off < log_next_offset(f->l)) {
        void *data;
        size_t len, done = 0;
        uint64_t next;
        int rv = log_read_copy(f->l, off, max_bytes, &data, &len, &next, f->errmsg);
        if (rv != 0) {
            fail_msg("log_read_copy at %llu: %s", (unsigned long long)off, f->errmsg);
        }
        assert_true(len > 0);
        assert_true(next > off);
        while (done < len) {
            struct batch_iter it;
            struct batch_record rec;
            uint32_t blen = byte_get_u32((uint8_t *)data + done + 8);
            assert_int_equal(batch_iter_init(&it, (uint8_t *)data + done, blen, f->errmsg), 0);
            while (batch_iter_next(&it, &rec, f->errmsg) == 0) {
                if (rec.offset < off) {
                    continue; /* the batch may start before the offset asked */
                }
                assert_int_equal(rec.offset, expect);
                if (rec.value_len > 0) {
                    assert_int_equal(rec.value[0], (uint8_t)rec.offset);
                }
                expect++;
                count++;
            }
            batch_iter_close(&it);
            done += blen;
        }
        assert_int_equal(expect, next);
        free(data);
        off = next;
    }
    assert_int_equal(expect, log_next_offset(f->l));
    return count;
}

/* Path of a file of the log; the result is overwritten by the next call. */
static char *path_of(struct fixture *f, uint64_t base, const char *ext)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%020llu.%s", f->dir, (unsigned long long)base, ext);
    return path;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    long n;
    uint8_t *p;
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, len, fp), len);
    fclose(fp);
}

static void flip_byte(const char *path, long pos)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, pos), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, pos), 1);
    close(fd);
}

/* Positions of the batches of a segment file, found by walking lengths. */
static size_t batch_positions(const char *path, long *pos, size_t max)
{
    size_t len, n = 0, p = 32;
    uint8_t *data = read_file(path, &len);
    while (p + BATCH_HEADER_SIZE <= len && n < max) {
        pos[n++] = (long)p;
        p += byte_get_u32(data + p + 8);
    }
    free(data);
    return n;
}

struct reports {
    int n;
    char file[64];
    uint64_t pos;
    char msg[ERR_MSG_SIZE];
};

static void collect(void *arg, const char *file, uint64_t pos, const char *msg)
{
    struct reports *r = arg;
    if (r->n++ == 0) {
        snprintf(r->file, sizeof r->file, "%s", file);
        r->pos = pos;
        snprintf(r->msg, sizeof r->msg, "%s", msg);
    }
}

/* ------------------------------------------------------------------------
 * Basics and round trips
 * ------------------------------------------------------------------------ */

/* A new log is empty, starts at the given offset and has one segment named by it. */
static void test_open_empty(void **state)
{
    struct fixture *f = *state;
    open_log(f, 100);
    assert_int_equal(log_next_offset(f->l), 100);
    assert_int_equal(log_start_offset(f->l), 100);
    assert_int_equal(log_segment_count(f->l), 1);
    assert_int_equal(log_last_raft_index(f->l), 0);
    assert_true(file_exists(path_of(f, 100, "seg")));
    reopen_log(f);
    assert_int_equal(log_next_offset(f->l), 100);
}

/* Every record shape survives builder -> log -> read -> iterator, compressed or not, across a reopen. */
static void test_roundtrip_shapes(void **state)
{
    struct fixture *f = *state;
    static const uint8_t bin_key[] = {0, 1, 0, 255, 0};
    size_t big_len = 1u << 20;
    uint8_t *big = malloc(big_len);
    struct batch_kv hdrs[2] = {{(const uint8_t *)"h1", 2, (const uint8_t *)"v1", 2},
                               {(const uint8_t *)"empty", 5, (const uint8_t *)"", 0}};
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    }
    open_log(f, 0);
    for (int pass = 0; pass < 2; pass++) {
        bool compress = pass == 1;
        struct batch_builder b;
        struct buf out;
        uint64_t base = log_next_offset(f->l);
        batch_builder_init(&b, 42, 9);
        assert_int_equal(batch_builder_add(&b, "k", 1, "", 0), 0);       /* empty value */
        assert_int_equal(batch_builder_add(&b, "k", 1, NULL, 0), 0);     /* tombstone */
        assert_int_equal(batch_builder_add(&b, NULL, 0, "v", 1), 0);     /* no key */
        assert_int_equal(batch_builder_add(&b, bin_key, sizeof bin_key, bin_key, 3), 0);
        assert_int_equal(batch_builder_add(&b, "big", 3, big, big_len), 0);
        assert_int_equal(batch_builder_add_at(&b, 5, 3, "h", 1, "x", 1, hdrs, 2), 0);
        buf_init(&out);
        assert_int_equal(batch_builder_finish(&b, compress, &out), 0);
        assert_int_equal((out.data[5] & BATCH_FLAG_LZ4) != 0, compress);
        batch_stamp(out.data, base, 1000 + pass, 77 + (uint64_t)pass);
        assert_int_equal(log_append(f->l, out.data, out.len, 1000, f->errmsg), 0);
        buf_free(&out);
        batch_builder_free(&b);
    }
    for (int round = 0; round < 2; round++) {
        uint64_t off = 0;
        for (int pass = 0; pass < 2; pass++) {
            void *data;
            size_t len;
            uint64_t next;
            struct batch_iter it;
            struct batch_record r;
            struct batch_headers hr;
            struct batch_kv kv;
            assert_int_equal(log_read_copy(f->l, off, 1, &data, &len, &next, f->errmsg), 0);
            assert_int_equal(next, off + 6);
            assert_int_equal(batch_iter_init(&it, data, len, f->errmsg), 0);
            assert_int_equal(it.h.producer_id, 42);
            assert_int_equal(it.h.raft_index, 77 + (uint64_t)pass);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_int_equal(r.offset, off);
            assert_memory_equal(r.key, "k", 1);
            assert_non_null(r.value);
            assert_int_equal(r.value_len, 0);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_null(r.value);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_null(r.key);
            assert_memory_equal(r.value, "v", 1);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_int_equal(r.key_len, sizeof bin_key);
            assert_memory_equal(r.key, bin_key, sizeof bin_key);
            assert_int_equal(r.value_len, 3);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_int_equal(r.value_len, big_len);
            assert_memory_equal(r.value, big, big_len);
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), 0);
            assert_int_equal(r.offset, off + 5);
            assert_int_equal(r.timestamp, 1000 + pass + 3);
            assert_int_equal(r.header_count, 2);
            batch_headers_init(&hr, r.headers, r.headers_len, r.header_nulls);
            assert_true(batch_headers_next(&hr, &kv));
            assert_memory_equal(kv.name, "h1", 2);
            assert_memory_equal(kv.value, "v1", 2);
            assert_true(batch_headers_next(&hr, &kv));
            assert_int_equal(kv.value_len, 0);
            assert_false(batch_headers_next(&hr, &kv));
            assert_int_equal(batch_iter_next(&it, &r, f->errmsg), TALLY_EOF);
            batch_iter_close(&it);
            free(data);
            off = next;
        }
        assert_int_equal(log_last_raft_index(f->l), 78);
        reopen_log(f);
    }
    free(big);
}

/* log_read returns a descriptor and position whose bytes equal log_read_copy's. */
static void test_slice_is_preadable(void **state)
{
    struct fixture *f = *state;
    struct log_slice sl;
    void *data;
    size_t len;
    uint64_t next;
    open_log(f, 0);
    for (int i = 0; i < 10; i++) {
        append(f, 3, 50, 10);
    }
    assert_int_equal(log_read(f->l, 4, 1000, &sl, f->errmsg), 0);
    assert_int_equal(log_read_copy(f->l, 4, 1000, &data, &len, &next, f->errmsg), 0);
    assert_int_equal(sl.len, len);
    assert_int_equal(sl.next_offset, next);
    uint8_t *p = malloc(sl.len);
    assert_int_equal(pread(sl.fd, p, sl.len, sl.pos), (ssize_t)sl.len);
    assert_memory_equal(p, data, len);
    free(p);
    free(data);
}

/* A read returns whole batches up to the byte limit, at least one batch, starting with the batch holding the offset. */
static void test_read_limits(void **state)
{
    struct fixture *f = *state;
    struct log_slice sl, one;
    open_log(f, 0);
    for (int i = 0; i < 10; i++) {
        append(f, 4, 100, 10); /* offsets 4i .. 4i+3 */
    }
    assert_int_equal(log_read(f->l, 0, 1, &one, f->errmsg), 0);
    assert_true(one.len > 1);
    assert_int_equal(one.next_offset, 4);
    /* Offset 6 lies inside the second batch. */
    assert_int_equal(log_read(f->l, 6, 1, &sl, f->errmsg), 0);
    assert_int_equal(sl.pos, one.pos + (off_t)one.len);
    assert_int_equal(sl.next_offset, 8);
    /* Room for two and a half batches gives two. */
    assert_int_equal(log_read(f->l, 0, one.len * 5 / 2, &sl, f->errmsg), 0);
    assert_int_equal(sl.len, 2 * one.len);
    assert_int_equal(sl.next_offset, 8);
    /* A huge limit stops at the end. */
    assert_int_equal(log_read(f->l, 0, SIZE_MAX, &sl, f->errmsg), 0);
    assert_int_equal(sl.next_offset, 40);
    /* At the end: nothing yet. */
    assert_int_equal(log_read(f->l, 40, 100, &sl, f->errmsg), 0);
    assert_int_equal(sl.len, 0);
    assert_int_equal(sl.next_offset, 40);
    assert_int_equal(check_all(f, 1), 40);
}

/* Bad arguments give clear codes: zero byte limit, offsets out of range, a batch with the wrong base offset or bad bytes, a bad config. */
static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct log_slice sl;
    struct buf b;
    uint64_t next;
    struct tally_log *l2;
    struct log_config bad = f->cfg;

    open_log(f, 10);
    append(f, 2, 10, 5);
    assert_int_equal(log_read(f->l, 10, 0, &sl, f->errmsg), TALLY_INVAL);
    assert_non_null(strstr(f->errmsg, "max_bytes"));
    assert_int_equal(log_read(f->l, 13, 100, &sl, f->errmsg), TALLY_OUT_OF_RANGE);
    assert_int_equal(log_read(f->l, 9, 100, &sl, f->errmsg), TALLY_OUT_OF_RANGE);
    assert_non_null(strstr(f->errmsg, "offset 9"));
    assert_int_equal(log_truncate(f->l, 5, &next, f->errmsg), TALLY_OUT_OF_RANGE);

    buf_init(&b);
    make_batch(&b, 99, 5, 1, 1, 10, false);
    assert_int_equal(log_append(f->l, b.data, b.len, 5, f->errmsg), TALLY_INVAL);
    assert_non_null(strstr(f->errmsg, "base offset 99"));
    make_batch(&b, 12, 5, 1, 1, 10, false);
    assert_int_equal(log_append(f->l, b.data, b.len - 1, 5, f->errmsg), TALLY_INVAL);
    assert_int_equal(log_append(f->l, b.data, 10, 5, f->errmsg), TALLY_INVAL);
    assert_int_equal(log_append(f->l, NULL, 0, 5, f->errmsg), TALLY_INVAL);
    b.data[BATCH_HEADER_SIZE + 2] ^= 1;
    assert_int_equal(log_append(f->l, b.data, b.len, 5, f->errmsg), TALLY_INVAL);
    assert_non_null(strstr(f->errmsg, "checksum"));
    b.data[BATCH_HEADER_SIZE + 2] ^= 1;
    assert_int_equal(log_append(f->l, b.data, b.len, 5, f->errmsg), 0);
    assert_int_equal(log_next_offset(f->l), 13);
    buf_free(&b);

    bad.segment_bytes = 0;
    assert_int_equal(log_open(f->dir, &bad, 0, &l2, f->errmsg), TALLY_INVAL);
    assert_int_equal(log_open(NULL, &f->cfg, 0, &l2, f->errmsg), TALLY_INVAL);
}

/* ------------------------------------------------------------------------
 * Rolling, indexes, time, truncation, retention
 * ------------------------------------------------------------------------ */

/* Segments roll by size, are named by base offset, and reads cross their boundaries. */
static void test_roll_by_size(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 2000;
    f->cfg.index_interval_bytes = 300;
    open_log(f, 0);
    for (int i = 0; i < 60; i++) {
        append(f, (unsigned)(1 + i % 3), 60, 100 + i);
    }
    assert_true(log_segment_count(f->l) > 5);
    /* Each sealed segment stays within the limit. */
    {
        struct log_slice sl;
        uint64_t off = 0;
        while (off < log_next_offset(f->l)) {
            assert_int_equal(log_read(f->l, off, SIZE_MAX, &sl, f->errmsg), 0);
            assert_true(file_exists(path_of(f, off, "seg")));
            assert_true(file_size(path_of(f, off, "seg")) <= 2000);
            off = sl.next_offset;
        }
    }
    assert_int_equal(check_all(f, 1), log_next_offset(f->l));
    assert_int_equal(check_all(f, 700), log_next_offset(f->l));
    reopen_log(f);
    assert_int_equal(check_all(f, 500), log_next_offset(f->l));
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
}

/* A batch larger than segment_bytes gets a segment of its own. */
static void test_roll_big_batch(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 1000;
    open_log(f, 0);
    append(f, 1, 10, 1);
    append(f, 1, 5000, 1);
    append(f, 1, 10, 1);
    assert_int_equal(log_segment_count(f->l), 3);
    assert_int_equal(check_all(f, 1), 3);
}

/* Segments roll when their first batch is older than segment_ms, judged by the caller's clock. */
static void test_roll_by_age(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_ms = 1000;
    open_log(f, 0);
    append(f, 1, 10, 5000);
    append(f, 1, 10, 5500);
    append(f, 1, 10, 6000); /* exactly segment_ms old: not older */
    assert_int_equal(log_segment_count(f->l), 1);
    append(f, 1, 10, 6001);
    assert_int_equal(log_segment_count(f->l), 2);
    append(f, 1, 10, 6500);
    assert_int_equal(log_segment_count(f->l), 2);
    /* The age of the active segment survives a reopen. */
    reopen_log(f);
    append(f, 1, 10, 7002);
    assert_int_equal(log_segment_count(f->l), 3);
    assert_int_equal(check_all(f, 1), 6);
}

/* find_time returns the first batch whose max timestamp is at or after the time, across segments and sparse index entries. */
static void test_find_time(void **state)
{
    struct fixture *f = *state;
    uint64_t off;
    f->cfg.segment_bytes = 1500;
    f->cfg.index_interval_bytes = 400;
    open_log(f, 0);
    for (int i = 0; i < 40; i++) {
        append(f, 2, 40, 1000 * (i + 1)); /* batch i: offsets 2i, 2i+1 at time 1000(i+1) */
    }
    assert_true(log_segment_count(f->l) > 3);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(log_find_time(f->l, 0, &off, f->errmsg), 0);
        assert_int_equal(off, 0);
        for (int i = 0; i < 40; i++) {
            assert_int_equal(log_find_time(f->l, 1000 * (i + 1), &off, f->errmsg), 0);
            assert_int_equal(off, 2 * (uint64_t)i);
            assert_int_equal(log_find_time(f->l, 1000 * (i + 1) - 500, &off, f->errmsg), 0);
            assert_int_equal(off, 2 * (uint64_t)i);
        }
        assert_int_equal(log_find_time(f->l, 40001, &off, f->errmsg), 0);
        assert_int_equal(off, log_next_offset(f->l));
        reopen_log(f); /* again with indexes loaded from disk */
    }
}

/* Truncation removes whole batches from the one holding the offset, deletes later segments, and appends continue. */
static void test_truncate(void **state)
{
    struct fixture *f = *state;
    uint64_t next;
    f->cfg.segment_bytes = 1500;
    f->cfg.index_interval_bytes = 200;
    open_log(f, 0);
    for (int i = 0; i < 30; i++) {
        append(f, 3, 40, 100 + i); /* batch i: offsets 3i .. 3i+2 */
    }
    unsigned segs = log_segment_count(f->l);
    assert_true(segs > 3);
    /* Past the end: nothing happens. */
    assert_int_equal(log_truncate(f->l, 90, &next, f->errmsg), 0);
    assert_int_equal(next, 90);
    /* Inside the last batch: the whole batch goes. */
    assert_int_equal(log_truncate(f->l, 88, &next, f->errmsg), 0);
    assert_int_equal(next, 87);
    assert_int_equal(log_next_offset(f->l), 87);
    /* Into an early segment: later segments are deleted. */
    assert_int_equal(log_truncate(f->l, 10, &next, f->errmsg), 0);
    assert_int_equal(next, 9);
    assert_true(log_segment_count(f->l) < segs);
    assert_int_equal(log_last_raft_index(f->l), 7); /* batch at offset 6 has raft index 7 */
    assert_int_equal(check_all(f, 1), 9);
    for (int i = 0; i < 10; i++) {
        append(f, 2, 40, 500 + i);
    }
    assert_int_equal(check_all(f, 100), 29);
    reopen_log(f);
    assert_int_equal(log_next_offset(f->l), 29);
    assert_int_equal(check_all(f, 1), 29);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    /* Down to the start: empty, and it stays so. */
    assert_int_equal(log_truncate(f->l, 0, &next, f->errmsg), 0);
    assert_int_equal(next, 0);
    assert_int_equal(log_segment_count(f->l), 1);
    assert_int_equal(log_last_raft_index(f->l), 0);
    reopen_log(f);
    assert_int_equal(log_next_offset(f->l), 0);
    append(f, 1, 10, 1);
    assert_int_equal(check_all(f, 1), 1);
}

/* Retention deletes the oldest sealed segments by total size, never the active one. */
static void test_retention_by_size(void **state)
{
    struct fixture *f = *state;
    unsigned deleted;
    struct log_slice sl;
    f->cfg.segment_bytes = 1000;
    f->cfg.retention_bytes = 3000;
    open_log(f, 0);
    for (int i = 0; i < 40; i++) {
        append(f, 2, 50, 100);
    }
    unsigned before = log_segment_count(f->l);
    /* A limit keeps every segment holding an offset at or above it: none
     * below offset 1, then only whole segments below the limit. */
    bool held = false;
    assert_int_equal(log_retain(f->l, 100, 1, &deleted, &held, f->errmsg), 0);
    assert_int_equal(deleted, 0);
    assert_true(held);
    assert_int_equal(log_start_offset(f->l), 0);
    uint64_t limit = log_next_offset(f->l) / 2;
    assert_int_equal(log_retain(f->l, 100, limit, &deleted, NULL, f->errmsg), 0);
    assert_true(deleted > 0);
    assert_true(log_start_offset(f->l) <= limit);
    before -= deleted;
    assert_int_equal(log_retain(f->l, 100, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_true(deleted > 0);
    assert_int_equal(log_segment_count(f->l), before - deleted);
    assert_true(log_size_bytes(f->l) <= 3000);
    assert_true(log_start_offset(f->l) > 0);
    assert_false(file_exists(path_of(f, 0, "seg")));
    assert_false(file_exists(path_of(f, 0, "idx")));
    assert_int_equal(log_read(f->l, 0, 100, &sl, f->errmsg), TALLY_OUT_OF_RANGE);
    check_all(f, 1);
    /* Even a zero budget keeps the active segment. */
    close_log(f);
    f->cfg.retention_bytes = 0;
    open_log(f, 0);
    assert_int_equal(log_retain(f->l, 100, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_int_equal(log_segment_count(f->l), 1);
    assert_true(file_exists(path_of(f, log_start_offset(f->l), "seg")));
    assert_true(log_next_offset(f->l) > log_start_offset(f->l));
    check_all(f, 1);
}

/* Retention deletes sealed segments whose newest record is older than retention_ms. */
/* log_trim_to takes segments out of the log at once and deletes their
 * files only when the removals run; if the log's directory was renamed
 * away and another made under its name meanwhile (a topic deleted and
 * created again), the removals reach the old files, not the new ones. */
static void test_trim_to_removals(void **state)
{
    struct fixture *f = *state;
    unsigned deleted = 0;
    char old[PATH_MAX + 16], seg0[PATH_MAX + 64], moved0[PATH_MAX + 64];
    struct stat st;
    f->cfg.segment_bytes = 1000;
    open_log(f, 0);
    for (int i = 0; i < 20; i++) {
        append(f, 2, 50, 100);
    }
    unsigned before = log_segment_count(f->l);
    struct log_removals *rm = log_removals_new();
    assert_non_null(rm);
    assert_int_equal(log_trim_to(f->l, log_next_offset(f->l) / 2, rm, &deleted, f->errmsg), 0);
    assert_true(deleted > 0);
    assert_int_equal(log_segment_count(f->l), before - deleted);
    assert_false(log_removals_empty(rm));
    snprintf(seg0, sizeof seg0, "%s/00000000000000000000.seg", f->dir);
    assert_int_equal(stat(seg0, &st), 0); /* still there */
    log_close(f->l);
    f->l = NULL;
    /* The directory goes away under another name; a new one, with a file
     * of the same name, takes its place. */
    snprintf(old, sizeof old, "%s.old", f->dir);
    assert_int_equal(rename(f->dir, old), 0);
    assert_int_equal(mkdir(f->dir, 0755), 0);
    FILE *nf = fopen(seg0, "w");
    assert_non_null(nf);
    fclose(nf);
    log_removals_run(rm);
    assert_int_equal(stat(seg0, &st), 0); /* the new one is untouched */
    snprintf(moved0, sizeof moved0, "%s/00000000000000000000.seg", old);
    assert_int_equal(stat(moved0, &st), -1); /* the old one is gone */
    tmpdir_remove(old);
}

static void test_retention_by_age(void **state)
{
    struct fixture *f = *state;
    unsigned deleted;
    f->cfg.segment_bytes = 1000;
    f->cfg.retention_ms = 10000;
    open_log(f, 0);
    for (int i = 0; i < 30; i++) {
        append(f, 2, 50, 1000 * i);
    }
    assert_int_equal(log_retain(f->l, 0, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(log_retain(f->l, 20000, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_true(deleted > 0);
    /* Every batch left in a sealed segment is younger than the limit;
     * the first remaining segment holds a batch of time >= 10000. */
    uint64_t off;
    assert_int_equal(log_find_time(f->l, 0, &off, f->errmsg), 0);
    assert_int_equal(off, log_start_offset(f->l));
    void *data;
    size_t len;
    uint64_t next;
    unsigned n_segs = log_segment_count(f->l);
    assert_int_equal(log_read_copy(f->l, log_start_offset(f->l), 1, &data, &len, &next,
                                   f->errmsg), 0);
    free(data);
    assert_int_equal(log_retain(f->l, INT64_MAX, UINT64_MAX, &deleted, NULL, f->errmsg), 0);
    assert_int_equal(deleted, n_segs - 1);
    assert_int_equal(log_segment_count(f->l), 1);
    reopen_log(f);
    check_all(f, 1);
}

/* Reset drops everything and restarts the log empty at a new offset. */
static void test_reset(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 1000;
    open_log(f, 0);
    for (int i = 0; i < 20; i++) {
        append(f, 2, 50, 100);
    }
    assert_int_equal(log_reset(f->l, 500, f->errmsg), 0);
    assert_int_equal(log_start_offset(f->l), 500);
    assert_int_equal(log_next_offset(f->l), 500);
    assert_int_equal(log_segment_count(f->l), 1);
    assert_false(file_exists(path_of(f, 0, "seg")));
    append(f, 3, 10, 100);
    reopen_log(f);
    assert_int_equal(log_start_offset(f->l), 500);
    assert_int_equal(check_all(f, 1), 3);
}

/* ------------------------------------------------------------------------
 * Crashes, corruption, lost indexes
 * ------------------------------------------------------------------------ */

/* Cutting the active segment at every byte inside its last two batches recovers to the last whole batch, and appends continue. */
static void test_crash_cut_every_byte(void **state)
{
    struct fixture *f = *state;
    long pos[64];
    for (int compress = 0; compress < 2; compress++) {
        f->cfg.segment_bytes = 4000;
        open_log(f, 0);
        for (int i = 0; i < 30; i++) {
            struct buf b;
            buf_init(&b);
            make_batch(&b, log_next_offset(f->l), 10 * i, (uint64_t)i + 1, 3, 30, compress);
            assert_int_equal(log_append(f->l, b.data, b.len, 10 * i, f->errmsg), 0);
            buf_free(&b);
        }
        assert_int_equal(log_sync(f->l, f->errmsg), 0);
        uint64_t end = log_next_offset(f->l);
        unsigned segs = log_segment_count(f->l);
        assert_true(segs > 1);
        close_log(f);
        /* The active segment is the file with the highest base. */
        char active[4096];
        uint64_t active_base = 0;
        for (uint64_t b = 0; b <= end; b++) {
            if (file_exists(path_of(f, b, "seg"))) {
                active_base = b;
            }
        }
        snprintf(active, sizeof active, "%s", path_of(f, active_base, "seg"));
        size_t orig_len;
        uint8_t *orig = read_file(active, &orig_len);
        size_t nb = batch_positions(active, pos, 64);
        assert_true(nb >= 3);
        for (long cut = pos[nb - 2]; cut < (long)orig_len; cut++) {
            /* Batches fully below the cut survive: 3 offsets each. */
            size_t whole = 0;
            while (whole < nb && pos[whole] + (long)byte_get_u32(orig + pos[whole] + 8) <= cut) {
                whole++;
            }
            write_file(active, orig, (size_t)cut);
            open_log(f, 0);
            assert_int_equal(log_next_offset(f->l), active_base + 3 * whole);
            assert_int_equal(log_segment_count(f->l), segs);
            assert_int_equal(file_size(active), pos[whole - 1] +
                                                    (long)byte_get_u32(orig + pos[whole - 1] + 8));
            assert_int_equal(check_all(f, 1), log_next_offset(f->l));
            append(f, 2, 30, 1000);
            assert_int_equal(check_all(f, 200), log_next_offset(f->l));
            close_log(f);
            /* Undo a roll the append may have caused. */
            for (uint64_t b = active_base + 1; b < active_base + 64; b++) {
                unlink(path_of(f, b, "seg"));
                unlink(path_of(f, b, "idx"));
                unlink(path_of(f, b, "tix"));
            }
        }
        write_file(active, orig, orig_len);
        free(orig);
        open_log(f, 0);
        assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
        close_log(f);
        tmpdir_remove(f->dir);
        assert_int_equal(mkdir(f->dir, 0755), 0);
    }
}

/* Garbage or zeros after the last batch of the active segment are cut off on open. */
static void test_crash_garbage_tail(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zeros[300];
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 31 + 7);
    }
    open_log(f, 0);
    for (int i = 0; i < 5; i++) {
        append(f, 2, 20, 10);
    }
    close_log(f);
    const char *seg = path_of(f, 0, "seg");
    long good = file_size(seg);
    for (int k = 0; k < 2; k++) {
        FILE *fp = fopen(seg, "ab");
        fwrite(k == 0 ? zeros : junk, 1, 300, fp);
        fclose(fp);
        open_log(f, 0);
        assert_int_equal(log_next_offset(f->l), 10);
        assert_int_equal(file_size(seg), good);
        check_all(f, 1);
        close_log(f);
    }
}

/* A segment file left empty or with a torn header by a crash during creation is repaired. */
static void test_crash_torn_segment_header(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 500;
    open_log(f, 0);
    for (int i = 0; i < 6; i++) {
        append(f, 2, 50, 10);
    }
    uint64_t next = log_next_offset(f->l);
    struct buf b;
    buf_init(&b);
    make_batch(&b, next, 10, 1, 1, 1000, false);
    assert_int_equal(log_append(f->l, b.data, b.len, 10, f->errmsg), 0); /* rolls */
    buf_free(&b);
    close_log(f);
    const char *seg = path_of(f, next, "seg");
    for (int len = 0; len < 32; len += 7) {
        assert_int_equal(truncate(seg, len), 0);
        open_log(f, 0);
        assert_int_equal(log_next_offset(f->l), next);
        assert_int_equal(file_size(seg), 32);
        check_all(f, 1);
        close_log(f);
    }
}

/* Flipping any byte of a batch is caught by the checksums, and log_verify_dir reports file and position. */
static void test_flip_every_byte(void **state)
{
    struct fixture *f = *state;
    long pos[8];
    open_log(f, 0);
    for (int i = 0; i < 3; i++) {
        append(f, 3, 20, 10);
    }
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
    close_log(f);
    const char *seg = path_of(f, 0, "seg");
    assert_int_equal(batch_positions(seg, pos, 8), 3);
    size_t len;
    uint8_t *orig = read_file(seg, &len);
    uint32_t blen = byte_get_u32(orig + pos[1] + 8);
    for (uint32_t i = 0; i < blen; i++) {
        struct batch_header h;
        struct reports r = {0};
        uint8_t *copy = malloc(blen);
        memcpy(copy, orig + pos[1], blen);
        copy[i] ^= 0x01;
        assert_int_not_equal(batch_verify(copy, blen, &h, f->errmsg), 0);
        free(copy);
        flip_byte(seg, pos[1] + (long)i);
        struct log_verify_stats st;
        assert_int_equal(log_verify_dir_stats(f->dir, collect, &r, &st), 1);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.file, "00000000000000000000.seg");
        assert_int_equal(r.pos, (uint64_t)pos[1]);
        /* Past a damaged payload the header still leads to the next batch;
         * past a damaged header nothing can be trusted. */
        assert_int_equal(st.batches, i < BATCH_HEADER_SIZE ? 1 : 2);
        flip_byte(seg, pos[1] + (long)i);
    }
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    free(orig);
}

/* A corrupt last batch of a sealed segment fails the open with the file named; the log is never served. */
static void test_corrupt_sealed_fails_open(void **state)
{
    struct fixture *f = *state;
    long pos[64];
    f->cfg.segment_bytes = 1000;
    open_log(f, 0);
    for (int i = 0; i < 20; i++) {
        append(f, 2, 50, 10);
    }
    close_log(f);
    const char *seg = path_of(f, 0, "seg");
    size_t n = batch_positions(seg, pos, 64);
    flip_byte(seg, pos[n - 1] + BATCH_HEADER_SIZE + 3);
    assert_int_equal(log_open(f->dir, &f->cfg, 0, &f->l, f->errmsg), TALLY_CORRUPT);
    assert_null(f->l);
    assert_non_null(strstr(f->errmsg, "00000000000000000000.seg"));
    assert_non_null(strstr(f->errmsg, "position"));
    assert_non_null(strstr(f->errmsg, f->dir));
}

/* A corrupt batch header inside a sealed segment makes reads that walk over it fail with file and position. */
static void test_corrupt_sealed_read(void **state)
{
    struct fixture *f = *state;
    long pos[64];
    char want[64];
    struct log_slice sl;
    void *data;
    size_t len;
    uint64_t next;
    f->cfg.segment_bytes = 4000;
    f->cfg.index_interval_bytes = 100000; /* one entry: reads walk from the first batch */
    open_log(f, 0);
    for (int i = 0; i < 40; i++) {
        append(f, 1, 50, 10);
    }
    close_log(f);
    const char *seg = path_of(f, 0, "seg");
    size_t n = batch_positions(seg, pos, 64);
    assert_true(n > 6);
    flip_byte(seg, pos[3] + 20); /* base offset field of batch 3 */
    open_log(f, 0);              /* cheap open: only the last batch is checked */
    assert_int_equal(log_read(f->l, 1, 1, &sl, f->errmsg), 0);
    assert_int_equal(log_read(f->l, 5, 1, &sl, f->errmsg), TALLY_CORRUPT);
    snprintf(want, sizeof want, "position %ld", pos[3]);
    assert_non_null(strstr(f->errmsg, "00000000000000000000.seg"));
    assert_non_null(strstr(f->errmsg, want));
    assert_int_equal(log_read(f->l, 0, SIZE_MAX, &sl, f->errmsg), TALLY_CORRUPT);
    flip_byte(seg, pos[3] + 20);
    /* A flipped payload byte passes the header walk but not the copy's check. */
    flip_byte(seg, pos[2] + BATCH_HEADER_SIZE + 4);
    assert_int_equal(log_read(f->l, 2, 1, &sl, f->errmsg), 0);
    assert_int_equal(log_read_copy(f->l, 2, 1, &data, &len, &next, f->errmsg), TALLY_CORRUPT);
    snprintf(want, sizeof want, "position %ld", pos[2]);
    assert_non_null(strstr(f->errmsg, want));
    struct reports r = {0};
    assert_true(log_verify_dir(f->dir, collect, &r) > 0);
    assert_int_equal(r.pos, (uint64_t)pos[2]);
}

/* A missing segment in the middle of the log fails the open. */
static void test_missing_middle_segment(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 600;
    open_log(f, 0);
    for (int i = 0; i < 20; i++) {
        append(f, 2, 50, 10);
    }
    assert_true(log_segment_count(f->l) >= 3);
    struct log_slice sl;
    assert_int_equal(log_read(f->l, 0, SIZE_MAX, &sl, f->errmsg), 0);
    uint64_t second = sl.next_offset;
    close_log(f);
    assert_int_equal(unlink(path_of(f, second, "seg")), 0);
    assert_int_equal(log_open(f->dir, &f->cfg, 0, &f->l, f->errmsg), TALLY_CORRUPT);
    assert_non_null(strstr(f->errmsg, "00000000000000000000.seg"));
    assert_true(log_verify_dir(f->dir, NULL, NULL) > 0);
}

/* A segment written in an unknown format version is refused with TALLY_VERSION, not truncated. */
static void test_unknown_version(void **state)
{
    struct fixture *f = *state;
    uint8_t hdr[32];
    open_log(f, 0);
    append(f, 1, 10, 1);
    close_log(f);
    const char *seg = path_of(f, 0, "seg");
    long size = file_size(seg);
    int fd = open(seg, O_RDWR);
    assert_int_equal(pread(fd, hdr, 32, 0), 32);
    hdr[4] = 2;
    byte_put_u64(hdr + 24, codec_checksum(hdr, 24));
    assert_int_equal(pwrite(fd, hdr, 32, 0), 32);
    close(fd);
    assert_int_equal(log_open(f->dir, &f->cfg, 0, &f->l, f->errmsg), TALLY_VERSION);
    assert_non_null(strstr(f->errmsg, "version 2"));
    assert_int_equal(file_size(seg), size);
    /* The same for a batch of a newer format at the tail. */
    hdr[4] = 1;
    byte_put_u64(hdr + 24, codec_checksum(hdr, 24));
    fd = open(seg, O_RDWR);
    assert_int_equal(pwrite(fd, hdr, 32, 0), 32);
    uint8_t bh[BATCH_HEADER_SIZE];
    assert_int_equal(pread(fd, bh, sizeof bh, 32), (ssize_t)sizeof bh);
    bh[4] = 9;
    byte_put_u64(bh + 80, codec_checksum(bh, 80));
    assert_int_equal(pwrite(fd, bh, sizeof bh, 32), (ssize_t)sizeof bh);
    close(fd);
    assert_int_equal(log_open(f->dir, &f->cfg, 0, &f->l, f->errmsg), TALLY_VERSION);
    assert_int_equal(file_size(seg), size);
}

/* Deleted index files are rebuilt on open and reads keep working. */
static void test_index_deleted(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 1000;
    f->cfg.index_interval_bytes = 150;
    open_log(f, 0);
    for (int i = 0; i < 30; i++) {
        append(f, 2, 40, 100 * i);
    }
    uint64_t end = log_next_offset(f->l);
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
    close_log(f);
    for (uint64_t b = 0; b < end; b++) {
        unlink(path_of(f, b, "idx"));
        unlink(path_of(f, b, "tix"));
    }
    assert_true(log_verify_dir(f->dir, NULL, NULL) > 0);
    open_log(f, 0);
    assert_int_equal(check_all(f, 1), end);
    uint64_t off;
    assert_int_equal(log_find_time(f->l, 1450, &off, f->errmsg), 0);
    assert_int_equal(off, 30);
    assert_true(file_exists(path_of(f, 0, "idx")));
    assert_true(file_exists(path_of(f, 0, "tix")));
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
}

/* Truncated or garbled index files are detected and rebuilt; reads still return the right batches. */
static void test_index_damaged(void **state)
{
    struct fixture *f = *state;
    f->cfg.segment_bytes = 1200;
    f->cfg.index_interval_bytes = 100;
    open_log(f, 0);
    for (int i = 0; i < 30; i++) {
        append(f, 2, 40, 100 * i);
    }
    uint64_t end = log_next_offset(f->l);
    assert_int_equal(log_sync(f->l, f->errmsg), 0);
    close_log(f);
    char idx[4096];
    snprintf(idx, sizeof idx, "%s", path_of(f, 0, "idx"));
    long size = file_size(idx);
    assert_true(size > 24 + 3 * 8);
    static const long cuts[] = {0, 10, 24, 24 + 8, 24 + 3 * 8 + 3};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        assert_int_equal(truncate(idx, cuts[c]), 0);
        open_log(f, 0);
        assert_int_equal(check_all(f, 1), end);
        assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
        close_log(f);
    }
    /* Entries pointing to wrong places, with the same file size. */
    size_t len;
    uint8_t *p = read_file(idx, &len);
    for (size_t i = 24 + 8; i + 8 <= len; i += 8) {
        byte_put_u32(p + i + 4, byte_get_u32(p + i + 4) + 13);
    }
    write_file(idx, p, len);
    free(p);
    struct reports r = {0};
    assert_true(log_verify_dir(f->dir, collect, &r) > 0);
    assert_string_equal(r.file, "00000000000000000000.idx");
    assert_int_equal(r.pos, 24 + 8);
    open_log(f, 0);
    assert_int_equal(check_all(f, 1), end);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    /* Also with the damage found only when a read uses the index. */
    close_log(f);
    p = read_file(path_of(f, 0, "tix"), &len);
    byte_put_u64(p + 24 + 16, (uint64_t)-5); /* second time entry: out of order */
    write_file(path_of(f, 0, "tix"), p, len);
    free(p);
    open_log(f, 0);
    uint64_t off;
    assert_int_equal(log_find_time(f->l, 250, &off, f->errmsg), 0);
    assert_int_equal(off, 6);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    /* Both files agree and look sane, but the middle entries point a few
     * bytes off: found when a read checks the batch header there. */
    close_log(f);
    size_t tlen;
    uint8_t *ip = read_file(idx, &len);
    uint8_t *tp = read_file(path_of(f, 0, "tix"), &tlen);
    size_t n = (len - 24) / 8;
    assert_true(n > 3);
    for (size_t i = 1; i + 1 < n; i++) {
        byte_put_u32(ip + 24 + i * 8 + 4, byte_get_u32(ip + 24 + i * 8 + 4) + 5);
        byte_put_u32(tp + 24 + i * 16 + 12, byte_get_u32(tp + 24 + i * 16 + 12) + 5);
    }
    write_file(idx, ip, len);
    write_file(path_of(f, 0, "tix"), tp, tlen);
    free(ip);
    free(tp);
    open_log(f, 0);
    assert_int_equal(check_all(f, 1), end);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
}

/* A failed fsync or write is sticky: every later write returns TALLY_IOERR while reads still work. */
static void test_sticky_errors(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    uint64_t next;
    unsigned deleted;
    open_log(f, 0);
    append(f, 2, 10, 1);
    fs_fault_inject(FS_OP_FSYNC, 0, EIO);
    assert_int_equal(log_sync(f->l, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "fsync"));
    fs_fault_reset();
    buf_init(&b);
    make_batch(&b, 2, 1, 1, 1, 10, false);
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), TALLY_IOERR);
    assert_non_null(strstr(f->errmsg, "fsync"));
    assert_int_equal(log_sync(f->l, f->errmsg), TALLY_IOERR);
    assert_int_equal(log_truncate(f->l, 0, &next, f->errmsg), TALLY_IOERR);
    assert_int_equal(log_retain(f->l, 0, UINT64_MAX, &deleted, NULL, f->errmsg), TALLY_IOERR);
    assert_int_equal(log_reset(f->l, 0, f->errmsg), TALLY_IOERR);
    assert_int_equal(check_all(f, 1), 2);
    close_log(f);

    /* A full disk is reported as such first, then the log stays failed. */
    open_log(f, 0);
    fs_fault_inject(FS_OP_PWRITE, 0, ENOSPC);
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), TALLY_NOSPACE);
    fs_fault_reset();
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), TALLY_IOERR);
    assert_int_equal(log_next_offset(f->l), 2);
    reopen_log(f);
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), 0);
    buf_free(&b);

    /* A failure while rolling (sealing fsync) is sticky too. */
    close_log(f);
    f->cfg.segment_bytes = 200;
    open_log(f, 0);
    fs_fault_inject(FS_OP_FSYNC, 0, EIO);
    buf_init(&b);
    make_batch(&b, 3, 1, 1, 2, 100, false);
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), TALLY_IOERR);
    fs_fault_reset();
    assert_int_equal(log_append(f->l, b.data, b.len, 1, f->errmsg), TALLY_IOERR);
    buf_free(&b);
}

/* A new segment whose header cannot be written (a full disk while rolling) leaves no file
 * behind: the offline verifier finds nothing wrong, and once space is back (a reopen clears the
 * sticky failure) the same segment is created and appends go on. */
static void test_full_disk_while_rolling(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    f->cfg.segment_bytes = 200;
    open_log(f, 0);
    append(f, 3, 100, 1); /* past 200 bytes: the next append rolls */
    unsigned segs = log_segment_count(f->l);
    uint64_t next = log_next_offset(f->l);
    buf_init(&b);
    make_batch(&b, next, 2, next + 1, 1, 10, false);
    /* The seal writes the two index files first; then the header. */
    fs_fault_inject(FS_OP_PWRITE, 2, ENOSPC);
    assert_int_equal(log_append(f->l, b.data, b.len, 2, f->errmsg), TALLY_NOSPACE);
    fs_fault_reset();
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    reopen_log(f);
    assert_int_equal(log_segment_count(f->l), segs);
    assert_int_equal(log_append(f->l, b.data, b.len, 2, f->errmsg), 0);
    assert_int_equal(log_segment_count(f->l), segs + 1);
    assert_int_equal(log_verify_dir(f->dir, NULL, NULL), 0);
    buf_free(&b);
}

/* The offline verifier counts segments, batches and records of a healthy log and finds no problem. */
static void test_verify_healthy(void **state)
{
    struct fixture *f = *state;
    struct log_verify_stats st;
    f->cfg.segment_bytes = 1000;
    open_log(f, 0);
    for (int i = 0; i < 25; i++) {
        append(f, 3, 40, 10 * i);
    }
    unsigned segs = log_segment_count(f->l);
    assert_int_equal(log_verify_dir_stats(f->dir, NULL, NULL, &st), 0);
    assert_int_equal(st.segments, segs);
    assert_int_equal(st.batches, 25);
    assert_int_equal(st.records, 75);
    assert_true(st.index_entries >= 2 * (segs - 1));
    assert_int_equal(log_verify_dir("/nonexistent/tally", NULL, NULL), -1);
}

/* The read-only scanner returns every batch from the one holding the start offset, across segments. */
static void test_scan(void **state)
{
    struct fixture *f = *state;
    struct log_scan *sc;
    const uint8_t *batch;
    size_t len;
    const char *file;
    uint64_t pos, expect = 6;
    int rv;
    f->cfg.segment_bytes = 700;
    open_log(f, 0);
    for (int i = 0; i < 20; i++) {
        append(f, 2, 40, 10);
    }
    assert_int_equal(log_scan_open(f->dir, 7, &sc, f->errmsg), 0);
    while ((rv = log_scan_next(sc, &batch, &len, &file, &pos, f->errmsg)) == 0) {
        assert_int_equal(byte_get_u64(batch + 16), expect);
        expect += 2;
    }
    assert_int_equal(rv, TALLY_EOF);
    assert_int_equal(expect, 40);
    log_scan_close(sc);
    /* A corrupt batch is reported with its file, then the scan moves on. */
    long bp[64];
    batch_positions(path_of(f, 0, "seg"), bp, 64);
    flip_byte(path_of(f, 0, "seg"), bp[1] + 100);
    assert_int_equal(log_scan_open(f->dir, 0, &sc, f->errmsg), 0);
    assert_int_equal(log_scan_next(sc, &batch, &len, &file, &pos, f->errmsg), 0);
    assert_int_equal(log_scan_next(sc, &batch, &len, &file, &pos, f->errmsg), TALLY_CORRUPT);
    assert_string_equal(file, "00000000000000000000.seg");
    assert_int_equal(pos, (uint64_t)bp[1]);
    assert_int_equal(log_scan_next(sc, &batch, &len, &file, &pos, f->errmsg), 0);
    assert_string_not_equal(file, "00000000000000000000.seg");
    log_scan_close(sc);
    char empty[4096];
    snprintf(empty, sizeof empty, "%s/empty", f->dir);
    mkdir(empty, 0755);
    assert_int_equal(log_scan_open(empty, 0, &sc, f->errmsg), TALLY_NOTFOUND);
}

/* Leftover temporary and orphan index files are removed on open; unrelated files are left alone. */
static void test_open_cleans_leftovers(void **state)
{
    struct fixture *f = *state;
    char other[4096];
    open_log(f, 0);
    append(f, 1, 10, 1);
    close_log(f);
    write_file(path_of(f, 0, "idx.tmp"), "x", 1);
    write_file(path_of(f, 77, "idx"), "x", 1);
    snprintf(other, sizeof other, "%s/README", f->dir);
    write_file(other, "x", 1);
    open_log(f, 0);
    assert_false(file_exists(path_of(f, 0, "idx.tmp")));
    assert_false(file_exists(path_of(f, 77, "idx")));
    assert_true(file_exists(other));
    assert_int_equal(check_all(f, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slice_is_preadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_big_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_to_removals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_cut_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_garbage_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_torn_segment_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sealed_fails_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_sealed_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_middle_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_while_rolling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_cleans_leftovers, setup, teardown),
    };
    /* Recovery warnings are expected here; show them only when asked. */
    if (getenv("TALLY_LOG_LEVEL") == NULL) {
        logger_set_level(LOGGER_OFF);
    }
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
