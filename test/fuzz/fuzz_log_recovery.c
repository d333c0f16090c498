/* libFuzzer target: log recovery over arbitrary segment bytes (src/log).
 *
 * Input: one mode byte, then the bytes of the log's only (so active)
 * segment file 00000000000000000000.seg:
 *   mode bit 0 clear: a valid segment header (seg.c layout, base offset 0)
 *                     followed by the rest of the input;
 *   mode bit 0 set:   the rest of the input is the whole file, header
 *                     included.
 * Each run, in a directory on tmpfs (/dev/shm, reused by the process and
 * emptied first): log_open, read everything with log_read_copy from the
 * start offset to the next offset, append one valid batch, read it back,
 * close, open again (recovery must find the same log), close. Errors are
 * fine; crashes, leaks, out-of-bounds reads, a read that makes no
 * progress, and a valid append that fails or does not read back are not. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "log/log.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

/* Segment header layout (the table at the top of src/log/seg.c). */
#define FUZZ_SEG_HEADER_SIZE 32
#define FUZZ_SEG_OFF_VERSION 4
#define FUZZ_SEG_OFF_BASE 8
#define FUZZ_SEG_OFF_CHECKSUM 24
#define FUZZ_SEG_NAME "00000000000000000000.seg"

#define FUZZ_NOW_MS INT64_C(1700000000000)

static char fuzz_dir[64];
static char fuzz_seg_path[128];

static void fuzz_fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz-log-recovery: %s: %s\n", what, msg);
    abort();
}

static void remove_dir_contents(void)
{
    DIR *d = opendir(fuzz_dir);
    struct dirent *e;
    if (d == NULL) {
        fuzz_fail("opendir", strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char path[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, e->d_name);
        if (unlink(path) != 0) {
            fuzz_fail("unlink", strerror(errno));
        }
    }
    closedir(d);
}

static void fuzz_cleanup(void)
{
    if (fuzz_dir[0] != '\0') {
        remove_dir_contents();
        rmdir(fuzz_dir);
    }
}

FUZZ_EXPORT int LLVMFuzzerInitialize(int *argc, char ***argv);

FUZZ_EXPORT int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    (void)argc;
    (void)argv;
    logger_set_level(LOGGER_OFF); /* recovery WARNs about every torn tail */
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/tally-fuzz-log-%ld", base, (long)getpid());
    if (mkdir(fuzz_dir, 0700) != 0 && errno != EEXIST) {
        fuzz_fail("mkdir", strerror(errno));
    }
    snprintf(fuzz_seg_path, sizeof fuzz_seg_path, "%s/%s", fuzz_dir, FUZZ_SEG_NAME);
    atexit(fuzz_cleanup);
    return 0;
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            fuzz_fail("write", strerror(errno));
        }
        b += w;
        n -= (size_t)w;
    }
}

static void write_segment(const uint8_t *data, size_t size)
{
    uint8_t mode = size > 0 ? data[0] : 0;
    int fd;
    remove_dir_contents();
    fd = open(fuzz_seg_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fuzz_fail("open", strerror(errno));
    }
    if ((mode & 1) == 0) {
        uint8_t h[FUZZ_SEG_HEADER_SIZE];
        memset(h, 0, sizeof h);
        memcpy(h, "TLYS", 4);
        h[FUZZ_SEG_OFF_VERSION] = 1;
        byte_put_u64(h + FUZZ_SEG_OFF_BASE, 0);
        byte_put_u64(h + FUZZ_SEG_OFF_CHECKSUM, codec_checksum(h, FUZZ_SEG_OFF_CHECKSUM));
        write_all(fd, h, sizeof h);
    }
    if (size > 1) {
        write_all(fd, data + 1, size - 1);
    }
    close(fd);
}

/* Read [start, next) in slices; every slice must make progress and hold
 * whole, verified batches (log_read_copy checks them). */
static void read_all(struct tally_log *l, size_t max_bytes)
{
    char errmsg[ERR_MSG_SIZE];
    uint64_t off = log_start_offset(l);
    uint64_t end = log_next_offset(l);
    while (off < end) {
        void *p;
        size_t len;
        uint64_t next;
        struct batch_iter it;
        struct batch_record rec;
        int rv = log_read_copy(l, off, max_bytes, &p, &len, &next, errmsg);
        if (rv != 0) {
            return; /* damage recovery left alone (errors are fine) */
        }
        if (len == 0 || next <= off) {
            free(p);
            fuzz_fail("log_read_copy", "no progress before the next offset");
        }
        /* The first batch read must be whole: iterate its records. */
        {
            size_t blen = len >= BATCH_HEADER_SIZE ? byte_get_u32((uint8_t *)p + 8) : len;
            if (blen > len) {
                fuzz_fail("log_read_copy", "batch runs past the slice");
            }
            if (batch_iter_init(&it, p, blen, errmsg) == 0) {
                while (batch_iter_next(&it, &rec, errmsg) == 0) {
                }
            }
            batch_iter_close(&it);
        }
        free(p);
        off = next;
    }
}

/* One valid batch with base offset @base. */
static void make_batch(struct buf *out, uint64_t base, uint64_t raft_index)
{
    struct batch_builder b;
    static const struct batch_kv hdr = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
    batch_builder_init(&b, 0, 0);
    if (batch_builder_add_at(&b, 0, 0, "key", 3, "value", 5, &hdr, 1) != 0 ||
        batch_builder_add(&b, NULL, 0, NULL, 0) != 0 || batch_builder_finish(&b, false, out) != 0) {
        fuzz_fail("batch_builder", "cannot build the appended batch");
    }
    batch_builder_free(&b);
    batch_stamp(out->data, base, FUZZ_NOW_MS, raft_index);
}

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[ERR_MSG_SIZE];
    struct log_config cfg;
    struct tally_log *l = NULL;
    struct buf batch;
    uint64_t next, after;
    int rv;

    write_segment(data, size);
    log_config_init(&cfg);
    cfg.index_interval_bytes = 128; /* index entries even in small inputs */
    if (log_open(fuzz_dir, &cfg, 0, &l, errmsg) != 0) {
        return 0;
    }
    read_all(l, 4096);

    /* Appending a valid batch at the recovered next offset must work, and
     * read back byte for byte. */
    next = log_next_offset(l);
    buf_init(&batch);
    make_batch(&batch, next, log_last_raft_index(l) + 1);
    rv = log_append(l, batch.data, batch.len, FUZZ_NOW_MS, errmsg);
    if (rv == 0) {
        void *p;
        size_t len;
        uint64_t rnext;
        rv = log_read_copy(l, next, 1u << 20, &p, &len, &rnext, errmsg);
        if (rv != 0) {
            fprintf(stderr, "fuzz-log-recovery: %s\n", errmsg);
            fuzz_fail("log_read_copy", "the appended batch does not read back");
        }
        if (len != batch.len || memcmp(p, batch.data, len) != 0 || rnext != next + 2) {
            fuzz_fail("log_read_copy", "the appended batch reads back different");
        }
        free(p);
    } else if (next <= UINT64_MAX - 2) {
        fprintf(stderr, "fuzz-log-recovery: append at %llu: %s\n", (unsigned long long)next,
                errmsg);
        fuzz_fail("log_append", "a valid batch was refused after a successful recovery");
    }
    buf_free(&batch);
    after = log_next_offset(l);
    log_close(l);

    /* Recovery of what we just left must find the same log. */
    l = NULL;
    rv = log_open(fuzz_dir, &cfg, 0, &l, errmsg);
    if (rv != 0) {
        fprintf(stderr, "fuzz-log-recovery: reopen: %s\n", errmsg);
        fuzz_fail("log_open", "a log that opened and was appended to does not reopen");
    }
    if (log_next_offset(l) != after) {
        fuzz_fail("log_open", "reopen finds a different next offset");
    }
    read_all(l, 1u << 20);
    log_close(l);
    return 0;
}
