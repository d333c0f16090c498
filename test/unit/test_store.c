/* Unit tests of the store: deterministic apply, replay safety, snapshots. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "lib/batch.h"
#include "lib/byte.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "store/command.h"
#include "store/keys.h"
#include "store/store.h"
#include "store/acl.h"
#include "store/users.h"
#include "../lib/tmpdir.h"

struct fixture {
    char *dir;
    struct store *s;
    struct log_config lc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char errmsg[ERR_MSG_SIZE];
    f->dir = tmpdir_make();
    log_config_init(&f->lc);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->s != NULL) {
        store_close(f->s);
    }
    tmpdir_remove(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    char errmsg[ERR_MSG_SIZE];
    store_close(f->s);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
}

/* Files in @dir whose names end in @suffix. */
static unsigned count_files(const char *dir, const char *suffix)
{
    char **names;
    size_t n;
    char errmsg[ERR_MSG_SIZE];
    unsigned count = 0;
    assert_int_equal(fs_list(dir, &names, &n, errmsg), 0);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(names[i]), b = strlen(suffix);
        count += a >= b && strcmp(names[i] + a - b, suffix) == 0;
    }
    fs_list_free(names, n);
    return count;
}

/* What the server's checkpointer does (server/checkpointer.c): freeze,
 * build (here on the same thread), release. */
static int checkpoint_off_loop(struct fixture *f)
{
    char errmsg[ERR_MSG_SIZE] = "";
    struct store_frozen *fr;
    int rv = store_checkpoint_freeze(f->s, &fr, errmsg);
    if (rv == 0) {
        struct log_removals *rm = log_removals_new();
        int built = store_checkpoint_build(fr, errmsg);
        rv = store_checkpoint_release(f->s, fr, built == 0, rm, errmsg);
        log_removals_run(rm);
        rv = built != 0 ? built : rv;
    }
    return rv;
}

static int apply(struct fixture *f, uint64_t index, struct buf *entry, struct store_result **res)
{
    char errmsg[ERR_MSG_SIZE] = "";
    int rv = store_apply(f->s, index, entry->data, entry->len, res, errmsg);
    return rv;
}

static void create_topic(struct fixture *f, uint64_t index, const char *name)
{
    struct buf e;
    struct store_result *res = NULL;
    struct command_topic_config c = {0, -1, -1, 0};
    buf_init(&e);
    command_encode_topic_create(&e, name, &c);
    assert_int_equal(e.len % 8, 0);
    assert_int_equal(apply(f, index, &e, &res), 0);
    assert_int_equal(res->items[0].code, 0);
    free(res);
    buf_free(&e);
}

/* Create topic @name and write a catalog that lists it, as a Raft snapshot
 * or a clean stop does in a running node: applying a create does not
 * write the catalog (Raft replays creates after the catalog's index). */
static void create_listed(struct fixture *f, uint64_t index, const char *name)
{
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, index, name);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
}

/* Build an APPEND entry with one batch of @n records per topic listed,
 * from producer @pid (0: none) with sequence @seq. */
static void append_entry_from(struct buf *e, const char **topics, unsigned n_topics, unsigned n,
                              uint64_t pid, uint64_t seq)
{
    command_append_begin(e);
    for (unsigned i = 0; i < n_topics; i++) {
        struct batch_builder b;
        struct buf out;
        char v[32];
        batch_builder_init(&b, pid, seq);
        buf_init(&out);
        for (unsigned j = 0; j < n; j++) {
            snprintf(v, sizeof v, "v%u-%u", i, j);
            assert_int_equal(batch_builder_add(&b, "k", 1, v, strlen(v)), 0);
        }
        assert_int_equal(batch_builder_finish(&b, false, &out), 0);
        batch_stamp(out.data, 0, 1700000000000, 0);
        command_append_add(e, topics[i], out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
        buf_free(&out);
        batch_builder_free(&b);
    }
    command_append_end(e, n_topics);
}

static void append_entry(struct buf *e, const char **topics, unsigned n_topics, unsigned n)
{
    append_entry_from(e, topics, n_topics, n, 0, 0);
}

/* Appends get consecutive offsets and results name them. */
static void test_append_assigns_offsets(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"orders", "orders"};
    struct buf e;
    struct store_result *res = NULL;
    create_topic(f, 2, "orders");
    buf_init(&e);
    append_entry(&e, t, 2, 3);
    assert_int_equal(e.len % 8, 0);
    assert_int_equal(apply(f, 3, &e, &res), 0);
    assert_int_equal(res->n, 2);
    assert_int_equal(res->items[0].base_offset, 0);
    assert_int_equal(res->items[0].count, 3);
    assert_int_equal(res->items[1].base_offset, 3);
    free(res);
    buf_free(&e);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "orders")->log), 6);
}

/* Re-applying entries after a restart never duplicates records. */
static void test_replay_is_idempotent(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"a"};
    struct buf e[3];
    create_topic(f, 2, "a");
    for (int i = 0; i < 3; i++) {
        buf_init(&e[i]);
        append_entry(&e[i], t, 1, 2);
        assert_int_equal(apply(f, 3 + (uint64_t)i, &e[i], NULL), 0);
    }
    reopen(f);
    /* Raft replays everything from index 2. */
    struct buf ce;
    struct command_topic_config c = {0, -1, -1, 0};
    buf_init(&ce);
    command_encode_topic_create(&ce, "a", &c);
    assert_int_equal(apply(f, 2, &ce, NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(apply(f, 3 + (uint64_t)i, &e[i], NULL), 0);
    }
    assert_int_equal(log_next_offset(store_topic_find(f->s, "a")->log), 6);
    /* A new entry continues after them. */
    assert_int_equal(apply(f, 6, &e[0], NULL), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "a")->log), 8);
    for (int i = 0; i < 3; i++) {
        buf_free(&e[i]);
    }
    buf_free(&ce);
}

/* An entry with two batches for one topic, of which only the first reached
 * the log before a crash, gets exactly its second batch on replay. */
static void test_replay_completes_a_partial_entry(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"p", "p"};
    struct buf e;
    uint64_t next;
    char errmsg[ERR_MSG_SIZE];
    create_listed(f, 2, "p");
    buf_init(&e);
    append_entry(&e, t, 2, 2);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    struct store_topic *tp = store_topic_find(f->s, "p");
    assert_int_equal(log_next_offset(tp->log), 4);
    assert_int_equal(log_truncate(tp->log, 2, &next, errmsg), 0); /* lose batch 2 */
    reopen(f);
    tp = store_topic_find(f->s, "p");
    assert_int_equal(log_next_offset(tp->log), 2);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    assert_int_equal(log_next_offset(tp->log), 4);
    assert_int_equal(apply(f, 3, &e, NULL), 0); /* and not again */
    assert_int_equal(log_next_offset(tp->log), 4);
    buf_free(&e);
}

/* Creates and deletes do not write the catalog: after a restart Raft
 * replays them (every entry after the catalog's index), in order. A topic
 * created after the catalog starts again from nothing; one the catalog
 * lists but that was deleted after it gets its directory back, records
 * included, until the delete is replayed; a later incarnation of the same
 * name is dropped and rebuilt by its replayed create. */
static void test_replay_after_delete(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"gone"};
    struct buf c, d, e;
    struct command_topic_config cfg = {0, -1, -1, 0};
    char path[4300], errmsg[ERR_MSG_SIZE];
    struct stat st;
    buf_init(&c);
    command_encode_topic_create(&c, "gone", &cfg);
    buf_init(&d);
    command_encode_topic_delete(&d, "gone");
    buf_init(&e);
    append_entry(&e, names, 1, 3);

    /* Created and deleted after the catalog (none): nothing is left. */
    create_topic(f, 2, "gone");
    assert_int_equal(apply(f, 3, &d, NULL), 0);
    assert_null(store_topic_find(f->s, "gone"));
    reopen(f);
    assert_null(store_topic_find(f->s, "gone"));
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    assert_non_null(store_topic_find(f->s, "gone"));
    assert_int_equal(apply(f, 3, &d, NULL), 0);
    assert_null(store_topic_find(f->s, "gone"));

    /* In the catalog (index 5), deleted at 6, created again at 7 with a
     * record at 8: the restart finds the listed incarnation's records. */
    assert_int_equal(apply(f, 4, &c, NULL), 0);
    assert_int_equal(apply(f, 5, &e, NULL), 0);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(apply(f, 6, &d, NULL), 0);
    snprintf(path, sizeof path, "%s/topics/gone.deleted-6", f->dir);
    assert_int_equal(stat(path, &st), 0); /* kept: the catalog still lists it */
    assert_int_equal(apply(f, 7, &c, NULL), 0);
    assert_int_equal(apply(f, 8, &e, NULL), 0);
    assert_int_equal(apply(f, 8, &e, NULL), 0); /* (replay: not twice) */
    assert_int_equal(log_next_offset(store_topic_find(f->s, "gone")->log), 3);
    reopen(f);
    struct store_topic *t = store_topic_find(f->s, "gone");
    assert_non_null(t);
    assert_int_equal(t->created_index, 4);
    assert_int_equal(log_next_offset(t->log), 3); /* the records of index 5 */
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(apply(f, 6, &d, NULL), 0);
    assert_null(store_topic_find(f->s, "gone"));
    assert_int_equal(apply(f, 7, &c, NULL), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "gone")->log), 0);
    assert_int_equal(apply(f, 8, &e, NULL), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "gone")->log), 3);
    /* A catalog past the delete: the kept directory goes. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(stat(path, &st), -1);
    reopen(f);
    t = store_topic_find(f->s, "gone");
    assert_non_null(t);
    assert_int_equal(t->created_index, 7);
    assert_int_equal(log_next_offset(t->log), 3);
    buf_free(&c);
    buf_free(&d);
    buf_free(&e);
}

/* A topic created after the catalog keeps its directory across a restart
 * when Raft replays that same create (topic.id), so a crash costs no
 * rebuild of its log; another incarnation of the name is rebuilt. */
static void test_replay_keeps_a_created_topic(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"k"};
    struct buf c, d, e;
    struct command_topic_config cfg = {0, -1, -1, 0};
    buf_init(&c);
    command_encode_topic_create(&c, "k", &cfg);
    buf_init(&d);
    command_encode_topic_delete(&d, "k");
    buf_init(&e);
    append_entry(&e, names, 1, 2);
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    reopen(f); /* no catalog: the directory waits for its create */
    assert_null(store_topic_find(f->s, "k"));
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "k")->log), 2); /* kept */
    assert_int_equal(apply(f, 3, &e, NULL), 0); /* skipped: in the log */
    assert_int_equal(log_next_offset(store_topic_find(f->s, "k")->log), 2);
    /* Deleted at 4, created again at 5 with records at 6 and 7. */
    assert_int_equal(apply(f, 4, &d, NULL), 0);
    assert_int_equal(apply(f, 5, &c, NULL), 0);
    assert_int_equal(apply(f, 6, &e, NULL), 0);
    assert_int_equal(apply(f, 7, &e, NULL), 0);
    reopen(f);
    assert_int_equal(apply(f, 2, &c, NULL), 0); /* not the incarnation on disk */
    assert_int_equal(log_next_offset(store_topic_find(f->s, "k")->log), 0);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    assert_int_equal(apply(f, 4, &d, NULL), 0);
    assert_int_equal(apply(f, 5, &c, NULL), 0);
    assert_int_equal(apply(f, 6, &e, NULL), 0);
    assert_int_equal(apply(f, 7, &e, NULL), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "k")->log), 4);
    buf_free(&c);
    buf_free(&d);
    buf_free(&e);
}

/* Per-item errors are results, not failures. */
static void test_unknown_topic_and_duplicate_create(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"nope"};
    struct buf e, c;
    struct store_result *res = NULL;
    struct command_topic_config cfg = {0, -1, -1, 0};
    buf_init(&e);
    append_entry(&e, t, 1, 1);
    assert_int_equal(apply(f, 2, &e, &res), 0);
    assert_int_equal(res->items[0].code, TALLY_NOTFOUND);
    free(res);
    create_topic(f, 3, "x");
    buf_init(&c);
    command_encode_topic_create(&c, "x", &cfg);
    assert_int_equal(apply(f, 4, &c, &res), 0);
    assert_int_equal(res->items[0].code, TALLY_EXISTS);
    free(res);
    buf_free(&e);
    buf_free(&c);
}

static int configure(struct fixture *f, uint64_t index, const char *name, uint64_t created,
                     unsigned set, uint8_t policy, int64_t ms, int64_t bytes)
{
    struct buf e;
    struct store_result *res = NULL;
    struct command_topic_config c = {policy, ms, bytes, 0};
    buf_init(&e);
    command_encode_topic_config(&e, name, created, set, &c);
    assert_int_equal(e.len % 8, 0);
    assert_int_equal(apply(f, index, &e, &res), 0);
    int code = res->items[0].code;
    free(res);
    buf_free(&e);
    return code;
}

/* TOPIC_CONFIG changes what it names of the incarnation it names; the
 * change survives a checkpoint and a restart, and a replay. */
static void test_topic_config(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    create_listed(f, 2, "cfg");
    struct store_topic *t = store_topic_find(f->s, "cfg");
    assert_int_equal(configure(f, 3, "cfg", 2, COMMAND_CONFIG_POLICY, TALLY_POLICY_COMPACT, 5,
                               6), 0);
    assert_int_equal(t->config.policy, TALLY_POLICY_COMPACT);
    assert_int_equal(t->config.retention_ms, -1); /* not named: kept */
    assert_int_equal(configure(f, 4, "cfg", 2,
                               COMMAND_CONFIG_RETENTION_MS | COMMAND_CONFIG_RETENTION_BYTES, 0,
                               60000, 1 << 20), 0);
    assert_int_equal(t->config.policy, TALLY_POLICY_COMPACT);
    assert_int_equal(t->config.retention_ms, 60000);
    assert_int_equal(t->config.retention_bytes, 1 << 20);
    /* Another incarnation, another topic, bad values: refused, no change. */
    assert_int_equal(configure(f, 5, "cfg", 1, COMMAND_CONFIG_POLICY, 1, -1, -1),
                     TALLY_NOTFOUND);
    assert_int_equal(configure(f, 6, "none", 0, COMMAND_CONFIG_POLICY, 1, -1, -1),
                     TALLY_NOTFOUND);
    assert_int_equal(configure(f, 7, "cfg", 2, COMMAND_CONFIG_POLICY, 9, -1, -1), TALLY_INVAL);
    assert_int_equal(configure(f, 8, "cfg", 2, COMMAND_CONFIG_RETENTION_MS, 0, -2, -1),
                     TALLY_INVAL);
    assert_int_equal(configure(f, 9, "cfg", 2, 0, 0, -1, -1), TALLY_INVAL);
    assert_int_equal(t->config.policy, TALLY_POLICY_COMPACT);
    /* Checkpointed: a restart keeps it. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    reopen(f);
    t = store_topic_find(f->s, "cfg");
    assert_int_equal(t->config.policy, TALLY_POLICY_COMPACT);
    assert_int_equal(t->config.retention_ms, 60000);
    /* Not checkpointed: Raft replays the entry after the catalog's index. */
    assert_int_equal(configure(f, 10, "cfg", 2, COMMAND_CONFIG_POLICY, TALLY_POLICY_DELETE, 0,
                               0), 0);
    reopen(f);
    t = store_topic_find(f->s, "cfg");
    assert_int_equal(t->config.policy, TALLY_POLICY_COMPACT);
    assert_int_equal(configure(f, 10, "cfg", 2, COMMAND_CONFIG_POLICY, TALLY_POLICY_DELETE, 0,
                               0), 0);
    assert_int_equal(t->config.policy, TALLY_POLICY_DELETE);
}

/* Malformed entries fail apply with TALLY_CORRUPT or TALLY_VERSION. */
static void test_bad_entries(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    uint8_t junk[16] = {99, 1, 0, 0, 8, 0, 0, 0};
    assert_int_equal(store_apply(f->s, 2, junk, 4, NULL, errmsg), TALLY_CORRUPT);
    assert_int_equal(store_apply(f->s, 2, junk, 16, NULL, errmsg), TALLY_CORRUPT);
    junk[1] = 7;
    assert_int_equal(store_apply(f->s, 2, junk, 16, NULL, errmsg), TALLY_VERSION);
}

/* A new store in a new directory (*dir: tmpdir_remove and free it) that
 * installed @snap, as a follower does from the leader. */
static struct store *install_snapshot(struct fixture *f, const struct buf *snap, char **dir)
{
    char errmsg[ERR_MSG_SIZE];
    struct store *s2;
    *dir = tmpdir_make();
    assert_int_equal(store_open(*dir, &f->lc, &s2, errmsg), 0);
    assert_int_equal(store_restore(s2, snap->data, snap->len, false, errmsg), 0);
    return s2;
}

/* A node that crashed before any catalog listed a topic keeps that
 * topic's directory for the replayed create; if it installs the leader's
 * snapshot instead, the topic starts at the snapshot's offsets, not from
 * the stale directory. */
static void test_snapshot_install_over_a_kept_directory(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"s"};
    struct buf c, e, snap;
    struct command_topic_config cfg = {0, -1, -1, 0};
    char errmsg[ERR_MSG_SIZE];
    char *dir2 = tmpdir_make();
    struct store *leader;
    buf_init(&c);
    command_encode_topic_create(&c, "s", &cfg);
    buf_init(&e);
    append_entry(&e, t, 1, 5);
    assert_int_equal(store_open(dir2, &f->lc, &leader, errmsg), 0);
    assert_int_equal(store_apply(leader, 2, c.data, c.len, NULL, errmsg), 0);
    assert_int_equal(store_apply(leader, 3, e.data, e.len, NULL, errmsg), 0);
    assert_int_equal(store_apply(leader, 4, e.data, e.len, NULL, errmsg), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(leader, 4, &snap, errmsg), 0);
    store_close(leader);

    assert_int_equal(apply(f, 2, &c, NULL), 0);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    reopen(f); /* the directory of s stays, waiting for its create */
    assert_null(store_topic_find(f->s, "s"));
    assert_int_equal(store_restore(f->s, snap.data, snap.len, false, errmsg), 0);
    struct store_topic *tp = store_topic_find(f->s, "s");
    assert_non_null(tp);
    assert_int_equal(log_next_offset(tp->log), 10);
    assert_int_equal(log_start_offset(tp->log), 10);
    assert_int_equal(tp->missing_from, 0);
    assert_int_equal(tp->missing_to, 10);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&c);
    buf_free(&e);
    buf_free(&snap);
}

/* Installing a snapshot from the leader creates its topics at its offsets. */
static void test_snapshot_install(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"s"};
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, 2, "s");
    buf_init(&e);
    append_entry(&e, t, 1, 5);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 3, &snap, errmsg), 0);

    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    struct store_topic *tp = store_topic_find(s2, "s");
    assert_non_null(tp);
    assert_int_equal(log_next_offset(tp->log), 5);
    assert_int_equal(log_start_offset(tp->log), 5);
    /* The history before the snapshot is known to be missing here. */
    assert_int_equal(tp->missing_from, 0);
    assert_int_equal(tp->missing_to, 5);
    assert_int_equal(store_topic_start(tp), 0);
    /* The entry the snapshot covers is not applied again; a later one is. */
    assert_int_equal(store_apply(s2, 3, e.data, e.len, NULL, errmsg), 0);
    assert_int_equal(log_next_offset(tp->log), 5);
    assert_int_equal(store_apply(s2, 4, e.data, e.len, NULL, errmsg), 0);
    assert_int_equal(log_next_offset(tp->log), 10);
    /* The missing range is remembered across a restart. */
    store_close(s2);
    assert_int_equal(store_open(dir2, &f->lc, &s2, errmsg), 0);
    tp = store_topic_find(s2, "s");
    assert_int_equal(tp->missing_to, 5);
    assert_int_equal(log_next_offset(tp->log), 10);
    /* A damaged snapshot is refused. */
    snap.data[20] ^= 1;
    assert_int_equal(store_restore(s2, snap.data, snap.len, false, errmsg), TALLY_CORRUPT);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
    buf_free(&e);
}

static void produce(struct fixture *f, uint64_t index, const char *topic, uint64_t pid,
                    uint64_t seq, int want_code, uint64_t want_base, bool want_dup)
{
    const char *t[] = {topic};
    struct buf e;
    struct store_result *res = NULL;
    buf_init(&e);
    append_entry_from(&e, t, 1, 2, pid, seq);
    assert_int_equal(apply(f, index, &e, &res), 0);
    assert_int_equal(res->items[0].code, want_code);
    if (want_code == 0) {
        assert_int_equal(res->items[0].base_offset, want_base);
        assert_int_equal(res->items[0].duplicate, want_dup);
    }
    free(res);
    buf_free(&e);
}

/* A retried batch (same producer and sequence) gets the original offsets
 * and is not written again; a gap in the sequence is refused. */
static void test_idempotent_producer(void **state)
{
    struct fixture *f = *state;
    create_topic(f, 2, "ledger");
    produce(f, 3, "ledger", 77, 0, 0, 0, false);
    produce(f, 4, "ledger", 77, 1, 0, 2, false);
    produce(f, 5, "ledger", 77, 1, 0, 2, true);  /* retry of seq 1 */
    produce(f, 6, "ledger", 88, 5, 0, 4, false); /* another producer, any start */
    produce(f, 7, "ledger", 77, 3, TALLY_SEQUENCE, 0, false); /* gap */
    produce(f, 8, "ledger", 77, 0, TALLY_SEQUENCE, 0, false); /* old */
    produce(f, 9, "ledger", 77, 2, 0, 6, false);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "ledger")->log), 8);
}

/* As produce(), with a batch of 2 records whose sequence counts records
 * (a Kafka idempotent producer's, BATCH_FLAG_RECORD_SEQ). */
static void produce_record_seq(struct fixture *f, uint64_t index, const char *topic,
                               uint64_t pid, uint64_t seq, int want_code, uint64_t want_base,
                               bool want_dup)
{
    struct buf e, out;
    struct store_result *res = NULL;
    struct batch_builder b;
    buf_init(&e);
    buf_init(&out);
    batch_builder_init(&b, pid, seq);
    b.record_seq = true;
    assert_int_equal(batch_builder_add(&b, "k", 1, "a", 1), 0);
    assert_int_equal(batch_builder_add(&b, "k", 1, "b", 1), 0);
    assert_int_equal(batch_builder_finish(&b, false, &out), 0);
    batch_stamp(out.data, 0, 1700000000000, 0);
    command_append_begin(&e);
    command_append_add(&e, topic, out.data, (uint32_t)out.len, COMMAND_NO_EXPECT, NULL, 0);
    command_append_end(&e, 1);
    assert_int_equal(apply(f, index, &e, &res), 0);
    assert_int_equal(res->items[0].code, want_code);
    if (want_code == 0) {
        assert_int_equal(res->items[0].base_offset, want_base);
        assert_int_equal(res->items[0].duplicate, want_dup);
    }
    free(res);
    batch_builder_free(&b);
    buf_free(&out);
    buf_free(&e);
}

/* Kafka sequences count records: the next batch of 2 follows at +2; a
 * retry of the last batch gets its offsets; an earlier batch is a
 * DUPLICATE (already written), a gap is out of order; sequences wrap at
 * 2^31; nothing refused is written. */
static void test_record_seq_producer(void **state)
{
    struct fixture *f = *state;
    create_topic(f, 2, "k");
    produce_record_seq(f, 3, "k", 77, 0, 0, 0, false);
    produce_record_seq(f, 4, "k", 77, 2, 0, 2, false);
    produce_record_seq(f, 5, "k", 77, 2, 0, 2, true);             /* retry of the last */
    produce_record_seq(f, 6, "k", 77, 0, TALLY_DUPLICATE, 0, false); /* an earlier one */
    produce_record_seq(f, 7, "k", 77, 6, TALLY_SEQUENCE, 0, false);  /* a gap */
    produce_record_seq(f, 8, "k", 77, 4, 0, 4, false);
    produce_record_seq(f, 9, "k", 99, 2147483646, 0, 6, false);   /* new producer, near the end */
    produce_record_seq(f, 10, "k", 99, 0, 0, 8, false);           /* wrapped */
    assert_int_equal(log_next_offset(store_topic_find(f->s, "k")->log), 10);
}

/* The producer table survives a restart, with and without a checkpoint,
 * and a snapshot install carries it. */
static void test_producers_survive_restart(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    create_listed(f, 2, "l");
    produce(f, 3, "l", 5, 0, 0, 0, false);
    produce(f, 4, "l", 6, 0, 0, 2, false);
    reopen(f); /* no checkpoint since index 2: rebuilt from the log */
    produce(f, 5, "l", 5, 0, 0, 0, true);
    produce(f, 6, "l", 6, 0, 0, 2, true);
    produce(f, 7, "l", 5, 1, 0, 4, false);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    produce(f, 8, "l", 6, 1, 0, 6, false);
    reopen(f); /* checkpoint at 7, then one batch after it */
    produce(f, 9, "l", 5, 1, 0, 4, true);
    produce(f, 10, "l", 6, 1, 0, 6, true);

    struct buf snap;
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 10, &snap, errmsg), 0);
    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    store_close(f->s);
    f->s = s2;
    produce(f, 11, "l", 6, 1, 0, 6, true);
    produce(f, 12, "l", 6, 2, 0, 8, false);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
}

/* Apply one batch of @n records with key "k" under the given conditions;
 * returns the item's code and its actual value in *actual. */
static int produce_if(struct fixture *f, uint64_t index, uint64_t expect_offset,
                      const struct command_condition *conds, uint32_t n_conds, uint64_t *actual)
{
    struct batch_builder b;
    struct buf out, e;
    struct store_result *res = NULL;
    batch_builder_init(&b, 0, 0);
    buf_init(&out);
    buf_init(&e);
    assert_int_equal(batch_builder_add(&b, "k", 1, "v", 1), 0);
    assert_int_equal(batch_builder_add(&b, "k", 1, "w", 1), 0);
    assert_int_equal(batch_builder_finish(&b, false, &out), 0);
    command_append_begin(&e);
    command_append_add(&e, "c", out.data, (uint32_t)out.len, expect_offset, conds, n_conds);
    command_append_end(&e, 1);
    assert_int_equal(apply(f, index, &e, &res), 0);
    int code = res->items[0].code;
    *actual = res->items[0].actual;
    free(res);
    buf_free(&e);
    buf_free(&out);
    batch_builder_free(&b);
    return code;
}

static uint64_t version_of(struct fixture *f, const char *key)
{
    return keys_version(&store_topic_find(f->s, "c")->keys, key, strlen(key));
}

/* A snapshot installed on a node whose log already holds batches of
 * entries after the snapshot's index (its Raft log lost them in a crash,
 * its topic log did not: found by test/sim seed 211). The log is kept, so
 * the tables must count those batches: Raft replays the entries, apply
 * skips them as already written, and a retry of the last one must still
 * be a duplicate. */
static void test_install_under_a_longer_log(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE];
    uint64_t actual;
    struct command_condition k2 = {(const uint8_t *)"k", 1, 2};
    struct buf snap;
    create_topic(f, 2, "l");
    create_topic(f, 3, "c");
    produce(f, 4, "l", 9, 0, 0, 0, false);
    assert_int_equal(produce_if(f, 5, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 5, &snap, errmsg), 0);
    produce(f, 6, "l", 9, 1, 0, 2, false);
    assert_int_equal(produce_if(f, 7, COMMAND_NO_EXPECT, &k2, 1, &actual), 0);
    assert_int_equal(store_restore(f->s, snap.data, snap.len, false, errmsg), 0);
    /* Raft replays 6 and 7: already in the log, nothing written. */
    produce(f, 6, "l", 9, 1, 0, 0, false);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "l")->log), 4);
    assert_int_equal(version_of(f, "k"), 4);
    /* A retry of seq 1 is answered with its first offsets. */
    produce(f, 8, "l", 9, 1, 0, 2, true);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "l")->log), 4);
    /* The key is at version 4, not the snapshot's 2. */
    assert_int_equal(produce_if(f, 9, COMMAND_NO_EXPECT, &k2, 1, &actual), TALLY_CONDITION_FAILED);
    assert_int_equal(actual, 4);
    buf_free(&snap);
}

/* A node that stopped while it installed a snapshot (its disk full: the
 * restore failed and tallyd exited; or a crash) finds at start-up a Raft
 * snapshot newer than its store's checkpoints. That snapshot was never
 * restored here, so the start-up restore must install it, not keep the
 * older local state (test/sim seed 284: replicas apart). */
static void test_startup_restore_of_an_unfinished_install(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"new"};
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    /* The leader's state at index 5: topic "old" deleted, "new" created
     * with 3 records. */
    create_topic(f, 2, "old");
    buf_init(&e);
    command_encode_topic_delete(&e, "old");
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    create_topic(f, 4, "new");
    e.len = 0;
    append_entry(&e, t, 1, 3);
    assert_int_equal(apply(f, 5, &e, NULL), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 5, &snap, errmsg), 0);
    /* This node stopped at index 2 (checkpointed), before the install. */
    char *dir2 = tmpdir_make();
    struct store *s2;
    assert_int_equal(store_open(dir2, &f->lc, &s2, errmsg), 0);
    struct buf c;
    buf_init(&c);
    struct command_topic_config cfg = {0, -1, -1, 0};
    command_encode_topic_create(&c, "old", &cfg);
    assert_int_equal(store_apply(s2, 2, c.data, c.len, NULL, errmsg), 0);
    assert_int_equal(store_checkpoint(s2, errmsg), 0);
    /* Start-up: raft loads the snapshot at 5 and restores it "local first". */
    assert_int_equal(store_restore(s2, snap.data, snap.len, true, errmsg), 0);
    assert_null(store_topic_find(s2, "old"));
    struct store_topic *tp = store_topic_find(s2, "new");
    assert_non_null(tp);
    assert_int_equal(log_next_offset(tp->log), 3);
    assert_int_equal(store_applied(s2), 5);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&c);
    buf_free(&e);
    buf_free(&snap);
}

/* An install that stopped after resetting a log to the snapshot's offset
 * (before its checkpoint recorded the history as missing) is done again
 * at start-up: the history before the log's start must then be recorded
 * as missing, for backfill (test/sim seed 392). */
static void test_reinstall_after_an_unfinished_reset(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"s"};
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, 2, "s");
    buf_init(&e);
    append_entry(&e, t, 1, 5);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 3, &snap, errmsg), 0);
    /* This node had the topic at index 2, empty, checkpointed. */
    char *dir2 = tmpdir_make();
    struct store *s2;
    assert_int_equal(store_open(dir2, &f->lc, &s2, errmsg), 0);
    struct buf c;
    buf_init(&c);
    struct command_topic_config cfg = {0, -1, -1, 0};
    command_encode_topic_create(&c, "s", &cfg);
    assert_int_equal(store_apply(s2, 2, c.data, c.len, NULL, errmsg), 0);
    assert_int_equal(store_checkpoint(s2, errmsg), 0);
    /* The first install reset the log to 5, then stopped. */
    assert_int_equal(log_reset(store_topic_find(s2, "s")->log, 5, errmsg), 0);
    store_close(s2);
    assert_int_equal(store_open(dir2, &f->lc, &s2, errmsg), 0);
    assert_int_equal(store_restore(s2, snap.data, snap.len, true, errmsg), 0);
    struct store_topic *tp = store_topic_find(s2, "s");
    assert_int_equal(log_start_offset(tp->log), 5);
    assert_int_equal(tp->missing_from, 0);
    assert_int_equal(tp->missing_to, 5);
    assert_int_equal(store_topic_start(tp), 0);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&c);
    buf_free(&e);
    buf_free(&snap);
}

/* Conditions on the next offset and on key versions are checked in apply;
 * a failed one writes nothing and reports the actual value; several key
 * conditions are all-or-nothing. */
static void test_conditional_append(void **state)
{
    struct fixture *f = *state;
    uint64_t actual = 0;
    struct command_condition k0 = {(const uint8_t *)"k", 1, 0};
    struct command_condition k2 = {(const uint8_t *)"k", 1, 2};
    struct command_condition z0 = {(const uint8_t *)"z", 1, 0};
    struct command_condition z1 = {(const uint8_t *)"z", 1, 1};
    create_topic(f, 2, "c");
    assert_int_equal(produce_if(f, 3, 0, &k0, 1, &actual), 0);
    assert_int_equal(version_of(f, "k"), 2);
    assert_int_equal(produce_if(f, 4, 0, NULL, 0, &actual), TALLY_CONDITION_FAILED);
    assert_int_equal(actual, 2);
    assert_int_equal(produce_if(f, 5, COMMAND_NO_EXPECT, &k0, 1, &actual), TALLY_CONDITION_FAILED);
    assert_int_equal(actual, 2);
    struct command_condition both_bad[] = {k2, z1};
    assert_int_equal(produce_if(f, 6, COMMAND_NO_EXPECT, both_bad, 2, &actual),
                     TALLY_CONDITION_FAILED);
    assert_int_equal(actual, 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "c")->log), 2);
    struct command_condition both_ok[] = {k2, z0};
    assert_int_equal(produce_if(f, 7, 2, both_ok, 2, &actual), 0);
    assert_int_equal(version_of(f, "k"), 4);
    assert_int_equal(version_of(f, "z"), 0);
}

/* The key index is the same after a restart: rebuilt from the whole log
 * without a checkpoint, from the checkpoint plus the batches after it, and
 * from the log again when the checkpoint is damaged. */
static void test_keys_survive_restart(void **state)
{
    struct fixture *f = *state;
    uint64_t actual;
    char errmsg[ERR_MSG_SIZE], path[512];
    create_listed(f, 2, "c");
    assert_int_equal(produce_if(f, 3, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    reopen(f);
    assert_int_equal(version_of(f, "k"), 2);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(produce_if(f, 4, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    reopen(f);
    assert_int_equal(version_of(f, "k"), 4);
    /* Replayed entries change nothing. */
    assert_int_equal(produce_if(f, 4, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    assert_int_equal(version_of(f, "k"), 4);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    snprintf(path, sizeof path, "%s/topics/c/keys.ckpt", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 20, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    reopen(f);
    assert_int_equal(version_of(f, "k"), 4);
}

/* A checkpoint rewrites only the key checkpoints whose topics changed
 * since theirs (a rename puts a new file, a new inode, in place). */
static void test_checkpoint_skips_unchanged_keys(void **state)
{
    struct fixture *f = *state;
    uint64_t actual;
    char errmsg[ERR_MSG_SIZE], path[512];
    struct stat st;
    ino_t first;
    create_listed(f, 2, "c");
    assert_int_equal(produce_if(f, 3, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    snprintf(path, sizeof path, "%s/topics/c/keys.ckpt", f->dir);
    assert_int_equal(stat(path, &st), 0);
    first = st.st_ino;
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_ino == first); /* unchanged: not written */
    reopen(f);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_ino == first); /* still current after a restart */
    assert_int_equal(produce_if(f, 4, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_ino != first); /* changed: written */
    reopen(f);
    assert_int_equal(version_of(f, "k"), 4);
}

/* A snapshot is the state at its index even when entries are applied
 * between the freeze (loop) and the build (thread pool): the build works
 * from the frozen copy. Its checkpoints are at that index too, and an
 * older checkpoint never replaces a newer one. */
static void test_snapshot_frozen_while_applying(void **state)
{
    struct fixture *f = *state;
    struct store_frozen *fz;
    struct buf snap;
    uint64_t actual;
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, 2, "c");
    assert_int_equal(produce_if(f, 3, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    assert_int_equal(store_snapshot_freeze(f->s, 3, &fz, errmsg), 0);
    /* Applied after the freeze, before the build. */
    assert_int_equal(produce_if(f, 4, COMMAND_NO_EXPECT, NULL, 0, &actual), 0);
    assert_int_equal(version_of(f, "k"), 4);
    buf_init(&snap);
    assert_int_equal(store_snapshot_build(fz, &snap, errmsg), 0);
    store_snapshot_release(f->s, fz);
    /* Compaction may now use offsets below 2, the frozen next offset. */
    assert_int_equal(store_topic_find(f->s, "c")->compact_limit, 2);

    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    struct store_topic *tp = store_topic_find(s2, "c");
    assert_non_null(tp);
    assert_int_equal(log_next_offset(tp->log), 2);
    assert_int_equal(keys_version(&tp->keys, "k", 1), 2);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);

    /* A checkpoint at 4 by the loop, then the build of an older freeze:
     * the files keep index 4, and a restart finds version 4 at once. */
    assert_int_equal(store_snapshot_freeze(f->s, 3, &fz, errmsg), 0);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot_build(fz, &snap, errmsg), 0);
    store_snapshot_release(f->s, fz);
    buf_free(&snap);
    reopen(f);
    assert_int_equal(version_of(f, "k"), 4);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "c")->log), 4);
}

/* A snapshot fsyncs only the logs written since their last fsync: the
 * first fsync of the build is that of b, the one topic written after the
 * checkpoint, not that of a (first in catalog order). Failed on the old
 * code, which fsynced every topic's log. */
static void test_snapshot_syncs_only_written_logs(void **state)
{
    struct fixture *f = *state;
    struct store_frozen *fz;
    struct buf snap;
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, 2, "a");
    create_topic(f, 3, "b");
    produce(f, 4, "a", 0, 0, 0, 0, false);
    produce(f, 5, "b", 0, 0, 0, 0, false);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0); /* every log synced */
    produce(f, 6, "b", 0, 0, 0, 2, false);
    assert_int_equal(store_snapshot_freeze(f->s, 6, &fz, errmsg), 0);
    buf_init(&snap);
    fs_fault_inject(FS_OP_FSYNC, 0, EIO);
    assert_int_equal(store_snapshot_build(fz, &snap, errmsg), TALLY_IOERR);
    fs_fault_reset();
    if (strstr(errmsg, "the log of b") == NULL) {
        fail_msg("the first fsync was not b's: %s", errmsg);
    }
    buf_free(&snap);
    store_snapshot_release(f->s, fz);
    /* Without the fault, the snapshot is taken. */
    assert_int_equal(store_snapshot_freeze(f->s, 6, &fz, errmsg), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot_build(fz, &snap, errmsg), 0);
    store_snapshot_release(f->s, fz);
    buf_free(&snap);
}

/* Descriptors this process has open. */
static unsigned open_fds(void)
{
    char **names;
    size_t n;
    char errmsg[ERR_MSG_SIZE];
    assert_int_equal(fs_list("/proc/self/fd", &names, &n, errmsg), 0);
    fs_list_free(names, n);
    return (unsigned)n;
}

/* With more logs written since their last fsync than a quarter of the
 * descriptor limit, a freeze duplicates no descriptor per log (which could
 * double the node's open files: EMFILE with 10,000 written topics) and the
 * build syncs the file system once. */
static void test_freeze_of_many_written_logs(void **state)
{
    struct fixture *f = *state;
    struct store_frozen *fz;
    struct buf snap;
    struct rlimit rl, was;
    char errmsg[ERR_MSG_SIZE], name[32];
    uint64_t index = 2;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    rl = was;
    rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024; /* a quarter: 256 */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "t%03d", i);
        create_topic(f, index++, name);
        produce(f, index++, name, 0, 0, 0, 0, false);
    }
    unsigned before = open_fds();
    assert_int_equal(store_snapshot_freeze(f->s, index - 1, &fz, errmsg), 0);
    assert_true(open_fds() <= before + 1); /* the data directory's, for syncfs */
    buf_init(&snap);
    assert_int_equal(store_snapshot_build(fz, &snap, errmsg), 0);
    store_snapshot_release(f->s, fz);
    buf_free(&snap);
    assert_int_equal(open_fds(), before);
    /* A few written logs: a duplicate each, as before. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    produce(f, index++, "t007", 0, 0, 0, 2, false);
    produce(f, index++, "t008", 0, 0, 0, 2, false);
    assert_int_equal(checkpoint_off_loop(f), 0);
    before = open_fds();
    assert_int_equal(store_snapshot_freeze(f->s, index - 1, &fz, errmsg), 0);
    assert_int_equal(open_fds(), before + 2);
    store_snapshot_release(f->s, fz);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
}

/* Group positions are applied, kept in the checkpoint and the snapshot. */
static void test_group_positions(void **state)
{
    struct fixture *f = *state;
    struct buf e;
    uint64_t off = 99;
    char errmsg[ERR_MSG_SIZE];
    const char *c[] = {"c"};
    create_topic(f, 2, "c");
    assert_false(store_group_offset(f->s, "g", "c", &off));
    buf_init(&e);
    append_entry(&e, c, 1, 42);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_free(&e);
    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 42, 2);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 42);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    reopen(f);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 42);
    buf_free(&e);
    struct buf snap;
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 3, &snap, errmsg), 0);
    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    assert_true(store_group_offset(s2, "g", "c", &off));
    assert_int_equal(off, 42);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
}

/* The cluster id and the members' data directories (catalog version 2):
 * the first cluster id stays, a directory is recorded and forgotten, and
 * both survive a reopen and travel in a snapshot. A version 1 catalog (no
 * such fields) still opens, with none. */
static void test_cluster_identity(void **state)
{
    struct fixture *f = *state;
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    char *dir2;
    assert_int_equal(store_cluster_id(f->s), 0);
    buf_init(&e);
    command_encode_cluster_id(&e, 0xabcdef, NULL);
    assert_int_equal(apply(f, 2, &e, NULL), 0);
    e.len = 0;
    command_encode_cluster_id(&e, 0x1234, NULL);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    assert_int_equal(store_cluster_id(f->s), 0xabcdef);
    e.len = 0;
    command_encode_member_dir(&e, 1, 0x111);
    assert_int_equal(apply(f, 4, &e, NULL), 0);
    e.len = 0;
    command_encode_member_dir(&e, 2, 0x222);
    assert_int_equal(apply(f, 5, &e, NULL), 0);
    e.len = 0;
    command_encode_member_dir(&e, 1, 0);
    assert_int_equal(apply(f, 6, &e, NULL), 0);
    assert_int_equal(store_member_dir(f->s, 1), 0);
    assert_int_equal(store_member_dir(f->s, 2), 0x222);
    buf_free(&e);
    /* Only the catalog holds it: a checkpoint (off the loop) is wanted. */
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(checkpoint_off_loop(f), 0);
    assert_false(store_checkpoint_wanted(f->s));
    reopen(f);
    assert_int_equal(store_cluster_id(f->s), 0xabcdef);
    assert_int_equal(store_member_dir(f->s, 2), 0x222);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 6, &snap, errmsg), 0);
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    assert_int_equal(store_cluster_id(s2), 0xabcdef);
    assert_int_equal(store_member_dir(s2, 2), 0x222);
    assert_int_equal(store_member_dir(s2, 1), 0);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
}

/* Code of the single result of applying @e at @index. */
static int apply_code(struct fixture *f, uint64_t index, struct buf *e)
{
    struct store_result *res = NULL;
    assert_int_equal(apply(f, index, e, &res), 0);
    int code = res->items[0].code;
    free(res);
    return code;
}

/* A position belongs to one incarnation of its topic: a commit past the
 * end or for a deleted incarnation is refused, deleting the topic deletes
 * its positions (so the topic created again starts afresh), and
 * GROUP_DELETE forgets them. A GROUP_COMMIT without the topic id (an entry
 * written before it existed) applies to the topic as it is. */
static void test_group_positions_follow_the_topic(void **state)
{
    struct fixture *f = *state;
    const char *c[] = {"c"};
    struct buf e;
    uint64_t off = 0;
    create_topic(f, 2, "c");
    buf_init(&e);
    append_entry(&e, c, 1, 5);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_free(&e);

    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 6, 2);
    assert_int_equal(apply_code(f, 4, &e), TALLY_OUT_OF_RANGE);
    buf_free(&e);
    assert_false(store_group_offset(f->s, "g", "c", &off));
    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 5, 2);
    assert_int_equal(apply_code(f, 5, &e), 0);
    buf_free(&e);

    /* An entry of the first format: no topic id. */
    buf_init(&e);
    buf_put_u8(&e, COMMAND_GROUP_COMMIT);
    buf_put_u8(&e, COMMAND_VERSION);
    buf_put_u16(&e, 0);
    buf_put_u32(&e, 2 + 1 + 2 + 1 + 8);
    buf_put_str(&e, "h");
    buf_put_str(&e, "c");
    buf_put_u64(&e, 3);
    buf_pad(&e, 8);
    assert_int_equal(apply_code(f, 6, &e), 0);
    buf_free(&e);
    assert_true(store_group_offset(f->s, "h", "c", &off));
    assert_int_equal(off, 3);

    buf_init(&e);
    command_encode_topic_delete(&e, "c");
    assert_int_equal(apply(f, 7, &e, NULL), 0);
    buf_free(&e);
    create_topic(f, 8, "c");
    assert_false(store_group_offset(f->s, "g", "c", &off));
    assert_false(store_group_offset(f->s, "h", "c", &off));

    /* A consumer of the deleted incarnation (id 2) commits late. */
    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 0, 2);
    assert_int_equal(apply_code(f, 9, &e), TALLY_NOTFOUND);
    buf_free(&e);
    assert_false(store_group_offset(f->s, "g", "c", &off));
    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 0, 8);
    assert_int_equal(apply_code(f, 10, &e), 0);
    buf_free(&e);
    assert_true(store_group_offset(f->s, "g", "c", &off));

    buf_init(&e);
    command_encode_group_delete(&e, "g", "");
    assert_int_equal(apply_code(f, 11, &e), 0);
    assert_false(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(apply_code(f, 12, &e), TALLY_NOTFOUND);
    buf_free(&e);
}

/* A checkpoint written at start-up, before Raft replays (a restore, or a
 * retention pass), is labelled with the catalog's index, not the logs'
 * tail: a group commit between the two is replayed, not skipped. */
static void test_group_commit_replayed_after_a_startup_checkpoint(void **state)
{
    struct fixture *f = *state;
    const char *c[] = {"c"};
    struct buf e, g;
    uint64_t off = 0;
    char errmsg[ERR_MSG_SIZE];
    create_listed(f, 2, "c"); /* the catalog is written at index 2 */
    buf_init(&e);
    append_entry(&e, c, 1, 2);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_init(&g);
    command_encode_group_commit(&g, "g", "c", 2, 2);
    assert_int_equal(apply(f, 4, &g, NULL), 0);
    assert_int_equal(apply(f, 5, &e, NULL), 0); /* the log's tail: index 5 */
    reopen(f);                                   /* a crash: no checkpoint */
    assert_false(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    reopen(f);
    /* Raft replays 3..5: the batches are in the log, the commit is not. */
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    assert_int_equal(apply(f, 4, &g, NULL), 0);
    assert_int_equal(apply(f, 5, &e, NULL), 0);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 2);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "c")->log), 4);
    buf_free(&e);
    buf_free(&g);
}

/* Share positions of a shared group (GROUP_SHARES, docs/groups.md): a
 * group without a position gets a share table at the topic's start; a
 * share never moves back; the group's offset is the lowest share; a
 * share count change starts every share at that offset; a plain commit
 * drops the table; refusals as GROUP_COMMIT's; the table survives a
 * checkpoint and reopen (catalog version 4) and travels in a snapshot. */
static void test_group_share_positions(void **state)
{
    struct fixture *f = *state;
    struct buf e;
    uint64_t off = 99;
    unsigned n = 0;
    const uint64_t *pos = NULL;
    char errmsg[ERR_MSG_SIZE];
    const char *c[] = {"c"};
    create_topic(f, 2, "c");
    buf_init(&e);
    append_entry(&e, c, 1, 20);
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    buf_free(&e);

    struct command_share_pos two[] = {{1, 10}, {3, 12}};
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 2, 4, two, 2);
    assert_int_equal(apply_code(f, 4, &e), 0);
    buf_free(&e);
    assert_true(store_group_shares(f->s, "g", "c", &n, &pos));
    assert_int_equal(n, 4);
    assert_int_equal(pos[0], 0);
    assert_int_equal(pos[1], 10);
    assert_int_equal(pos[2], 0);
    assert_int_equal(pos[3], 12);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 0);

    struct command_share_pos all[] = {{0, 15}, {1, 5}, {2, 16}, {3, 14}};
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 2, 4, all, 4);
    assert_int_equal(apply_code(f, 5, &e), 0);
    buf_free(&e);
    assert_true(store_group_shares(f->s, "g", "c", &n, &pos));
    assert_int_equal(pos[1], 10); /* 5 < 10: a share position never moves back */
    assert_int_equal(pos[3], 14);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 10);

    /* Refused: a share out of range, an offset past the end, another
     * incarnation. Nothing changes. */
    struct command_share_pos bad_share[] = {{4, 1}};
    struct command_share_pos past_end[] = {{0, 21}};
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 2, 4, bad_share, 1);
    assert_int_equal(apply_code(f, 6, &e), TALLY_INVAL);
    buf_free(&e);
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 2, 4, past_end, 1);
    assert_int_equal(apply_code(f, 7, &e), TALLY_OUT_OF_RANGE);
    buf_free(&e);
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 99, 4, all, 4);
    assert_int_equal(apply_code(f, 8, &e), TALLY_NOTFOUND);
    buf_free(&e);

    /* Checkpoint and reopen; a snapshot carries the table too. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    reopen(f);
    assert_true(store_group_shares(f->s, "g", "c", &n, &pos));
    assert_int_equal(n, 4);
    assert_int_equal(pos[0], 15);
    assert_int_equal(pos[2], 16);
    struct buf snap;
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 8, &snap, errmsg), 0);
    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    assert_true(store_group_shares(s2, "g", "c", &n, &pos));
    assert_int_equal(n, 4);
    assert_int_equal(pos[3], 14);
    assert_true(store_group_offset(s2, "g", "c", &off));
    assert_int_equal(off, 10);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);

    /* Another share count: every share restarts at the group's offset. */
    struct command_share_pos one[] = {{0, 11}};
    buf_init(&e);
    command_encode_group_commit_shares(&e, "g", "c", 2, 2, one, 1);
    assert_int_equal(apply_code(f, 9, &e), 0);
    buf_free(&e);
    assert_true(store_group_shares(f->s, "g", "c", &n, &pos));
    assert_int_equal(n, 2);
    assert_int_equal(pos[0], 11);
    assert_int_equal(pos[1], 10);

    /* A plain commit (a reset, a Kafka commit) drops the table. */
    buf_init(&e);
    command_encode_group_commit(&e, "g", "c", 3, 2);
    assert_int_equal(apply_code(f, 10, &e), 0);
    buf_free(&e);
    assert_true(store_group_shares(f->s, "g", "c", &n, &pos));
    assert_int_equal(n, 0);
    assert_true(store_group_offset(f->s, "g", "c", &off));
    assert_int_equal(off, 3);
}

/* At start-up a log that lost records the snapshot covers (a damaged
 * segment cut at recovery) takes the snapshot's state and records the
 * range it lacks; the other topics keep theirs. */
static void test_restore_repairs_a_short_log(void **state)
{
    struct fixture *f = *state;
    const char *a[] = {"a"};
    const char *b[] = {"b"};
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    uint64_t next;
    create_topic(f, 2, "a");
    create_topic(f, 3, "b");
    buf_init(&e);
    append_entry(&e, a, 1, 4);
    assert_int_equal(apply(f, 4, &e, NULL), 0);
    buf_free(&e);
    buf_init(&e);
    append_entry(&e, b, 1, 3);
    assert_int_equal(apply(f, 5, &e, NULL), 0);
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 5, &snap, errmsg), 0);
    assert_int_equal(log_truncate(store_topic_find(f->s, "a")->log, 0, &next, errmsg), 0);
    reopen(f);
    assert_int_equal(store_restore(f->s, snap.data, snap.len, true, errmsg), 0);
    struct store_topic *ta = store_topic_find(f->s, "a");
    struct store_topic *tb = store_topic_find(f->s, "b");
    assert_int_equal(log_next_offset(ta->log), 4);
    assert_int_equal(ta->missing_to, 4);
    /* Its key index is the snapshot's, though it has no producer table. */
    assert_int_equal(keys_version(&ta->keys, "k", 1), 4);
    assert_int_equal(log_next_offset(tb->log), 3);
    assert_int_equal(tb->missing_to, 0);
    assert_int_equal(log_start_offset(tb->log), 0);
    /* The next entry goes after the snapshot's offsets. */
    assert_int_equal(apply(f, 6, &e, NULL), 0);
    assert_int_equal(log_next_offset(tb->log), 6);
    buf_free(&e);
    buf_free(&snap);
}

/* Checkpoints that count records the log lost since (a damaged tail cut
 * at open, after a clean shutdown's checkpoint) are not believed: the key
 * index and the producer table are rebuilt from the log, so the entries
 * Raft replays are written again with the same offsets and versions; and
 * with a snapshot, the topic goes back to the snapshot's state. */
static void cas_at(struct fixture *f, uint64_t index, uint64_t version, uint64_t want_base)
{
    struct command_condition k = {(const uint8_t *)"k", 1, version};
    uint64_t actual = 0;
    assert_int_equal(produce_if(f, index, COMMAND_NO_EXPECT, &k, 1, &actual), 0);
    assert_int_equal(log_next_offset(store_topic_find(f->s, "c")->log), want_base + 2);
}

static void damaged_history(struct fixture *f, struct buf *snap)
{
    char errmsg[ERR_MSG_SIZE];
    create_topic(f, 2, "c");
    for (uint64_t i = 0; i < 4; i++) {
        cas_at(f, 3 + i, 2 * i, 2 * i); /* indexes 3..6, offsets 0..7 */
    }
    assert_int_equal(store_snapshot(f->s, 6, snap, errmsg), 0);
    cas_at(f, 7, 8, 8);
    cas_at(f, 8, 10, 10);
    produce(f, 9, "c", 77, 0, 0, 12, false);
    assert_int_equal(store_checkpoint(f->s, errmsg), 0); /* counts offsets 0..13 */
}

static void replay_after_damage(struct fixture *f)
{
    cas_at(f, 7, 8, 8);
    cas_at(f, 8, 10, 10);
    produce(f, 9, "c", 77, 0, 0, 12, false); /* not taken for a retry */
    assert_int_equal(version_of(f, "k"), 14);
}

/* damaged_history, then the log cut to offset @cut (its tail damaged) and
 * the store opened again. */
static void damaged_and_reopened(struct fixture *f, struct buf *snap, uint64_t cut)
{
    char errmsg[ERR_MSG_SIZE];
    uint64_t next;
    buf_init(snap);
    damaged_history(f, snap);
    assert_int_equal(log_truncate(store_topic_find(f->s, "c")->log, cut, &next, errmsg), 0);
    reopen(f);
}

static void test_checkpoint_ahead_of_a_damaged_log(void **state)
{
    struct fixture *f = *state;
    struct buf snap;
    damaged_and_reopened(f, &snap, 8);
    struct store_topic *t = store_topic_find(f->s, "c");
    assert_true(t->damaged);
    assert_int_equal(log_next_offset(t->log), 8);
    assert_int_equal(version_of(f, "k"), 8);
    /* Raft replays the entries after the last batch the log holds. */
    replay_after_damage(f);
    buf_free(&snap);
}

static void test_damaged_log_goes_back_to_the_snapshot(void **state)
{
    struct fixture *f = *state;
    struct buf snap;
    char errmsg[ERR_MSG_SIZE];
    damaged_and_reopened(f, &snap, 10);
    assert_int_equal(version_of(f, "k"), 10);
    assert_int_equal(store_restore(f->s, snap.data, snap.len, true, errmsg), 0);
    struct store_topic *t = store_topic_find(f->s, "c");
    assert_false(t->damaged);
    assert_int_equal(log_next_offset(t->log), 8); /* cut back to the snapshot's */
    assert_int_equal(t->missing_to, 0);
    assert_int_equal(version_of(f, "k"), 8);
    /* Raft replays from the snapshot's index; a restart half-way keeps
     * what was replayed (the checkpoint the restore wrote counts offsets
     * below 8 only). */
    cas_at(f, 7, 8, 8);
    reopen(f);
    assert_false(store_topic_find(f->s, "c")->damaged);
    assert_int_equal(version_of(f, "k"), 10);
    cas_at(f, 8, 10, 10);
    produce(f, 9, "c", 77, 0, 0, 12, false);
    assert_int_equal(version_of(f, "k"), 14);
    buf_free(&snap);
}

/* The snapshot's offset is below the log's start (retention removed what
 * the checkpoints did not count, or a log reset): the topic restarts at
 * the snapshot's offset and records the history below as missing. */
static void test_damaged_log_starts_past_the_snapshot(void **state)
{
    struct fixture *f = *state;
    struct buf snap;
    char errmsg[ERR_MSG_SIZE];
    buf_init(&snap);
    damaged_history(f, &snap);
    assert_int_equal(log_reset(store_topic_find(f->s, "c")->log, 20, errmsg), 0);
    reopen(f);
    struct store_topic *t = store_topic_find(f->s, "c");
    assert_true(t->damaged);
    assert_int_equal(store_restore(f->s, snap.data, snap.len, true, errmsg), 0);
    t = store_topic_find(f->s, "c");
    assert_false(t->damaged);
    assert_int_equal(log_start_offset(t->log), 8);
    assert_int_equal(log_next_offset(t->log), 8);
    assert_int_equal(t->missing_from, 0);
    assert_int_equal(t->missing_to, 8);
    assert_int_equal(version_of(f, "k"), 8);
    replay_after_damage(f);
    buf_free(&snap);
}

/* A version 1 key checkpoint (no next offset) is still used: it counted
 * the batches up to its index. */
static void test_keys_checkpoint_version_1(void **state)
{
    struct fixture *f = *state;
    char errmsg[ERR_MSG_SIZE], path[PATH_MAX];
    create_topic(f, 2, "c");
    for (uint64_t i = 0; i < 3; i++) {
        cas_at(f, 3 + i, 2 * i, 2 * i);
    }
    assert_int_equal(store_checkpoint(f->s, errmsg), 0);
    cas_at(f, 6, 6, 6); /* after the checkpoint */
    store_close(f->s);
    f->s = NULL;
    /* Rewrite keys.ckpt as version 1: drop the next offset. */
    snprintf(path, sizeof path, "%s/topics/c/keys.ckpt", f->dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    uint8_t in[4096], out[4096];
    size_t n = fread(in, 1, sizeof in, fp);
    fclose(fp);
    assert_true(n > 32 && n < sizeof in);
    memcpy(out, in, 16);
    byte_put_u32(out + 4, 1);
    memcpy(out + 16, in + 24, n - 24 - 8);
    size_t m = n - 8 - 8;
    byte_put_u64(out + m, codec_checksum(out, m));
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(out, 1, m + 8, fp), m + 8);
    fclose(fp);
    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
    assert_false(store_topic_find(f->s, "c")->damaged);
    assert_int_equal(version_of(f, "k"), 8);
    /* Used, not rebuilt: retention and compaction may touch what it
     * counted (a rebuilt index would leave them nothing, limit 0). */
    assert_int_equal(store_topic_find(f->s, "c")->compact_limit, 6);
}

/* A log that lacks its history (a snapshot installed over a damaged or
 * short log, backfill pending) starts above the topic's start: the
 * retention decision must not take its start for a retention cut (the
 * fault suite saw a new leader propose it right after such an install, and
 * every node delete the records it lacked). */
static void test_retention_ignores_missing_history(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"gap"};
    struct command_topic_config cfg = {TALLY_POLICY_DELETE, -1, 0, 0};
    struct buf e, c;
    char errmsg[ERR_MSG_SIZE];
    struct store_topic *tp;
    uint64_t start, tombs;

    buf_init(&c);
    command_encode_topic_create(&c, "gap", &cfg);
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    buf_init(&e);
    append_entry(&e, t, 1, 20);
    for (uint64_t i = 3; i < 9; i++) {
        assert_int_equal(apply(f, i, &e, NULL), 0);
    }
    tp = store_topic_find(f->s, "gap");
    assert_false(store_retention_due(tp, 1700000000000, -1, &start, &tombs));
    /* As snap.c leaves it: the log restarted at 6, [0, 6) missing. */
    assert_int_equal(log_reset(tp->log, 6, errmsg), 0);
    tp->missing_from = 0;
    tp->missing_to = 6;
    assert_false(store_retention_due(tp, 1700000000000, -1, &start, &tombs));
    assert_int_equal(start, 0);
    /* Backfilled or not, a log start that retention did not make is no cut. */
    tp->missing_from = tp->missing_to = 0;
    assert_false(store_retention_due(tp, 1700000000000, -1, &start, &tombs));
    assert_int_equal(start, 0);
    buf_free(&e);
    buf_free(&c);
}

/* TOPIC_TRIM: the leader's retention decision. Every node applying it
 * deletes the whole segments below the new start offset and hides the rest
 * of the records below it; it survives a restart (catalog version 2), a
 * snapshot install, and never moves back. The decision itself
 * (store_retention_due) changes nothing. */
static void test_trim_sets_the_start_offset(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"ret"};
    struct command_topic_config cfg = {TALLY_POLICY_DELETE, -1, 2048, 0};
    struct buf e, c, snap;
    struct store_result *res = NULL;
    char errmsg[ERR_MSG_SIZE];
    struct store_topic *tp;
    uint64_t start, tombs, created;

    f->lc.segment_bytes = 1024;
    reopen(f);
    buf_init(&c);
    command_encode_topic_create(&c, "ret", &cfg);
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    buf_init(&e);
    append_entry(&e, t, 1, 20);
    for (uint64_t i = 3; i < 23; i++) {
        assert_int_equal(apply(f, i, &e, NULL), 0);
    }
    tp = store_topic_find(f->s, "ret");
    created = tp->created_index;
    assert_true(log_segment_count(tp->log) > 4);
    assert_int_equal(store_topic_start(tp), 0);

    /* Retention by size is due; deciding it deletes nothing. */
    unsigned segs = log_segment_count(tp->log);
    assert_true(store_retention_due(tp, 1700000000000, -1, &start, &tombs));
    assert_true(start > 0);
    assert_int_equal(tombs, 0);
    assert_int_equal(log_segment_count(tp->log), segs);
    assert_int_equal(log_start_offset(tp->log), 0);

    /* The cut, inside a segment: whole segments below go, the rest is hidden. */
    assert_int_equal(store_checkpoint(f->s, errmsg), 0); /* a catalog that lists it */
    uint64_t cut = start + 3;
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "ret", created, cut, 0);
    assert_int_equal(c.len % 8, 0);
    assert_int_equal(apply(f, 23, &c, &res), 0);
    assert_int_equal(res->items[0].code, 0);
    free(res);
    assert_int_equal(tp->trim_offset, cut);
    assert_int_equal(store_topic_start(tp), cut);
    /* Applying it writes and deletes nothing (a catalog write per trimmed
     * topic was O(topics) on the loop); a restart now replays it. */
    assert_int_equal(log_segment_count(tp->log), segs);
    assert_false(store_retention_due(tp, 1700000000000, -1, &start, &tombs));
    reopen(f);
    tp = store_topic_find(f->s, "ret");
    assert_int_equal(store_topic_start(tp), 0); /* the catalog is older */
    assert_int_equal(apply(f, 23, &c, NULL), 0); /* Raft replays the entry */
    assert_int_equal(store_topic_start(tp), cut);
    assert_int_equal(log_segment_count(tp->log), segs);
    /* A held deletion (a backup) wants no checkpoint... */
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(store_hold_trim(f->s, true, errmsg), 0);
    assert_false(store_checkpoint_wanted(f->s));
    assert_int_equal(log_segment_count(tp->log), segs);
    /* ...and the release deletes only what a checkpoint recorded. */
    assert_int_equal(store_hold_trim(f->s, false, errmsg), 0);
    assert_int_equal(log_segment_count(tp->log), segs);
    /* One checkpoint: it records the start, then the segments go. */
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(checkpoint_off_loop(f), 0);
    assert_true(log_start_offset(tp->log) <= cut);
    assert_true(log_start_offset(tp->log) > 0);
    assert_true(log_segment_count(tp->log) < segs);
    assert_false(store_checkpoint_wanted(f->s)); /* nothing waits */

    /* Never back; another topic of the same name is not touched. */
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "ret", created, 1, 0);
    assert_int_equal(apply(f, 24, &c, NULL), 0);
    assert_int_equal(store_topic_start(tp), cut);
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "ret", created + 100, cut + 50, 0);
    assert_int_equal(apply(f, 25, &c, &res), 0);
    assert_int_equal(res->items[0].code, TALLY_NOTFOUND);
    free(res);
    assert_int_equal(store_topic_start(tp), cut);

    /* A restart keeps it (and replaying the entry changes nothing). */
    reopen(f);
    tp = store_topic_find(f->s, "ret");
    assert_int_equal(tp->trim_offset, cut);
    assert_int_equal(store_topic_start(tp), cut);
    assert_int_equal(log_next_offset(tp->log), 400);

    /* A node that installs a snapshot gets the same start offset. */
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 25, &snap, errmsg), 0);
    char *dir2;
    struct store *s2 = install_snapshot(f, &snap, &dir2);
    struct store_topic *t2 = store_topic_find(s2, "ret");
    assert_non_null(t2);
    assert_int_equal(store_topic_start(t2), cut);
    assert_int_equal(t2->trim_offset, cut);
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
    buf_free(&c);
    buf_free(&e);
}

/* A shared copy of a key index (a snapshot's freeze) keeps what it was
 * while the index it came from is written to, grows, or is freed. */
static void test_keys_copy_on_write(void **state)
{
    struct keys k, frozen, again;
    struct buf before, after;
    char key[32];
    (void)state;
    keys_init(&k);
    keys_init(&frozen);
    keys_init(&again);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(keys_bump(&k, key, strlen(key), (uint64_t)i), 0);
    }
    size_t cap = k.cap;
    buf_init(&before);
    keys_encode(&k, &before);
    assert_int_equal(keys_share(&frozen, &k), 0);
    assert_int_equal(frozen.n, 5000);
    /* Writes to old keys, then enough new ones for the table to grow. */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(keys_bump(&k, key, strlen(key), 9000), 0);
    }
    assert_int_equal(keys_share(&again, &k), 0); /* a second copy, mid-way */
    for (int i = 5000; i < 10000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(keys_bump(&k, key, strlen(key), (uint64_t)i), 0);
    }
    assert_true(k.cap > cap);
    buf_init(&after);
    keys_encode(&frozen, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    assert_int_equal(keys_version(&frozen, "k0", 2), 1);
    assert_int_equal(keys_version(&frozen, "k7000", 5), 0);
    assert_int_equal(keys_version(&again, "k0", 2), 2);
    assert_int_equal(keys_version(&again, "k7000", 5), 0);
    assert_int_equal(keys_version(&k, "k0", 2), 2);
    assert_int_equal(keys_version(&k, "k7000", 5), 1);
    assert_int_equal(k.n, 10000);
    /* Freed in any order: what is left still reads. */
    keys_free(&k);
    assert_int_equal(keys_version(&again, "k99", 3), 2);
    assert_int_equal(keys_version(&again, "k100", 4), 1);
    keys_free(&frozen);
    assert_int_equal(keys_version(&again, "k4999", 5), 1);
    keys_free(&again);
    buf_free(&before);
    buf_free(&after);
}

/* A checkpoint built off the loop records the trims applied before its
 * freeze: a trim applied while it was being built waits for the next one
 * (its segments stay), as a restart before that would replay it. */
static void test_trim_after_the_freeze_waits(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"ret"};
    struct command_topic_config cfg = {TALLY_POLICY_DELETE, -1, 2048, 0};
    struct buf e, c;
    char errmsg[ERR_MSG_SIZE] = "";
    struct store_frozen *fr;

    f->lc.segment_bytes = 1024;
    reopen(f);
    buf_init(&c);
    command_encode_topic_create(&c, "ret", &cfg);
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    buf_init(&e);
    append_entry(&e, t, 1, 20);
    for (uint64_t i = 3; i < 23; i++) {
        assert_int_equal(apply(f, i, &e, NULL), 0);
    }
    struct store_topic *tp = store_topic_find(f->s, "ret");
    uint64_t created = tp->created_index;
    assert_int_equal(checkpoint_off_loop(f), 0);
    unsigned segs = log_segment_count(tp->log);
    assert_true(segs > 4);
    /* A first trim, then the freeze, then a second trim. */
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "ret", created, 100, 0);
    assert_int_equal(apply(f, 23, &c, NULL), 0);
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(store_checkpoint_freeze(f->s, &fr, errmsg), 0);
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "ret", created, 300, 0);
    assert_int_equal(apply(f, 24, &c, NULL), 0);
    assert_int_equal(store_checkpoint_build(fr, errmsg), 0);
    assert_int_equal(store_checkpoint_release(f->s, fr, true, NULL, errmsg), 0);
    /* Nothing deleted: the start the checkpoint recorded is not the
     * topic's any more. */
    assert_int_equal(log_segment_count(tp->log), segs);
    assert_true(store_checkpoint_wanted(f->s));
    /* A restart now replays the second trim from Raft's log. */
    reopen(f);
    tp = store_topic_find(f->s, "ret");
    assert_int_equal(tp->trim_offset, 100);
    /* (the open deleted the segments below the start the catalog has) */
    assert_true(log_segment_count(tp->log) < segs);
    assert_true(log_start_offset(tp->log) > 0);
    assert_true(log_start_offset(tp->log) <= 100);
    segs = log_segment_count(tp->log);
    assert_int_equal(apply(f, 24, &c, NULL), 0);
    assert_int_equal(tp->trim_offset, 300);
    /* A failed build leaves the checkpoint wanted and deletes nothing. */
    assert_int_equal(store_checkpoint_freeze(f->s, &fr, errmsg), 0);
    assert_int_equal(store_checkpoint_release(f->s, fr, false, NULL, errmsg), 0);
    assert_int_equal(log_segment_count(tp->log), segs);
    assert_true(store_checkpoint_wanted(f->s));
    /* The next one records it, and the segments below 300 go: out of the
     * log at the release, their files when the removals run (off the
     * loop, in the server). */
    char tdir[PATH_MAX + 32];
    snprintf(tdir, sizeof tdir, "%s/topics/ret", f->dir);
    assert_int_equal(count_files(tdir, ".seg"), segs);
    struct log_removals *rm = log_removals_new();
    assert_non_null(rm);
    assert_int_equal(store_checkpoint_freeze(f->s, &fr, errmsg), 0);
    assert_int_equal(store_checkpoint_build(fr, errmsg), 0);
    assert_int_equal(store_checkpoint_release(f->s, fr, true, rm, errmsg), 0);
    assert_true(log_segment_count(tp->log) < segs);
    assert_false(log_removals_empty(rm));
    assert_int_equal(count_files(tdir, ".seg"), segs);
    log_removals_run(rm);
    assert_int_equal(count_files(tdir, ".seg"), log_segment_count(tp->log));
    assert_true(log_start_offset(tp->log) > 100);
    assert_true(log_start_offset(tp->log) <= 300);
    assert_false(store_checkpoint_wanted(f->s));
    buf_free(&c);
    buf_free(&e);
}

/* The tombstone limit of a compacted topic is decided from record time and
 * only moves forward. */
static void test_trim_tombstone_limit(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"kv"};
    struct command_topic_config cfg = {TALLY_POLICY_COMPACT, -1, -1, 0};
    struct buf e, c;
    struct store_topic *tp;
    uint64_t start, tombs;

    buf_init(&c);
    command_encode_topic_create(&c, "kv", &cfg);
    assert_int_equal(apply(f, 2, &c, NULL), 0);
    buf_init(&e);
    append_entry(&e, t, 1, 5); /* stamped 1700000000000 */
    assert_int_equal(apply(f, 3, &e, NULL), 0);
    tp = store_topic_find(f->s, "kv");
    /* younger than delete_retention_ms: no tombstone may go yet */
    assert_false(store_retention_due(tp, 1700000000000 + 500, 1000, &start, &tombs));
    /* older: all of it */
    assert_true(store_retention_due(tp, 1700000000000 + 1000, 1000, &start, &tombs));
    assert_int_equal(start, 0);
    assert_int_equal(tombs, 5);
    buf_free(&c);
    buf_init(&c);
    command_encode_topic_trim(&c, "kv", tp->created_index, start, tombs);
    assert_int_equal(apply(f, 4, &c, NULL), 0);
    assert_int_equal(tp->tombstone_limit, 5);
    assert_int_equal(store_topic_start(tp), 0);
    assert_int_equal(store_max_timestamp(f->s), 1700000000000);
    buf_free(&c);
    buf_free(&e);
}

/* A version 1 catalog (before TOPIC_TRIM and the cluster identity) still
 * opens: its topics start with no trim offset, it has no cluster id and no
 * member directories, and the next catalog written is version 2. */
static void test_catalog_version_1(void **state)
{
    struct fixture *f = *state;
    char path[4200], errmsg[ERR_MSG_SIZE];
    struct buf b;
    FILE *fp;
    uint8_t head[8];

    store_close(f->s);
    f->s = NULL;
    buf_init(&b);
    buf_put(&b, "TLYC", 4);
    buf_put_u32(&b, 1);   /* version */
    buf_put_u64(&b, 7);   /* index */
    buf_put_u32(&b, 1);   /* topics */
    buf_put_str(&b, "old");
    buf_put_u8(&b, TALLY_POLICY_DELETE);
    buf_put_i64(&b, 60000);
    buf_put_i64(&b, -1);
    buf_put_i64(&b, 0);
    buf_put_u64(&b, 2);   /* created index */
    buf_put_u64(&b, 0);   /* start */
    buf_put_u64(&b, 0);   /* next */
    buf_put_u64(&b, 0);   /* missing from, to */
    buf_put_u64(&b, 0);
    buf_put_u32(&b, 0);   /* producers */
    buf_put_u32(&b, 0);   /* members */
    buf_put_u32(&b, 0);   /* groups */
    buf_put_u8(&b, 0);    /* no keys */
    buf_put_u64(&b, codec_checksum(b.data, b.len));
    assert_true(buf_ok(&b));
    snprintf(path, sizeof path, "%s/catalog", f->dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
    fclose(fp);
    buf_free(&b);

    assert_int_equal(store_open(f->dir, &f->lc, &f->s, errmsg), 0);
    struct store_topic *tp = store_topic_find(f->s, "old");
    assert_non_null(tp);
    assert_int_equal(tp->config.retention_ms, 60000);
    assert_int_equal(tp->trim_offset, 0);
    assert_int_equal(tp->tombstone_limit, 0);
    assert_int_equal(store_topic_start(tp), 0);
    assert_int_equal(store_cluster_id(f->s), 0);
    assert_int_equal(store_member_dir(f->s, 1), 0);
    create_listed(f, 8, "new"); /* the next catalog written */
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(head, 1, 8, fp), 8);
    fclose(fp);
    assert_int_equal(byte_get_u32(head + 4), 4); /* written in the current version */
    reopen(f);
    assert_non_null(store_topic_find(f->s, "old"));
    assert_non_null(store_topic_find(f->s, "new"));
}

/* A USER command body (users.h) for @name with SCRAM-SHA-256 and -512
 * credentials made from @password, or a removal when @password is NULL. */
static void user_entry(struct buf *e, const char *name, const char *password)
{
    struct buf body;
    struct users_entry u;
    char errmsg[ERR_MSG_SIZE];
    buf_init(&body);
    if (password == NULL) {
        buf_put_u8(&body, USERS_OP_REMOVE);
        buf_put_str(&body, name);
    } else {
        memset(&u, 0, sizeof u);
        snprintf(u.name, sizeof u.name, "%s", name);
        assert_int_equal(scram_make_credentials(SCRAM_SHA_256, password, NULL, 0, 4096,
                                                &u.cred[0], errmsg), 0);
        assert_int_equal(scram_make_credentials(SCRAM_SHA_512, password, NULL, 0, 4096,
                                                &u.cred[1], errmsg), 0);
        buf_put_u8(&body, USERS_OP_SET);
        users_encode_entry(&u, &body);
    }
    buf_init(e);
    command_encode_user(e, body.data, body.len);
    buf_free(&body);
}

/* USER: users are added, changed and removed by apply, kept across a
 * restart (catalog) and carried by a snapshot; a malformed body or an
 * unknown user to remove is refused with the state unchanged. */
static void test_users(void **state)
{
    struct fixture *f = *state;
    struct buf e, snap;
    char errmsg[ERR_MSG_SIZE];
    const struct users_entry *u;
    struct store *s2;
    char *dir2;
    user_entry(&e, "alice", "pencil");
    assert_int_equal(apply_code(f, 2, &e), 0);
    buf_free(&e);
    user_entry(&e, "bob", "secret");
    assert_int_equal(apply_code(f, 3, &e), 0);
    buf_free(&e);
    u = users_find(store_users(f->s), "alice");
    assert_non_null(u);
    assert_non_null(users_cred(u, SCRAM_SHA_256));
    assert_non_null(users_cred(u, SCRAM_SHA_512));
    /* Only the catalog holds it: a checkpoint (off the loop) is wanted. */
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(checkpoint_off_loop(f), 0);
    assert_false(store_checkpoint_wanted(f->s));
    reopen(f);
    assert_non_null(users_find(store_users(f->s), "alice"));
    assert_non_null(users_find(store_users(f->s), "bob"));
    /* A snapshot carries them to another node. */
    buf_init(&snap);
    assert_int_equal(store_snapshot(f->s, 3, &snap, errmsg), 0);
    s2 = install_snapshot(f, &snap, &dir2);
    assert_non_null(users_find(store_users(s2), "bob"));
    store_close(s2);
    tmpdir_remove(dir2);
    free(dir2);
    buf_free(&snap);
    /* Remove; removing again is NOTFOUND; a bad body is INVAL. */
    user_entry(&e, "alice", NULL);
    assert_int_equal(apply_code(f, 4, &e), 0);
    buf_free(&e);
    assert_null(users_find(store_users(f->s), "alice"));
    user_entry(&e, "alice", NULL);
    assert_int_equal(apply_code(f, 5, &e), TALLY_NOTFOUND);
    buf_free(&e);
    {
        uint8_t bad[] = {USERS_OP_SET, 0, 0};
        buf_init(&e);
        command_encode_user(&e, bad, sizeof bad);
        assert_int_equal(apply_code(f, 6, &e), TALLY_INVAL);
        buf_free(&e);
    }
    /* A restart before the next checkpoint has the catalog's users; Raft
     * applies the removal again. */
    reopen(f);
    assert_non_null(users_find(store_users(f->s), "alice"));
    user_entry(&e, "alice", NULL);
    assert_int_equal(apply_code(f, 4, &e), 0);
    buf_free(&e);
    assert_null(users_find(store_users(f->s), "alice"));
    assert_int_equal(checkpoint_off_loop(f), 0);
    reopen(f);
    assert_null(users_find(store_users(f->s), "alice"));
    assert_non_null(users_find(store_users(f->s), "bob"));
}

/* An ACL command body: @op, then the rule. */
static void acl_body(struct buf *b, uint8_t op, const char *principal, uint8_t resource,
                     uint8_t pattern, const char *name, uint8_t operation, uint8_t allow)
{
    struct acl_rule r;
    memset(&r, 0, sizeof r);
    snprintf(r.principal, sizeof r.principal, "%s", principal);
    r.resource = resource;
    r.pattern = pattern;
    snprintf(r.name, sizeof r.name, "%s", name);
    r.operation = operation;
    r.allow = allow;
    buf_init(b);
    buf_put_u8(b, op);
    acl_rule_encode(&r, b);
}

/* acls_allowed: literal, "*" and prefix names, "*" principals, deny wins,
 * DESCRIBE implied by READ/WRITE/DELETE/ALTER, ALL; nothing allows what
 * no rule names. ACL commands apply, persist and refuse duplicates. */
static void test_acls(void **state)
{
    struct fixture *f = *state;
    struct buf b, e;
    static const struct {
        const char *principal;
        uint8_t resource, pattern;
        const char *name;
        uint8_t operation, allow;
    } rules[] = {
        {"alice", ACL_TOPIC, ACL_LITERAL, "orders", ACL_WRITE, 1},
        {"alice", ACL_TOPIC, ACL_PREFIX, "ord", ACL_READ, 1},
        {"bob", ACL_TOPIC, ACL_PREFIX, "pay", ACL_ALL, 1},
        {"bob", ACL_TOPIC, ACL_LITERAL, "payments-frozen", ACL_WRITE, 0},
        {"*", ACL_TOPIC, ACL_LITERAL, "*", ACL_DESCRIBE, 1},
        {"carol", ACL_CLUSTER, ACL_LITERAL, "", ACL_ALTER, 1},
        {"carol", ACL_GROUP, ACL_LITERAL, "g1", ACL_DELETE, 1},
    };
    static const struct {
        const char *who;
        uint8_t resource;
        const char *name;
        uint8_t op;
        bool want;
    } table[] = {
        {"alice", ACL_TOPIC, "orders", ACL_WRITE, true},
        {"alice", ACL_TOPIC, "orders2", ACL_WRITE, false},
        {"alice", ACL_TOPIC, "orders2", ACL_READ, true},
        {"alice", ACL_TOPIC, "or", ACL_READ, false},
        {"alice", ACL_TOPIC, "orders", ACL_DELETE, false},
        {"alice", ACL_TOPIC, "anything", ACL_DESCRIBE, true},
        {"bob", ACL_TOPIC, "payments", ACL_CREATE, true},
        {"bob", ACL_TOPIC, "payments-frozen", ACL_WRITE, false},
        {"bob", ACL_TOPIC, "payments-frozen", ACL_READ, true},
        {"bob", ACL_GROUP, "pay", ACL_READ, false},
        {"carol", ACL_CLUSTER, "", ACL_ALTER, true},
        {"carol", ACL_CLUSTER, "", ACL_DESCRIBE, true},
        {"carol", ACL_CLUSTER, "", ACL_READ, false},
        {"carol", ACL_GROUP, "g1", ACL_DESCRIBE, true},
        {"carol", ACL_GROUP, "g2", ACL_DELETE, false},
        {"dave", ACL_TOPIC, "orders", ACL_READ, false},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        acl_body(&b, ACL_OP_ADD, rules[i].principal, rules[i].resource, rules[i].pattern,
                 rules[i].name, rules[i].operation, rules[i].allow);
        buf_init(&e);
        command_encode_security(&e, COMMAND_ACL, b.data, b.len);
        assert_int_equal(apply_code(f, 2 + i, &e), 0);
        buf_free(&e);
        buf_free(&b);
    }
    /* Only the catalog holds it: a checkpoint (off the loop) is wanted. */
    assert_true(store_checkpoint_wanted(f->s));
    assert_int_equal(checkpoint_off_loop(f), 0);
    assert_false(store_checkpoint_wanted(f->s));
    reopen(f);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        bool got = acls_allowed(store_acls(f->s), table[i].who, table[i].resource,
                                table[i].name, table[i].op);
        if (got != table[i].want) {
            fail_msg("row %zu: %s %s %s %s: got %d", i, table[i].who,
                     acl_operation_name(table[i].op), acl_resource_name(table[i].resource),
                     table[i].name, got);
        }
    }
    /* A duplicate is EXISTS, an unknown rule to remove NOTFOUND, an invalid
     * one INVAL. */
    acl_body(&b, ACL_OP_ADD, "alice", ACL_TOPIC, ACL_LITERAL, "orders", ACL_WRITE, 1);
    buf_init(&e);
    command_encode_security(&e, COMMAND_ACL, b.data, b.len);
    assert_int_equal(apply_code(f, 20, &e), TALLY_EXISTS);
    buf_free(&e);
    buf_free(&b);
    acl_body(&b, ACL_OP_REMOVE, "zed", ACL_TOPIC, ACL_LITERAL, "orders", ACL_WRITE, 1);
    buf_init(&e);
    command_encode_security(&e, COMMAND_ACL, b.data, b.len);
    assert_int_equal(apply_code(f, 21, &e), TALLY_NOTFOUND);
    buf_free(&e);
    buf_free(&b);
    acl_body(&b, ACL_OP_ADD, "alice", ACL_TOPIC, ACL_LITERAL, "", ACL_WRITE, 1);
    buf_init(&e);
    command_encode_security(&e, COMMAND_ACL, b.data, b.len);
    assert_int_equal(apply_code(f, 22, &e), TALLY_INVAL);
    buf_free(&e);
    buf_free(&b);
    acl_body(&b, ACL_OP_REMOVE, "alice", ACL_TOPIC, ACL_LITERAL, "orders", ACL_WRITE, 1);
    buf_init(&e);
    command_encode_security(&e, COMMAND_ACL, b.data, b.len);
    assert_int_equal(apply_code(f, 23, &e), 0);
    buf_free(&e);
    buf_free(&b);
    assert_false(acls_allowed(store_acls(f->s), "alice", ACL_TOPIC, "orders", ACL_WRITE));
}

/* CATALOG_CHECK: the digest at an applied index is the same for the same
 * entries; a leader's digest that differs from this node's at the same
 * index is reported (store_divergence), one for an index this node no
 * longer knows is skipped. */
static void test_catalog_check(void **state)
{
    struct fixture *f = *state;
    const char *t[] = {"orders"};
    struct buf e;
    uint64_t d16, dx, d32, d48;
    const uint64_t k = STORE_DIGEST_EVERY;
    create_topic(f, 2, "orders");
    buf_init(&e);
    append_entry(&e, t, 1, 3);
    assert_int_equal(apply(f, k, &e, NULL), 0);
    assert_true(store_catalog_digest(f->s, k, &d16));
    assert_false(store_catalog_digest(f->s, 2, &dx)); /* not a digest index */
    e.len = 0;
    append_entry(&e, t, 1, 1);
    assert_int_equal(apply(f, k + 1, &e, NULL), 0);
    assert_false(store_catalog_digest(f->s, k + 1, &dx));
    e.len = 0;
    command_encode_catalog_check(&e, k, d16);
    assert_int_equal(e.len % 8, 0);
    assert_int_equal(apply(f, 2 * k, &e, NULL), 0);
    assert_null(store_divergence(f->s));
    /* a check changes no catalog state, but the record at k + 1 did */
    assert_true(store_catalog_digest(f->s, 2 * k, &d32));
    assert_int_not_equal(d16, d32);
    e.len = 0;
    command_encode_catalog_check(&e, 2 * k, d32);
    assert_int_equal(apply(f, 3 * k, &e, NULL), 0);
    assert_true(store_catalog_digest(f->s, 3 * k, &d48));
    assert_int_equal(d32, d48);
    assert_null(store_divergence(f->s));
    /* an index it has no digest of: skipped */
    e.len = 0;
    command_encode_catalog_check(&e, 1, d16 + 1);
    assert_int_equal(apply(f, 3 * k + 1, &e, NULL), 0);
    assert_null(store_divergence(f->s));
    /* the leader's digest differs: reported */
    e.len = 0;
    command_encode_catalog_check(&e, k, d16 + 1);
    assert_int_equal(apply(f, 3 * k + 2, &e, NULL), 0);
    assert_non_null(store_divergence(f->s));
    char want[64];
    snprintf(want, sizeof want, "differs from the leader's at index %llu", (unsigned long long)k);
    assert_non_null(strstr(store_divergence(f->s), want));
    buf_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_assigns_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_share_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_completes_a_partial_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_keeps_a_created_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_skips_unchanged_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install_over_a_kept_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_after_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_topic_and_duplicate_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producers_survive_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_seq_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_survive_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_frozen_while_applying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_syncs_only_written_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_under_a_longer_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_restore_of_an_unfinished_install, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reinstall_after_an_unfinished_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_positions_follow_the_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_repairs_a_short_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_ahead_of_a_damaged_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_log_goes_back_to_the_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_log_starts_past_the_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keys_checkpoint_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_ignores_missing_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_sets_the_start_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_after_the_freeze_waits, setup, teardown),
        cmocka_unit_test(test_keys_copy_on_write),
        cmocka_unit_test_setup_teardown(test_freeze_of_many_written_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_tombstone_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_replayed_after_a_startup_checkpoint,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
