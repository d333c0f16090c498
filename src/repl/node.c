/* The Raft node: libraft 0.22 + raft_uv + NODELAY TCP on one loop. The
 * raft rules this file relies on are in docs/raft.md.
 *
 * Start-up: transport, raft_uv (64 MiB segments, 200 ms reconnect), the
 * membership tracker (members.c), raft_init with the fsm adapter, tunables
 * (pre-vote on, raft's capacity check off), then bootstrap when asked
 * (RAFT_CANTBOOTSTRAP = already initialised: fine, so one command line
 * starts and restarts a node), then raft_start, which restores the latest
 * snapshot and replays the log into the store.
 *
 * A uv_check "monitor" runs every loop iteration, because the API has no
 * state callback: it reports role changes and applied-index progress,
 * issues the barrier after which a new leader serves (it tells when the
 * earlier terms are applied), and reports RAFT_UNAVAILABLE, which is
 * permanent, as fatal.
 *
 * No field of struct raft is read: term and commit index come from
 * accessors, the configuration from members.c. */
#include "repl/node.h"

#include <errno.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "repl/fsm.h"
#include "repl/members.h"
#include "repl/snapguard.h"
#include "repl/snapmsg.h"
#include "repl/transport.h"
#include "store/command.h"

struct node {
    uv_loop_t *loop;
    struct raft raft;
    struct members members; /* raft_uv's io, tracking the configuration */
    int (*uv_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[],
                     unsigned, raft_io_append_cb); /* raft_uv's, wrapped by node__append */
    int (*uv_start)(struct raft_io *, unsigned, raft_io_tick_cb,
                    raft_io_recv_cb); /* raft_uv's, wrapped by node__start */
    int (*uv_snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                           const struct raft_snapshot *,
                           raft_io_snapshot_put_cb); /* wrapped by node__snapshot_put */
    struct snapguard guard;     /* holds an install during a take (snapguard.h) */
    struct snapmsg snapmsg;     /* two more snapshot fixes (snapmsg.h) */
    snapmsg_get_fn uv_snapshot_get; /* raft_uv's, wrapped by node__snapshot_get */
    snapmsg_send_fn uv_send;    /* raft_uv's, wrapped by node__send */
    int (*uv_load)(struct raft_io *, raft_term *, raft_id *, struct raft_snapshot **,
                   raft_index *, struct raft_entry **, size_t *); /* wrapped by node__load */
    uint64_t leader_commit;     /* highest leader commit index an AppendEntries carried */
    struct transport transport;
    struct fsm fsm;
    uv_check_t monitor;
    struct node_events ev;
    uint64_t id;
    int role;                   /* last role the monitor saw */
    uint64_t leader_term;       /* term in which we became leader */
    bool ready;                 /* leader whose barrier has applied */
    bool barrier_pending;
    struct raft_barrier barrier;
    uint64_t applied_seen;      /* last applied index reported */
    unsigned appends_pending;   /* raft log writes not yet completed */
    uint64_t append_progress_ms; /* uv_now when the oldest of them began, or of the last completion */
    bool started;
    bool closing;
    int pending_closes;
    void (*close_cb)(void *arg);
    void *close_arg;
    /* Identity (docs/operations.md, "A node lost its disk"). */
    char data_dir[4096];
    struct ident ident;
    struct {
        uint64_t id, directory_id;
        bool pending;             /* a MEMBER_DIR for it is in flight */
    } seen[NODE_MAX_PEERS];       /* peers whose hello was accepted */
    bool cluster_id_pending;
    uint64_t ident_checked_ms;
    char identity_problem[512];
    /* Snapshot sizing from a byte budget (snapshot_threshold == 0). */
    uint64_t log_budget;        /* 0: fixed threshold and trailing */
    double avg_entry;           /* bytes per applied entry, smoothed */
    uint64_t sized_at_ms;       /* uv_now of the last sizing */
    uint64_t sized_entries, sized_bytes; /* fsm counters then */
    unsigned threshold;         /* in force */
};

int node_map_error(int raft_code)
{
    switch (raft_code) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
        return TALLY_NOTLEADER;
    case RAFT_LEADERSHIPLOST:
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return TALLY_LEADERSHIP_LOST;
    case RAFT_NOMEM:
        return TALLY_NOMEM;
    case RAFT_NOSPACE:
        return TALLY_NOSPACE;
    case RAFT_CANTCHANGE:
        return TALLY_BUSY;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return TALLY_EXISTS;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return TALLY_NOTFOUND;
    case RAFT_BADROLE:
        return TALLY_INVAL;
    case RAFT_NOCONNECTION:
        return TALLY_UNAVAILABLE;
    default:
        return TALLY_IOERR;
    }
}

static int node__role_of(int raft_state)
{
    switch (raft_state) {
    case RAFT_FOLLOWER:
        return NODE_FOLLOWER;
    case RAFT_CANDIDATE:
        return NODE_CANDIDATE;
    case RAFT_LEADER:
        return NODE_LEADER;
    default:
        return NODE_UNAVAILABLE;
    }
}

static const char *node__role_name(int role)
{
    static const char *names[] = {"unavailable", "follower", "candidate", "leader"};
    return role >= 0 && role <= NODE_LEADER ? names[role] : "unknown";
}

/* A reason for a failure of raft, never empty: raft's own message, else
 * raft_uv's (the listener, the disk), else the code's text. */
static const char *node__reason(struct node *n, int rv)
{
    static char buf[512];
    const char *raft_msg = raft_errmsg(&n->raft);
    if (raft_msg != NULL && raft_msg[0] != '\0') {
        return raft_msg;
    }
    if (n->members.io.errmsg[0] != '\0') {
        snprintf(buf, sizeof buf, "%s", n->members.io.errmsg);
        return buf;
    }
    if (n->transport.outer.errmsg[0] != '\0') {
        snprintf(buf, sizeof buf, "%s", n->transport.outer.errmsg);
        return buf;
    }
    return rv != 0 ? raft_strerror(rv) : "no reason given by raft (see the lines above)";
}

static void node__fatal(void *arg, const char *why)
{
    struct node *n = arg;
    if (n->ev.fatal != NULL) {
        n->ev.fatal(n->ev.arg, why);
    }
}

/* Every write of the Raft log goes through node__append, which wraps
 * raft_uv's append to see how long writes stay pending (docs/raft.md,
 * "Failed writes"). libraft 0.22's raft_uv retries a failed write (full
 * disk, I/O error) every disk_retry ms until it succeeds, and reports to
 * raft only success, or cancellation at shutdown: the node does not fail,
 * it stops storing entries. A leader keeps leading and commits through its
 * followers' copies, a follower stops acknowledging; nothing acknowledged
 * depends on the stuck disk. node_write_stalled_ms() lets the server notice
 * (it refuses writes, hands leadership away and reports it on /health)
 * instead of a silent hang. Any other status would come from a raft that
 * reports failed writes; tally then exits at once, since raft 0.15 showed
 * how a library that goes on after one loses track of its requests. */
struct node__append {
    struct raft_io_append inner; /* first: the callback gets its address */
    struct raft_io_append *outer;
    struct node *n;
};

static void node__append_cb(struct raft_io_append *req, int status)
{
    struct node__append *a = (struct node__append *)req;
    struct raft_io_append *outer = a->outer;
    struct node *n = a->n;
    free(a);
    if (status != 0 && status != RAFT_CANCELED && !n->closing) {
        TLOG_ERROR("raft", "fatal: writing the raft log failed (%s: %s); exiting now (status "
                   "1) for the supervisor to restart this node", raft_strerror(status),
                   n->members.io.errmsg);
        fflush(NULL);
        _exit(1);
    }
    n->appends_pending--;
    n->append_progress_ms = uv_now(n->loop); /* the oldest pending one is newer */
    outer->cb(outer, status);
}

static int node__append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n_entries,
                        raft_io_append_cb cb)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    struct node__append *a = malloc(sizeof *a);
    int rv;
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    a->outer = req;
    a->n = n;
    req->cb = cb;
    rv = n->uv_append(io, &a->inner, entries, n_entries, node__append_cb);
    if (rv != 0) {
        free(a); /* refused at once: raft handles that itself, nothing was written */
        return rv;
    }
    if (n->appends_pending++ == 0) {
        n->append_progress_ms = uv_now(n->loop);
    }
    return 0;
}

uint64_t node_write_stalled_ms(struct node *n)
{
    return n->appends_pending == 0 ? 0 : uv_now(n->loop) - n->append_progress_ms;
}

/* A follower's own commit index is capped by the entries it has stored
 * (raft sets it to min(leader commit, last new entry)), so while it catches
 * up it equals its applied index and says nothing of how far behind it is.
 * The leader's commit index travels in every AppendEntries, heartbeats
 * included: node__recv notes the highest one seen before raft handles the
 * message, so a follower knows the cluster's commit, not only its own
 * (node_leader_commit_index, the /health lag rule). */
static void node__recv(struct raft_io *io, struct raft_message *msg)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    if (msg->type == RAFT_APPEND_ENTRIES &&
        msg->append_entries.leader_commit > n->leader_commit) {
        n->leader_commit = msg->append_entries.leader_commit;
    }
    snapmsg_recv(&n->snapmsg, msg);
    snapguard_recv(&n->guard, msg);
}

static int node__start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    snapguard_init(&n->guard, io, recv);
    return n->uv_start(io, msecs, tick, node__recv);
}

/* Takes (trailing > 0) go through the guard; installs (trailing 0) are
 * what it holds back, and pass straight on. */
static int node__guarded_put(struct raft_io *io, unsigned trailing,
                             struct raft_io_snapshot_put *req,
                             const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    if (trailing == 0) {
        return n->uv_snapshot_put(io, trailing, req, snapshot, cb);
    }
    return snapguard_put_take(&n->guard, n->uv_snapshot_put, io, trailing, req, snapshot, cb);
}

/* Every put, then, through snapmsg, which notes the snapshot once stored. */
static int node__snapshot_put(struct raft_io *io, unsigned trailing,
                              struct raft_io_snapshot_put *req,
                              const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    return snapmsg_snapshot_put(&n->snapmsg, node__guarded_put, io, trailing, req, snapshot,
                                cb);
}

/* Snapshot reads, sends and the load go through snapmsg (snapmsg.h). */
static int node__snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                              raft_io_snapshot_get_cb cb)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    return snapmsg_snapshot_get(&n->snapmsg, n->uv_snapshot_get, io, req, cb);
}

static int node__send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *message, raft_io_send_cb cb)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    return snapmsg_send(&n->snapmsg, n->uv_send, io, req, message, cb);
}

static int node__load(struct raft_io *io, raft_term *term, raft_id *vote,
                      struct raft_snapshot **snapshot, raft_index *start_index,
                      struct raft_entry **entries, size_t *n_entries)
{
    struct node *n = (struct node *)(void *)((char *)io - offsetof(struct node, members.io));
    int rv = n->uv_load(io, term, vote, snapshot, start_index, entries, n_entries);
    if (rv == 0) {
        snapmsg_loaded(&n->snapmsg, *snapshot);
    }
    return rv;
}

static void node__barrier_cb(struct raft_barrier *req, int status)
{
    struct node *n = req->data;
    n->barrier_pending = false;
    if (n->closing) {
        return;
    }
    if (status == 0 && raft_state(&n->raft) == RAFT_LEADER &&
        raft_current_term(&n->raft) == n->leader_term) {
        n->ready = true;
        TLOG_INFO("raft", "leader for term %llu is ready (applied %llu)",
                  (unsigned long long)n->leader_term,
                  (unsigned long long)raft_last_applied(&n->raft));
    } else if (status != 0) {
        TLOG_WARN("raft", "leader barrier failed: %s", raft_strerror(status));
    }
}

static void node__issue_barrier(struct node *n)
{
    int rv;
    if (n->barrier_pending) {
        return;
    }
    n->barrier.data = n;
    rv = raft_barrier(&n->raft, &n->barrier, node__barrier_cb);
    if (rv == 0) {
        n->barrier_pending = true;
    } else {
        TLOG_WARN("raft", "leader barrier: %s", raft_strerror(rv));
    }
}

/* Snapshot threshold and trailing from the byte budget: raft keeps about
 * threshold + trailing entries in memory (docs/raft.md), so each gets
 * half the budget at the average entry size seen lately, within
 * [NODE__MIN_ENTRIES, NODE__MAX_ENTRIES]. Recomputed every few seconds,
 * applied when it moves by a quarter or more. */
#define NODE__MIN_ENTRIES 128u
#define NODE__MAX_ENTRIES 65536u
#define NODE__SIZING_MS 3000u
#define NODE__ASSUMED_ENTRY 4096.0

static unsigned node__entries_for(uint64_t budget, double avg_entry)
{
    double n = (double)budget / 2.0 / (avg_entry > 64.0 ? avg_entry : 64.0);
    return n < NODE__MIN_ENTRIES ? NODE__MIN_ENTRIES
                                 : n > NODE__MAX_ENTRIES ? NODE__MAX_ENTRIES : (unsigned)n;
}

static void node__size_snapshots(struct node *n)
{
    uint64_t now = uv_now(n->loop);
    uint64_t entries, bytes;
    unsigned want;
    if (n->log_budget == 0 || now - n->sized_at_ms < NODE__SIZING_MS) {
        return;
    }
    entries = n->fsm.applied_entries - n->sized_entries;
    bytes = n->fsm.applied_bytes - n->sized_bytes;
    n->sized_at_ms = now;
    n->sized_entries = n->fsm.applied_entries;
    n->sized_bytes = n->fsm.applied_bytes;
    if (entries < 16) {
        return; /* too few to say anything */
    }
    n->avg_entry = 0.5 * n->avg_entry + 0.5 * ((double)bytes / (double)entries);
    want = node__entries_for(n->log_budget, n->avg_entry);
    if (want * 4 < n->threshold * 3 || want * 4 > n->threshold * 5) {
        TLOG_INFO("raft", "entries average %.0f bytes: snapshot every %u entries, keeping %u "
                  "(raft_log_budget_bytes %llu)", n->avg_entry, want, want,
                  (unsigned long long)n->log_budget);
        n->threshold = want;
        raft_set_snapshot_threshold(&n->raft, want);
        raft_set_snapshot_trailing(&n->raft, want);
    }
}

/* ---- identity: the hello of Raft connections, and what it records ---- */

static uint64_t node__cluster_id(struct node *n)
{
    uint64_t c = store_cluster_id(n->fsm.store);
    return c != 0 ? c : n->ident.cluster_id;
}

static void node__hello_local(void *arg, struct transport_hello *h)
{
    struct node *n = arg;
    h->flags = n->started && raft_last_index(&n->raft) > 0 ? TRANSPORT_HELLO_HAS_STATE : 0;
    h->cluster_id = node__cluster_id(n);
    h->node_id = n->id;
    h->directory_id = n->ident.directory_id;
}

/* Remember @directory_id as what node @node_id last said it runs on, or
 * forget the node (@directory_id 0). The ident check records a member's
 * directory from here once the membership has none (the first start, or
 * after 'tally member replace' forgot the old one), so it must be the
 * latest word: a hello that is refused still replaces an older accepted
 * one (a wiped node's new directory, not the directory it had before the
 * wipe, is the one to record after the replace). */
static void node__note_seen(struct node *n, uint64_t node_id, uint64_t directory_id)
{
    int slot = -1;
    for (int i = 0; i < NODE_MAX_PEERS; i++) {
        if (n->seen[i].id == node_id) {
            slot = i;
            break;
        }
        if (slot < 0 && n->seen[i].id == 0) {
            slot = i;
        }
    }
    if (slot < 0) {
        return;
    }
    if (directory_id == 0) {
        if (n->seen[slot].id == node_id) {
            memset(&n->seen[slot], 0, sizeof n->seen[slot]);
        }
        return;
    }
    if (n->seen[slot].id != node_id || n->seen[slot].directory_id != directory_id) {
        n->seen[slot].pending = false;
    }
    n->seen[slot].id = node_id;
    n->seen[slot].directory_id = directory_id;
}

static int node__hello_check(void *arg, const struct transport_hello *peer, bool inbound,
                             char *why, size_t cap)
{
    struct node *n = arg;
    uint64_t ours = node__cluster_id(n);
    uint64_t recorded = store_member_dir(n->fsm.store, peer->node_id);
    const char *dir = inbound ? "from" : "to";
    if (ours != 0 && peer->cluster_id != 0 && ours != peer->cluster_id) {
        snprintf(why, cap, "refusing the raft connection %s node %llu: it belongs to cluster "
                 "%016llx, this node (%llu) to cluster %016llx. A data directory of another "
                 "cluster (an old or a restored one) or a wrong --peer address: if node %llu "
                 "is to be part of this cluster, stop it, empty its data directory and run "
                 "'tally member replace %llu CLIENT/RAFT' (docs/operations.md, A node lost its "
                 "disk)", dir, (unsigned long long)peer->node_id,
                 (unsigned long long)peer->cluster_id, (unsigned long long)n->id,
                 (unsigned long long)ours, (unsigned long long)peer->node_id,
                 (unsigned long long)peer->node_id);
        node__note_seen(n, peer->node_id, 0); /* whatever it said before is stale */
        return -1;
    }
    if (recorded != 0 && peer->directory_id != recorded) {
        node__note_seen(n, peer->node_id, peer->directory_id);
        snprintf(why, cap, "refusing the raft connection %s node %llu: it runs on data "
                 "directory %016llx, but the membership records %016llx for node %llu (its "
                 "disk was replaced or wiped?). It does not vote or count for commitment "
                 "until it is replaced: 'tally member replace %llu CLIENT/RAFT' "
                 "(docs/operations.md, A node lost its disk)", dir,
                 (unsigned long long)peer->node_id, (unsigned long long)peer->directory_id,
                 (unsigned long long)recorded, (unsigned long long)peer->node_id,
                 (unsigned long long)peer->node_id);
        return -1;
    }
    node__note_seen(n, peer->node_id, peer->directory_id);
    return 0;
}

struct node__ident_op {
    struct node *n;
    int slot; /* seen[] entry, or -1 for the cluster id */
};

static void node__ident_done(void *arg, int status, uint64_t index,
                             const struct store_result *res)
{
    struct node__ident_op *op = arg;
    (void)index;
    (void)res;
    if (op->slot < 0) {
        op->n->cluster_id_pending = false;
    } else {
        op->n->seen[op->slot].pending = false;
    }
    if (status != 0 && status != TALLY_LEADERSHIP_LOST && status != TALLY_SHUTDOWN) {
        TLOG_WARN("raft", "recording the cluster's identity: %s (tried again)",
                  tally_strerror(status));
    }
    free(op);
}

static bool node__ident_propose(struct node *n, struct buf *entry, int slot)
{
    struct node__ident_op *op = malloc(sizeof *op);
    if (op == NULL || !buf_ok(entry)) {
        free(op);
        return false;
    }
    op->n = n;
    op->slot = slot;
    if (node_propose(n, entry, node__ident_done, op) != 0) {
        free(op);
        return false;
    }
    return true;
}

static bool node__in_config(struct node *n, uint64_t id);

/* Once a second: a ready leader gives the cluster an id if it has none and
 * records the data directory of each member it hears from; every node
 * writes the cluster id to DATA/identity once known, and checks that the
 * cluster knows its directory as this node's. */
static void node__identity_tick(struct node *n)
{
    uint64_t now = uv_now(n->loop), cluster, recorded;
    char errmsg[ERR_MSG_SIZE];
    struct buf entry;
    if (now - n->ident_checked_ms < 1000) {
        return;
    }
    n->ident_checked_ms = now;
    cluster = store_cluster_id(n->fsm.store);
    if (cluster != 0 && cluster != n->ident.cluster_id) {
        uint64_t old = n->ident.cluster_id;
        n->ident.cluster_id = cluster;
        if (ident_save(n->data_dir, &n->ident, errmsg) != 0) {
            TLOG_WARN("raft", "writing the cluster id to %s/identity: %s", n->data_dir, errmsg);
            n->ident.cluster_id = old;
        } else {
            TLOG_INFO("raft", "member of cluster %016llx", (unsigned long long)cluster);
        }
    }
    recorded = store_member_dir(n->fsm.store, n->id);
    if (recorded != 0 && recorded != n->ident.directory_id) {
        if (n->identity_problem[0] == '\0') {
            snprintf(n->identity_problem, sizeof n->identity_problem,
                     "this data directory (%016llx) is not the one the cluster records for "
                     "node %llu (%016llx): the other members refuse it until 'tally member "
                     "replace %llu CLIENT/RAFT' (docs/operations.md, A node lost its disk)",
                     (unsigned long long)n->ident.directory_id, (unsigned long long)n->id,
                     (unsigned long long)recorded, (unsigned long long)n->id);
            TLOG_ERROR("raft", "%s", n->identity_problem);
        }
    } else {
        n->identity_problem[0] = '\0';
    }
    if (!n->ready) {
        return;
    }
    buf_init(&entry);
    if (cluster == 0 && !n->cluster_id_pending) {
        /* The first leader of a cluster: its id, and for a restored
         * cluster the restored state, so that a node that joins later gets
         * it through Raft like everything else (docs/operations.md 14). */
        uint64_t id = n->ident.cluster_id != 0 ? n->ident.cluster_id : ident_random();
        struct buf restored;
        buf_init(&restored);
        if (store_describe_restored(n->fsm.store, &restored) == 0) {
            if (restored.len > 0) {
                TLOG_INFO("raft", "describing the restored state through Raft (%zu bytes)",
                          restored.len);
            }
            command_encode_cluster_id(&entry, id, &restored);
            n->cluster_id_pending = node__ident_propose(n, &entry, -1);
        }
        buf_free(&restored);
        buf_free(&entry);
    }
    if (store_member_dir(n->fsm.store, n->id) == 0 && n->ident.directory_id != 0) {
        /* Our own, as if heard: slot search below handles it. */
        struct transport_hello me = {0, 0, n->id, n->ident.directory_id};
        char why[16];
        node__hello_check(n, &me, true, why, sizeof why);
    }
    for (int i = 0; i < NODE_MAX_PEERS; i++) {
        if (n->seen[i].id == 0 || n->seen[i].pending ||
            store_member_dir(n->fsm.store, n->seen[i].id) != 0 ||
            !node__in_config(n, n->seen[i].id)) {
            continue;
        }
        buf_init(&entry);
        command_encode_member_dir(&entry, n->seen[i].id, n->seen[i].directory_id);
        n->seen[i].pending = node__ident_propose(n, &entry, i);
        buf_free(&entry);
    }
}

struct node__read {
    struct raft_barrier req;
    struct node *n;
    node_index_cb cb;
    void *arg;
};

static void node__read_cb(struct raft_barrier *req, int status)
{
    struct node__read *rd = req->data;
    struct node *n = rd->n;
    if (status == 0 && raft_state(&n->raft) != RAFT_LEADER) {
        status = RAFT_LEADERSHIPLOST;
    }
    rd->cb(rd->arg, node_map_error(status), status == 0 ? raft_last_applied(&n->raft) : 0);
    free(rd);
}

int node_read_index(struct node *n, node_index_cb cb, void *arg)
{
    struct node__read *rd;
    int rv;
    if (n->closing) {
        return TALLY_SHUTDOWN;
    }
    if (raft_state(&n->raft) != RAFT_LEADER) {
        return TALLY_NOTLEADER;
    }
    if ((rd = calloc(1, sizeof *rd)) == NULL) {
        return TALLY_NOMEM;
    }
    rd->n = n;
    rd->cb = cb;
    rd->arg = arg;
    rd->req.data = rd;
    rv = raft_barrier(&n->raft, &rd->req, node__read_cb);
    if (rv != 0) {
        free(rd);
        return node_map_error(rv);
    }
    return 0;
}

const char *node_identity_problem(struct node *n)
{
    return n->identity_problem[0] != '\0' ? n->identity_problem : NULL;
}

static void node__monitor(uv_check_t *h)
{
    struct node *n = h->data;
    int role;
    uint64_t applied;
    if (!n->started || n->closing) {
        return;
    }
    role = node__role_of(raft_state(&n->raft));
    if (role != n->role) {
        int old = n->role;
        n->role = role;
        n->ready = false;
        TLOG_INFO("raft", "role %s -> %s (term %llu)", node__role_name(old), node__role_name(role),
                  (unsigned long long)raft_current_term(&n->raft));
        if (role == NODE_LEADER) {
            n->leader_term = raft_current_term(&n->raft);
            node__issue_barrier(n);
        }
        if (n->ev.role_changed != NULL) {
            n->ev.role_changed(n->ev.arg, old, role);
        }
        if (role == NODE_UNAVAILABLE) {
            char why[512];
            snprintf(why, sizeof why, "raft became unavailable: %s", node__reason(n, 0));
            node__fatal(n, why);
            return;
        }
    } else if (role == NODE_LEADER && !n->ready && !n->barrier_pending) {
        node__issue_barrier(n); /* the first attempt failed: try again */
    }
    node__size_snapshots(n);
    node__identity_tick(n);
    applied = raft_last_applied(&n->raft);
    if (applied != n->applied_seen) {
        n->applied_seen = applied;
        if (n->ev.applied != NULL) {
            n->ev.applied(n->ev.arg, applied);
        }
    }
}

static int node__mkdir_p(const char *path, char *errmsg)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            int rv = fs_mkdir(tmp, NULL, errmsg);
            if (rv != 0) {
                return rv;
            }
            *p = '/';
        }
    }
    return fs_mkdir(tmp, NULL, errmsg);
}

static bool node__has_state(const char *raft_dir)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/metadata1", raft_dir);
    if (stat(path, &st) == 0) {
        return true;
    }
    snprintf(path, sizeof path, "%s/metadata2", raft_dir);
    return stat(path, &st) == 0;
}

/* Bootstrap once: before forming a new cluster on an empty directory, ask
 * the peers. One that already belongs to a cluster (it has a cluster id)
 * means this node's directory was lost or never joined: forming a cluster
 * would make it an amnesiac voter. It starts without bootstrapping then,
 * and waits to be added or replaced. */
static bool node__peers_allow_bootstrap(struct node *n, const struct node_config *cfg)
{
    struct transport_hello mine, peer;
    node__hello_local(n, &mine);
    for (unsigned i = 0; i < cfg->n_peers; i++) {
        if (cfg->peers[i].id == cfg->id) {
            continue;
        }
        if (transport_probe(cfg->peers[i].raft_addr, cfg->peers[i].id, cfg->id, cfg->raft_addr,
                            cfg->tls, &mine, &peer, 1500) != 0) {
            continue; /* down or not started yet: nothing to learn */
        }
        if (peer.cluster_id != 0) {
            TLOG_ERROR("raft", "not bootstrapping: node %llu at %s already belongs to cluster "
                       "%016llx, and this data directory is empty. Starting without a "
                       "configuration: this node does not vote and waits. A new node joins "
                       "with 'tally member add %llu CLIENT/RAFT'; a member whose disk was "
                       "lost or wiped with 'tally member replace %llu CLIENT/RAFT' "
                       "(docs/operations.md, A node lost its disk). Remove --bootstrap from "
                       "its command line.", (unsigned long long)peer.node_id,
                       cfg->peers[i].raft_addr, (unsigned long long)peer.cluster_id,
                       (unsigned long long)cfg->id, (unsigned long long)cfg->id);
            return false;
        }
    }
    return true;
}

static int node__bootstrap(struct node *n, const struct node_config *cfg, char *errmsg)
{
    struct raft_configuration conf;
    int rv = 0;
    if (node__has_state(cfg->raft_dir)) {
        TLOG_INFO("raft", "already initialised; --bootstrap has nothing to do");
        return 0;
    }
    if (!node__peers_allow_bootstrap(n, cfg)) {
        return 0;
    }
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < cfg->n_peers && rv == 0; i++) {
        rv = raft_configuration_add(&conf, cfg->peers[i].id, cfg->peers[i].raft_addr, RAFT_VOTER);
    }
    if (rv == 0) {
        rv = raft_bootstrap(&n->raft, &conf);
    }
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        TLOG_INFO("raft", "already initialised; --bootstrap has nothing to do");
        return 0;
    }
    if (rv != 0) {
        err_printf(errmsg, "bootstrap: %s", raft_strerror(rv));
        return TALLY_IOERR;
    }
    TLOG_INFO("raft", "bootstrapped a new cluster of %u members", cfg->n_peers);
    return 0;
}

int node_create(uv_loop_t *loop, const struct node_config *cfg, struct store *store,
                const struct node_events *events, struct node **out, char *errmsg)
{
    struct node *n = calloc(1, sizeof *n);
    int rv;
    if (n == NULL) {
        return TALLY_NOMEM;
    }
    n->loop = loop;
    n->id = cfg->id;
    n->ev = *events;
    snprintf(n->data_dir, sizeof n->data_dir, "%s", cfg->data_dir);
    n->ident = cfg->ident;
    if ((rv = node__mkdir_p(cfg->raft_dir, errmsg)) != 0) {
        free(n);
        return rv;
    }
    fsm_init(&n->fsm, store, node__fatal, n);
    rv = transport_init(&n->transport, loop);
    if (rv != 0) {
        err_printf(errmsg, "raft transport: %s", raft_strerror(rv));
        free(n);
        return TALLY_IOERR;
    }
    rv = raft_uv_init(&n->members.io, loop, cfg->raft_dir, &n->transport.outer);
    if (rv != 0) {
        err_printf(errmsg, "raft storage in %s: %s", cfg->raft_dir, n->members.io.errmsg);
        transport_close(&n->transport);
        free(n);
        return TALLY_IOERR;
    }
    {
        struct transport_guard guard = {n, node__hello_local, node__hello_check};
        transport_set_guard(&n->transport, &guard);
    }
    if (cfg->tls != NULL) {
        transport_set_tls(&n->transport, cfg->tls);
    }
    raft_uv_set_segment_size(&n->members.io, (size_t)cfg->segment_bytes);
    raft_uv_set_connect_retry_delay(&n->members.io, 200);
    members_track(&n->members);
    n->uv_append = n->members.io.append;
    n->members.io.append = node__append;
    n->uv_start = n->members.io.start;
    n->members.io.start = node__start;
    n->uv_snapshot_put = n->members.io.snapshot_put;
    n->members.io.snapshot_put = node__snapshot_put;
    n->uv_snapshot_get = n->members.io.snapshot_get;
    n->members.io.snapshot_get = node__snapshot_get;
    n->uv_send = n->members.io.send;
    n->members.io.send = node__send;
    n->uv_load = n->members.io.load;
    n->members.io.load = node__load;
    rv = raft_init(&n->raft, &n->members.io, &n->fsm.raft_fsm, cfg->id, cfg->raft_addr);
    if (rv != 0) {
        err_printf(errmsg, "raft init: %s", raft_errmsg(&n->raft));
        raft_uv_close(&n->members.io);
        transport_close(&n->transport);
        free(n);
        return TALLY_IOERR;
    }
    n->fsm.raft = &n->raft;
    raft_set_election_timeout(&n->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_timeout_ms);
    if (cfg->snapshot_threshold == 0) {
        n->log_budget = cfg->log_budget_bytes;
        n->avg_entry = NODE__ASSUMED_ENTRY;
        n->threshold = node__entries_for(n->log_budget, n->avg_entry);
        raft_set_snapshot_threshold(&n->raft, n->threshold);
        raft_set_snapshot_trailing(&n->raft, n->threshold);
    } else {
        raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
        raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing);
    }
    raft_set_install_snapshot_timeout(&n->raft, 10000);
    raft_set_pre_vote(&n->raft, true);
    /* libraft 0.22's free-space check counts raft_uv's prepared segments in
     * KiB in a 16-bit field, which wraps to 0 with 64 MiB segments and
     * then refuses every write with RAFT_NOSPACE (docs/raft.md). The
     * node's own disk_reserve_bytes check guards the disk instead. */
    raft_set_capacity_threshold(&n->raft, 0);
    *out = n;
    if (cfg->bootstrap && (rv = node__bootstrap(n, cfg, errmsg)) != 0) {
        goto fail;
    }
    rv = raft_start(&n->raft);
    if (rv != 0) {
        err_printf(errmsg, "raft start: %s", node__reason(n, rv));
        rv = TALLY_IOERR;
        goto fail;
    }
    n->started = true;
    n->fsm.started = true;
    uv_check_init(loop, &n->monitor);
    n->monitor.data = n;
    uv_check_start(&n->monitor, node__monitor);
    TLOG_INFO("raft", "node %llu started on %s (last index %llu)", (unsigned long long)cfg->id,
              cfg->raft_addr, (unsigned long long)raft_last_index(&n->raft));
    return 0;
fail:
    /* raft_init succeeded: the only way back is raft_close on the loop. */
    *out = NULL;
    node_close(n, NULL, NULL);
    return rv;
}

struct node__recover {
    struct raft_io io;
    struct transport transport;
    bool closed;
};

static void node__recover_closed(struct raft *r)
{
    struct node__recover *x = r->data;
    raft_uv_close(&x->io);
    transport_close(&x->transport);
    x->closed = true;
}

int node_recover(const struct node_config *cfg, char *errmsg)
{
    struct node__recover x;
    struct raft raft;
    struct raft_fsm fsm; /* never called: raft_recover applies nothing */
    struct raft_configuration conf;
    uv_loop_t loop;
    char path[sizeof cfg->raft_dir + 16];
    struct stat st;
    int rv;
    snprintf(path, sizeof path, "%s/metadata1", cfg->raft_dir);
    if (stat(path, &st) != 0) {
        snprintf(path, sizeof path, "%s/metadata2", cfg->raft_dir);
        if (stat(path, &st) != 0) {
            err_printf(errmsg, "%s holds no Raft state: nothing to recover (a new node joins "
                               "with 'tally member add')", cfg->raft_dir);
            return TALLY_NOTFOUND;
        }
    }
    memset(&x, 0, sizeof x);
    memset(&fsm, 0, sizeof fsm);
    fsm.version = 1;
    uv_loop_init(&loop);
    rv = transport_init(&x.transport, &loop);
    if (rv != 0) {
        err_printf(errmsg, "raft transport: %s", raft_strerror(rv));
        uv_loop_close(&loop);
        return TALLY_IOERR;
    }
    rv = raft_uv_init(&x.io, &loop, cfg->raft_dir, &x.transport.outer);
    if (rv != 0) {
        err_printf(errmsg, "raft storage in %s: %s", cfg->raft_dir, x.io.errmsg);
        transport_close(&x.transport);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return TALLY_IOERR;
    }
    rv = raft_init(&raft, &x.io, &fsm, cfg->id, cfg->raft_addr);
    if (rv != 0) {
        err_printf(errmsg, "raft init: %s", raft_errmsg(&raft));
        raft_uv_close(&x.io);
        transport_close(&x.transport);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return TALLY_IOERR;
    }
    raft_configuration_init(&conf);
    rv = raft_configuration_add(&conf, cfg->id, cfg->raft_addr, RAFT_VOTER);
    if (rv == 0) {
        rv = raft_recover(&raft, &conf);
        if (rv != 0) {
            err_printf(errmsg, "raft_recover in %s: %s (%s)", cfg->raft_dir, raft_strerror(rv),
                       raft_errmsg(&raft));
            rv = TALLY_IOERR;
        }
    } else {
        err_printf(errmsg, "configuration: %s", raft_strerror(rv));
        rv = TALLY_NOMEM;
    }
    raft_configuration_close(&conf);
    raft.data = &x;
    raft_close(&raft, node__recover_closed);
    for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_ONCE) != 0; i++) {
    }
    if (!x.closed || uv_loop_close(&loop) != 0) {
        TLOG_WARN("raft", "recover: the Raft storage did not close cleanly");
    }
    if (rv == 0) {
        TLOG_INFO("raft", "recovered: the configuration in %s now holds only node %llu at %s",
                  cfg->raft_dir, (unsigned long long)cfg->id, cfg->raft_addr);
    }
    return rv;
}

static void node__maybe_done(struct node *n)
{
    if (--n->pending_closes > 0) {
        return;
    }
    void (*cb)(void *) = n->close_cb;
    void *arg = n->close_arg;
    fsm_close(&n->fsm);
    members_close(&n->members);
    snapguard_close(&n->guard);
    free(n);
    if (cb != NULL) {
        cb(arg);
    }
}

static void node__raft_closed(struct raft *r)
{
    struct node *n = r->data;
    raft_uv_close(&n->members.io);
    transport_close(&n->transport);
    node__maybe_done(n);
}

static void node__monitor_closed(uv_handle_t *h)
{
    node__maybe_done(h->data);
}

void node_close(struct node *n, void (*cb)(void *arg), void *arg)
{
    n->closing = true;
    n->ready = false;
    n->close_cb = cb;
    n->close_arg = arg;
    n->pending_closes = 1;
    if (n->started) {
        n->pending_closes++;
        uv_close((uv_handle_t *)&n->monitor, node__monitor_closed);
    }
    n->raft.data = n;
    raft_close(&n->raft, node__raft_closed);
}

int node_role(struct node *n)
{
    return n->closing ? NODE_UNAVAILABLE : node__role_of(raft_state(&n->raft));
}

bool node_ready(struct node *n)
{
    /* Not before the cluster has its id: the first leader's first entry
     * (with the restored state of a restored cluster) comes before any
     * write. */
    return n->ready && !n->closing && raft_state(&n->raft) == RAFT_LEADER &&
           store_cluster_id(n->fsm.store) != 0;
}

uint64_t node_id(struct node *n)
{
    return n->id;
}

uint64_t node_leader_id(struct node *n)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &id, &addr);
    return id;
}

uint64_t node_term(struct node *n)
{
    return raft_current_term(&n->raft);
}

uint64_t node_commit_index(struct node *n)
{
    return raft_commit_index(&n->raft);
}

uint64_t node_leader_commit_index(struct node *n)
{
    uint64_t own = raft_commit_index(&n->raft);
    if (raft_state(&n->raft) == RAFT_LEADER) {
        return own;
    }
    return n->leader_commit > own ? n->leader_commit : own;
}

uint64_t node_applied_index(struct node *n)
{
    return raft_last_applied(&n->raft);
}

uint64_t node_last_index(struct node *n)
{
    return raft_last_index(&n->raft);
}

unsigned node_members(struct node *n, struct node_member *out, unsigned cap)
{
    uint64_t at;
    const struct raft_configuration *c = members_current(&n->members, &at);
    unsigned k = 0;
    for (unsigned i = 0; i < c->n && k < cap; i++, k++) {
        out[k].id = c->servers[i].id;
        snprintf(out[k].raft_addr, sizeof out[k].raft_addr, "%s", c->servers[i].address);
        out[k].voter = c->servers[i].role == RAFT_VOTER;
        out[k].spare = c->servers[i].role == RAFT_SPARE;
    }
    return k;
}

struct node__proposal {
    struct raft_apply req;
    struct node *n;
    node_propose_cb cb;
    void *arg;
};

/* @result is ignored: it may belong to a later entry by now (fsm.c); the
 * proposal's own result is taken from the fsm by its index. */
static void node__apply_cb(struct raft_apply *req, int status, void *result)
{
    struct node__proposal *p = (struct node__proposal *)req;
    struct node *n = p->n;
    (void)result;
    if (status == 0) {
        struct store_result *res = fsm_take_result(&n->fsm, req->index);
        if (res == NULL) {
            /* Applied, but its result was dropped: the caller cannot be told
             * what happened, which is an unknown outcome. */
            TLOG_WARN("raft", "the result of entry %llu was gone when its request completed",
                      (unsigned long long)req->index);
            p->cb(p->arg, TALLY_LEADERSHIP_LOST, req->index, NULL);
        } else {
            p->cb(p->arg, 0, req->index, res);
            free(res);
        }
    } else {
        p->cb(p->arg, node_map_error(status), req->index, NULL);
    }
    free(p);
}

int node_propose(struct node *n, struct buf *entry, node_propose_cb cb, void *arg)
{
    struct node__proposal *p;
    struct raft_buffer rb;
    int rv;
    if (n->closing) {
        return TALLY_SHUTDOWN;
    }
    if (entry->len == 0 || entry->len % 8 != 0 || !buf_ok(entry)) {
        return TALLY_INVAL; /* the command format pads to 8 (store/command.h, docs/raft.md) */
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        return TALLY_NOMEM;
    }
    p->n = n;
    p->cb = cb;
    p->arg = arg;
    rb.base = entry->data;
    rb.len = entry->len;
    rv = raft_apply(&n->raft, &p->req, &rb, 1, node__apply_cb);
    if (rv != 0) {
        free(p);
        return node_map_error(rv);
    }
    buf_init(entry); /* raft owns the bytes now */
    return 0;
}

struct node__change {
    struct raft_change req;
    struct raft_transfer transfer;
    struct node *n;
    uint64_t id;
    node_done_cb cb;
    void *arg;
};

static void node__change_done(struct node__change *c, int raft_status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", raft_status == 0 ? "done" : raft_strerror(raft_status));
    c->cb(c->arg, node_map_error(raft_status), msg);
    free(c);
}

static void node__assign_cb(struct raft_change *req, int status)
{
    node__change_done(req->data, status);
}

static void node__add_cb(struct raft_change *req, int status)
{
    struct node__change *c = req->data;
    int rv;
    if (status != 0 || c->n->closing) {
        node__change_done(c, status != 0 ? status : RAFT_SHUTDOWN);
        return;
    }
    /* raft_add made it a spare, which is not even sent the log. */
    rv = raft_assign(&c->n->raft, &c->req, c->id, RAFT_STANDBY, node__assign_cb);
    if (rv != 0) {
        node__change_done(c, rv);
    }
}

static struct node__change *node__change_new(struct node *n, uint64_t id, node_done_cb cb,
                                             void *arg)
{
    struct node__change *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->n = n;
        c->id = id;
        c->cb = cb;
        c->arg = arg;
        c->req.data = c;
        c->transfer.data = c;
    }
    return c;
}

/* The role of member @id in the configuration raft acts on (the newest in
 * its log, committed or not), or -1. */
static int node__role(struct node *n, uint64_t id, const char **addr)
{
    uint64_t at;
    const struct raft_configuration *conf = members_current(&n->members, &at);
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == id) {
            *addr = conf->servers[i].address;
            return conf->servers[i].role;
        }
    }
    return -1;
}

static bool node__in_config(struct node *n, uint64_t id)
{
    const char *addr;
    return node__role(n, id, &addr) >= 0;
}

const char *node_member_elsewhere(struct node *n, uint64_t id, const char *raft_addr)
{
    const char *have = NULL;
    return node__role(n, id, &have) >= 0 && strcmp(have, raft_addr) != 0 ? have : NULL;
}

int node_add_standby(struct node *n, uint64_t id, const char *raft_addr, node_done_cb cb,
                     void *arg)
{
    const char *have = NULL;
    int role = node__role(n, id, &have);
    struct node__change *c;
    int rv;
    if (node_member_elsewhere(n, id, raft_addr) != NULL) {
        return TALLY_EXISTS; /* another node under that id */
    }
    if (role == RAFT_VOTER || role == RAFT_STANDBY) {
        cb(arg, 0, "already a member"); /* an add run again: nothing to do */
        return 0;
    }
    if ((c = node__change_new(n, id, cb, arg)) == NULL) {
        return TALLY_NOMEM;
    }
    /* A spare is an add cut short before its standby step (leadership
     * moved, say): that step is taken again. */
    rv = role == RAFT_SPARE ? raft_assign(&n->raft, &c->req, id, RAFT_STANDBY, node__assign_cb)
                            : raft_add(&n->raft, &c->req, id, raft_addr, node__add_cb);
    if (rv != 0) {
        free(c);
        return node_map_error(rv);
    }
    return 0;
}

int node_promote(struct node *n, uint64_t id, node_done_cb cb, void *arg)
{
    const char *addr;
    struct node__change *c;
    int rv;
    uint64_t at;
    members_current(&n->members, &at);
    if (node__role(n, id, &addr) == RAFT_VOTER && at <= raft_commit_index(&n->raft)) {
        cb(arg, 0, "already a voter");
        return 0;
    }
    if ((c = node__change_new(n, id, cb, arg)) == NULL) {
        return TALLY_NOMEM;
    }
    /* raft_assign runs catch-up rounds before it promotes the node. */
    rv = raft_assign(&n->raft, &c->req, id, RAFT_VOTER, node__assign_cb);
    if (rv != 0) {
        free(c);
        return node_map_error(rv);
    }
    return 0;
}

int node_remove(struct node *n, uint64_t id, node_done_cb cb, void *arg)
{
    struct node__change *c = node__change_new(n, id, cb, arg);
    int rv;
    if (c == NULL) {
        return TALLY_NOMEM;
    }
    rv = raft_remove(&n->raft, &c->req, id, node__assign_cb);
    if (rv != 0) {
        free(c);
        return node_map_error(rv);
    }
    return 0;
}

static void node__transfer_cb(struct raft_transfer *req)
{
    struct node__change *c = req->data;
    /* The callback carries no status: it fires when the target is seen as
     * leader or after an election timeout. Report who leads now. */
    uint64_t leader = node_leader_id(c->n);
    char msg[128];
    int code = (c->id == 0 ? leader != 0 && leader != c->n->id : leader == c->id) ? 0
                                                                                   : TALLY_TIMEOUT;
    if (code == 0) {
        snprintf(msg, sizeof msg, "leader is now %llu", (unsigned long long)leader);
    } else if (c->id != 0) {
        snprintf(msg, sizeof msg,
                 "node %llu did not take over (is it running and caught up? see 'tally "
                 "status'); the leader is %s%llu",
                 (unsigned long long)c->id, leader != 0 ? "still " : "now unknown: ",
                 (unsigned long long)leader);
    } else {
        snprintf(msg, sizeof msg, "no other node took over (are they running? see 'tally "
                                  "status'); the leader is still %llu",
                 (unsigned long long)leader);
    }
    c->cb(c->arg, code, msg);
    free(c);
}

int node_transfer(struct node *n, uint64_t id, node_done_cb cb, void *arg)
{
    struct node__change *c = node__change_new(n, id, cb, arg);
    int rv;
    if (c == NULL) {
        return TALLY_NOMEM;
    }
    rv = raft_transfer(&n->raft, &c->transfer, id, node__transfer_cb);
    if (rv != 0) {
        free(c);
        return node_map_error(rv);
    }
    return 0;
}
