/* Unit tests of repl/snapmsg.c, the fixes for two libraft 0.22.1 snapshot
 * bugs in raft's messages (the simulation, test/sim, shows them without). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repl/snapmsg.h"

/* A fake raft_io: requests are kept, callbacks fired by the test. */
static struct raft_message sent;

static struct raft_snapshot *get_returns;

static int fake_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                    raft_io_snapshot_get_cb cb)
{
    (void)io;
    cb(req, get_returns, 0);
    return 0;
}

static void outer_get_cb(struct raft_io_snapshot_get *req, struct raft_snapshot *s, int status)
{
    (void)req;
    (void)s;
    assert_int_equal(status, 0);
}

static int fake_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    (void)io;
    (void)req;
    (void)cb;
    sent = *m;
    return 0;
}

/* An InstallSnapshot for the snapshot last read goes out with that
 * snapshot's term, whatever term raft put in it. */
static void test_sends_the_term_of_the_snapshot_read(void **state)
{
    struct snapmsg g;
    struct raft_io_snapshot_get get;
    struct raft_snapshot snap;
    struct raft_io_send req;
    (void)state;
    memset(&g, 0, sizeof g);
    memset(&snap, 0, sizeof snap);
    snap.index = 57;
    snap.term = 4;
    get_returns = &snap;
    assert_int_equal(snapmsg_snapshot_get(&g, fake_get, NULL, &get, outer_get_cb), 0);
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_INSTALL_SNAPSHOT;
    m.install_snapshot.last_index = 57;
    m.install_snapshot.last_term = 3;
    assert_int_equal(snapmsg_send(&g, fake_send, NULL, &req, &m, NULL), 0);
    assert_int_equal(sent.install_snapshot.last_term, 4);
    assert_int_equal(m.install_snapshot.last_term, 3); /* raft's copy untouched */
    assert_int_equal(g.retermed, 1);
    m.install_snapshot.last_index = 44; /* another snapshot: left alone */
    assert_int_equal(snapmsg_send(&g, fake_send, NULL, &req, &m, NULL), 0);
    assert_int_equal(sent.install_snapshot.last_term, 3);
}

/* n entries from index prev + 1, terms from @terms, sharing one batch. */
static struct raft_message append_message(raft_index prev, raft_term prev_term,
                                          const raft_term *terms, unsigned n)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_APPEND_ENTRIES;
    m.append_entries.prev_log_index = prev;
    m.append_entries.prev_log_term = prev_term;
    m.append_entries.n_entries = n;
    m.append_entries.entries = raft_calloc(n, sizeof *m.append_entries.entries);
    void *batch = raft_malloc(8 * n);
    for (unsigned i = 0; i < n; i++) {
        m.append_entries.entries[i].term = terms[i];
        m.append_entries.entries[i].type = RAFT_COMMAND;
        m.append_entries.entries[i].buf.base = (char *)batch + 8 * i;
        m.append_entries.entries[i].buf.len = 8;
        m.append_entries.entries[i].batch = batch;
    }
    return m;
}

/* An AppendEntries reaching from below this node's snapshot is anchored at
 * the snapshot; one that does not reach it, or starts after it, is left as
 * it is. */
static void test_anchors_append_entries_at_the_snapshot(void **state)
{
    struct snapmsg g;
    struct raft_snapshot snap;
    raft_term terms[6] = {1, 1, 2, 2, 3, 3};
    (void)state;
    memset(&g, 0, sizeof g);
    memset(&snap, 0, sizeof snap);
    snap.index = 4;
    snap.term = 2;
    snapmsg_loaded(&g, &snap);

    struct raft_message m = append_message(0, 0, terms, 6);
    snapmsg_recv(&g, &m);
    assert_int_equal(m.append_entries.prev_log_index, 4);
    assert_int_equal(m.append_entries.prev_log_term, 2);
    assert_int_equal(m.append_entries.n_entries, 2);
    assert_int_equal(m.append_entries.entries[0].term, 3);
    assert_int_equal(g.anchored, 1);
    raft_free(m.append_entries.entries[0].batch);
    raft_free(m.append_entries.entries);

    m = append_message(0, 0, terms, 4); /* ends at the snapshot: nothing left */
    snapmsg_recv(&g, &m);
    assert_int_equal(m.append_entries.n_entries, 0);
    assert_null(m.append_entries.entries);
    assert_int_equal(m.append_entries.prev_log_index, 4);

    m = append_message(0, 0, terms, 3); /* does not reach it */
    snapmsg_recv(&g, &m);
    assert_int_equal(m.append_entries.prev_log_index, 0);
    assert_int_equal(m.append_entries.n_entries, 3);
    raft_free(m.append_entries.entries[0].batch);
    raft_free(m.append_entries.entries);

    m = append_message(4, 2, terms + 4, 2); /* after it */
    snapmsg_recv(&g, &m);
    assert_int_equal(m.append_entries.prev_log_index, 4);
    assert_int_equal(m.append_entries.n_entries, 2);
    raft_free(m.append_entries.entries[0].batch);
    raft_free(m.append_entries.entries);
    assert_int_equal(g.anchored, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_the_term_of_the_snapshot_read),
        cmocka_unit_test(test_anchors_append_entries_at_the_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
