/* tallyd's server: the loop, the client listener, signals, timers and an
 * orderly shutdown through close callbacks.
 *
 * Start: lock the data directory, open the store (each topic log recovers
 * itself), start the Raft node (which restores the latest snapshot and
 * replays committed entries the store does not have yet), then listen.
 *
 * Shutdown (SIGTERM/SIGINT, or a fatal error): stop listening, close client
 * connections, close the Raft node (its pending proposals complete with
 * "leadership lost" while the gateway still exists), then sync and close
 * the store, close our handles, and let uv_run return. */
#include "server/srv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/statvfs.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "repl/ident.h"
#include "repl/node.h"
#include "server/backfill.h"
#include "server/skew.h"
#include "server/ui.h"
#include "server/checkpointer.h"
#include "server/compactor.h"
#include "server/conn.h"
#include "server/gw.h"
#include "server/http.h"
#include "server/kconn.h"
#include "server/kgw.h"
#include "server/metrics.h"
#include "server/tlsaccept.h"
#include "store/store.h"

#define SRV__TICK_MS 5

struct srv {
    const struct cfg *cfg;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t tick, retention;
    struct store *store;
    struct node *node;
    struct gw *gw;
    struct conn_set conns;     /* open client connections */
    struct metrics metrics;
    struct http_srv *http;     /* --metrics listener, or NULL */
    struct compactor *compactor; /* background compaction, or NULL when off */
    struct checkpointer *checkpointer; /* checkpoints off the loop */
    struct backfill *backfill;   /* history fetches after a snapshot install */
    struct skew *skew;           /* clock offset against the leader */
    struct ui *ui;               /* web console (ui.h): serves the --metrics listener */
    int exit_code;
    bool stopping;
    bool fatal;          /* a fatal error was reported: stop on the next tick */
    unsigned ticks;      /* tick count, for the once-a-second disk check */
    bool disk_low;       /* free space below disk_reserve_bytes */
    int lock_fd;
    bool listening;      /* the client listener is initialised */
    struct kgw *kgw;               /* the Kafka front door (--kafka), or NULL */
    struct kconn_listener *kafka;  /* its listener, or NULL */
    /* TLS (docs/security.md): the contexts, swapped on SIGHUP; the client
     * port's TLS connections. tls_on false: plaintext. */
    bool tls_on;
    struct tls_set tls;
    struct tlsaccept tlsa;
    uv_signal_t sighup;
};

static void srv__stop(struct srv *s, int exit_code);

static void srv__on_role(void *arg, int old_role, int new_role)
{
    struct srv *s = arg;
    gw_on_role(s->gw, old_role, new_role);
    kgw_on_role(s->kgw, new_role == NODE_LEADER);
}

static void srv__on_applied(void *arg, uint64_t index)
{
    struct srv *s = arg;
    gw_on_applied(s->gw, index);
}

static void srv__on_fatal(void *arg, const char *why)
{
    struct srv *s = arg;
    TLOG_ERROR("server", "fatal: %s; stopping (exit 1) for the supervisor to restart", why);
    /* Not srv__stop() here: this runs inside Raft's apply or the node
     * monitor, and closing Raft from there aborts libuv (found by the fault
     * suite on a full disk). The tick timer stops the node on the next
     * turn of the loop. */
    s->fatal = true;
    s->exit_code = 1;
}

static void srv__on_append(void *arg, struct store_topic *t)
{
    struct srv *s = arg;
    gw_on_append(s->gw, t);
}

/* Every client connection is a file descriptor, and so are log segments,
 * Raft peers and the metrics listener: a soft RLIMIT_NOFILE of 1024 (the
 * usual default) runs out before max_connections=1024 does. Raise the soft
 * limit to the hard one, and say when max_connections still cannot be met. */
static void srv__raise_nofile(const struct cfg *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = old;
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)cfg->max_connections + 256) {
        TLOG_WARN("server", "open file limit %llu is low for max_connections=%u (want %u or more)",
                  (unsigned long long)rl.rlim_cur, cfg->max_connections,
                  cfg->max_connections + 256);
    }
}

/* The files a node keeps open: one per client connection, the active
 * segment of each topic (its writes must reach an fsync on the descriptor
 * that made them), up to segment_fd_cache sealed segments, and a margin
 * for Raft, listeners and the thread pool's reads. Say so at start when
 * the limit cannot hold them, rather than fail later with EMFILE. */
static void srv__check_nofile(const struct cfg *cfg, size_t topics)
{
    struct rlimit rl;
    uint64_t want = (uint64_t)topics + cfg->segment_fd_cache + cfg->max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return;
    }
    if ((uint64_t)rl.rlim_cur < want) {
        TLOG_WARN("server", "open file limit %llu is too low for %zu topics (one open file "
                  "each), segment_fd_cache=%u and max_connections=%u: want %llu or more "
                  "(raise the hard limit, e.g. LimitNOFILE= in the unit file or ulimit -Hn, "
                  "or lower the two settings); past it, creates and appends fail with "
                  "'Too many open files'",
                  (unsigned long long)rl.rlim_cur, topics, cfg->segment_fd_cache,
                  cfg->max_connections, (unsigned long long)want);
    } else {
        TLOG_INFO("server", "open file limit %llu: %zu topics, segment_fd_cache=%u, "
                  "max_connections=%u", (unsigned long long)rl.rlim_cur, topics,
                  cfg->segment_fd_cache, cfg->max_connections);
    }
}

static void srv__free_handle(uv_handle_t *h)
{
    free(h);
}

/* tlsaccept's serve function for the client port: a native connection. */
static int srv__serve_tls(void *arg, uv_loop_t *loop, int fd, const char *peer,
                          const char *principal, uint64_t node_id)
{
    struct srv *s = arg;
    return conn_accept_fd(&s->conns, loop, fd, s->gw, peer, principal, node_id);
}

static void srv__accept(uv_stream_t *server, int status)
{
    struct srv *s = server->data;
    if (status != 0 || s->stopping) {
        return;
    }
    if (s->tls_on && conn_count(&s->conns) < s->cfg->max_connections) {
        tlsaccept_one(&s->tlsa, server); /* TLS hook: the handshake first */
        return;
    }
    if (conn_count(&s->conns) >= s->cfg->max_connections) {
        /* Accept and drop, so the listen backlog does not fill up. */
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp == NULL) {
            return;
        }
        uv_tcp_init(server->loop, tmp);
        if (uv_accept(server, (uv_stream_t *)tmp) == 0) {
            TLOG_WARN("server", "connection refused: max_connections (%u) reached",
                      s->cfg->max_connections);
        }
        uv_close((uv_handle_t *)tmp, srv__free_handle);
        return;
    }
    int rv = conn_accept(&s->conns, server, s->gw);
    if (rv != 0) {
        TLOG_WARN("server", "accept: %s", uv_strerror(rv));
    }
}

static void srv__transferred(void *arg, int status, const char *message)
{
    (void)arg;
    TLOG_INFO("server", "leadership transfer for low disk space: %s (%s)",
              status == 0 ? "done" : tally_strerror(status), message);
}

/* Free bytes of the file system holding @path, or UINT64_MAX if unknown. */
static uint64_t srv__free_bytes(const char *path)
{
    struct statvfs v;
    return statvfs(path, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : UINT64_MAX;
}

/* A Raft log write pending this long means raft_uv is retrying a failed
 * one (docs/raft.md, "Failed writes"). */
#define SRV__WRITE_STALL_MS 5000u

/* Once a second: the free space of the data directory and of its raft/
 * (which may be a file system of its own) against the reserve, and whether
 * the Raft log's writes are stuck: stop writes before the disk is full,
 * and do not go on leading on a disk that cannot store. A leader in
 * either state hands leadership to another node and refuses writes. */
static void srv__check_disk(struct srv *s)
{
    char raft_dir[sizeof s->cfg->data_dir + 8];
    uint64_t reserve = s->cfg->disk_reserve_bytes != 0
                           ? s->cfg->disk_reserve_bytes
                           : 3 * s->cfg->raft_segment_bytes + (8u << 20);
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", s->cfg->data_dir);
    uint64_t free_data = srv__free_bytes(s->cfg->data_dir);
    uint64_t free_raft = srv__free_bytes(raft_dir);
    uint64_t free_bytes = free_data < free_raft ? free_data : free_raft;
    const char *where = free_data < free_raft ? s->cfg->data_dir : raft_dir;
    uint64_t stalled = s->node != NULL ? node_write_stalled_ms(s->node) : 0;
    bool stuck = stalled >= SRV__WRITE_STALL_MS;
    bool low = free_bytes < reserve || stuck;
    if (free_bytes == UINT64_MAX && !stuck) {
        return;
    }
    gw_set_disk_low(s->gw, low, free_bytes, reserve);
    if (low && !s->disk_low) {
        if (stuck) {
            TLOG_ERROR("server", "the raft log has not been written for %llu ms (raft retries a "
                       "failed write: disk full or failing; %llu MiB free in %s): refusing "
                       "writes until it is", (unsigned long long)stalled,
                       (unsigned long long)(free_bytes >> 20), where);
        } else {
            TLOG_ERROR("server", "only %llu MiB free in %s, below the reserve of %llu MiB: "
                       "refusing writes until space is freed",
                       (unsigned long long)(free_bytes >> 20), where,
                       (unsigned long long)(reserve >> 20));
        }
    }
    if (low && s->node != NULL && node_role(s->node) == NODE_LEADER) {
        node_transfer(s->node, 0, srv__transferred, s); /* fails harmlessly if one is under way */
    }
    if (!low && s->disk_low) {
        TLOG_INFO("server", "%llu MiB free in %s again and the raft log is being written: "
                  "accepting writes", (unsigned long long)(free_bytes >> 20), where);
    }
    s->disk_low = low;
}

/* Once a second: the Raft configuration this node acts on against its
 * --peer lines. The stored configuration wins (a --peer line only seeds a
 * bootstrap), so a difference means the operator meant another membership:
 * said in the log when it changes, and on /health while it lasts. */
static void srv__check_peers(struct srv *s)
{
    struct node_member members[NODE_MAX_PEERS];
    char text[sizeof s->metrics.identity_problem] = "";
    size_t len = 0;
    if (s->node == NULL || s->stopping) {
        return; /* shutting down: the node may be gone */
    }
    unsigned n = node_members(s->node, members, NODE_MAX_PEERS);
    const char *own = node_identity_problem(s->node);
    if (own == NULL) {
        own = store_divergence(s->store);
    }
    if (own != NULL) {
        len = (size_t)snprintf(text, sizeof text, "%s", own);
    }
    for (unsigned i = 0; i < s->cfg->n_peers && n > 0; i++) {
        const struct cfg_peer *p = &s->cfg->peers[i];
        for (unsigned k = 0; k < n; k++) {
            if (members[k].id == p->id && strcmp(members[k].raft_addr, p->raft_addr) != 0 &&
                len < sizeof text) {
                len += (size_t)snprintf(text + len, sizeof text - len,
                                        "%snode %llu is at %s in the stored membership but "
                                        "--peer says %s", len > 0 ? "; " : "",
                                        (unsigned long long)p->id, members[k].raft_addr,
                                        p->raft_addr);
            }
        }
    }
    if (strcmp(text, s->metrics.identity_problem) != 0) {
        if (text[0] != '\0') {
            if (own == NULL || strlen(text) > strlen(own)) {
                TLOG_ERROR("server", "membership disagrees with the command line: %s; the "
                           "stored membership is used; fix the --peer lines, or change the "
                           "member's address as docs/operations.md says (member remove, then "
                           "member add)", text);
            }
        } else {
            TLOG_INFO("server", "identity and membership problems are gone");
        }
        snprintf(s->metrics.identity_problem, sizeof s->metrics.identity_problem, "%s", text);
    }
}

static void srv__tick(uv_timer_t *t)
{
    struct srv *s = t->data;
    if (s->fatal) {
        srv__stop(s, 1);
        return;
    }
    if (s->ticks++ % (1000 / SRV__TICK_MS) == 0) {
        srv__check_disk(s);
        srv__check_peers(s);
    }
    if (s->ticks % (3000 / SRV__TICK_MS) == 1) {
        gw_catalog_check(s->gw);
    }
    gw_tick(s->gw);
    checkpointer_kick(s->checkpointer); /* a change only the catalog records */
}

static void srv__retention(uv_timer_t *t)
{
    struct srv *s = t->data;
    gw_retention(s->gw);
    /* Every node: the segments that applied TOPIC_TRIMs cut off go, after
     * one checkpoint for all of them, written off the loop (a failure, a
     * full disk, is tried again; reads below the start offsets are refused
     * meanwhile all the same). */
    checkpointer_kick(s->checkpointer);
}

/* SIGHUP: read the certificate, key and CA files again. New connections
 * (clients and Raft links) use them; connections that are up keep theirs,
 * so the node drops nothing. A file that does not load keeps the old
 * ones and says why. */
static void srv__reload_tls(uv_signal_t *h, int signum)
{
    struct srv *s = h->data;
    const struct cfg *cfg = s->cfg;
    struct tls_files f = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca, cfg->tls_allow_12};
    struct tls_set fresh;
    char errmsg[ERR_MSG_SIZE];
    (void)signum;
    if (!s->tls_on) {
        TLOG_INFO("server", "SIGHUP received: TLS is off, nothing to reload");
        return;
    }
    if (tls_set_load(&fresh, &f, cfg->tls_client_cert_required, errmsg) != 0) {
        TLOG_ERROR("server", "SIGHUP: TLS reload failed, keeping the current certificates: %s",
                   errmsg);
        return;
    }
    tls_set_free(&s->tls);
    s->tls = fresh;
    TLOG_INFO("server", "SIGHUP: TLS certificates reloaded from %s", cfg->tls_cert);
}

static void srv__signal(uv_signal_t *h, int signum)
{
    struct srv *s = h->data;
    TLOG_INFO("server", "%s received: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    srv__stop(s, s->exit_code);
}

/* The last step of a shutdown, once no compaction job is running. */
static void srv__checkpointer_closed(void *arg)
{
    struct srv *s = arg;
    char errmsg[ERR_MSG_SIZE];
    s->checkpointer = NULL;
    metrics_set_checkpoints(&s->metrics, NULL);
    gw_destroy(s->gw);
    s->gw = NULL;
    kgw_destroy(s->kgw); /* after gw_destroy: answers to its requests end there */
    s->kgw = NULL;
    if (store_checkpoint(s->store, errmsg) != 0) {
        TLOG_ERROR("server", "final checkpoint: %s", errmsg);
        s->exit_code = 1;
    }
    store_close(s->store);
    s->store = NULL;
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_close((uv_handle_t *)&s->retention, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void srv__compactor_closed(void *arg)
{
    struct srv *s = arg;
    s->compactor = NULL;
    checkpointer_close(s->checkpointer, srv__checkpointer_closed, s);
}

static void srv__backfill_closed(void *arg)
{
    struct srv *s = arg;
    s->backfill = NULL;
    compactor_close(s->compactor, srv__compactor_closed, s);
}

static void srv__node_closed(void *arg)
{
    struct srv *s = arg;
    s->node = NULL;
    backfill_close(s->backfill, srv__backfill_closed, s);
}

static void srv__stop(struct srv *s, int exit_code)
{
    if (exit_code != 0) {
        s->exit_code = exit_code;
    }
    if (s->stopping) {
        return;
    }
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    http_stop(s->http);
    s->http = NULL;
    kconn_stop(s->kafka);
    s->kafka = NULL;
    conn_close_all(&s->conns);
    if (s->tls_on) {
        tlsaccept_close(&s->tlsa);
    }
    gw_set_skew(s->gw, NULL);
    metrics_set_skew(&s->metrics, NULL);
    skew_close(s->skew);
    s->skew = NULL;
    ui_close(s->ui); /* console: after its HTTP listener stopped */
    s->ui = NULL;
    if (s->node != NULL) {
        node_close(s->node, srv__node_closed, s);
    }
}

static int srv__lock(struct srv *s, char *errmsg)
{
    char path[CFG_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/LOCK", s->cfg->data_dir);
    int rv = fs_open(path, O_RDWR | O_CREAT, path, &s->lock_fd, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        err_printf(errmsg, "data directory %s is in use by another tallyd", s->cfg->data_dir);
        return TALLY_BUSY;
    }
    return 0;
}

static int srv__listen(struct srv *s, char *errmsg)
{
    char ip[64];
    unsigned port;
    struct sockaddr_in sin;
    int rv;
    cfg_parse_addr(s->cfg->listen_addr, ip, sizeof ip, &port);
    uv_ip4_addr(ip, (int)port, &sin);
    uv_tcp_init(&s->loop, &s->listener);
    s->listening = true;
    s->listener.data = s;
    rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sin, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, 511, srv__accept);
    }
    if (rv != 0) {
        err_printf(errmsg, "listen on %s: %s", s->cfg->listen_addr, uv_strerror(rv));
        return TALLY_IOERR;
    }
    return 0;
}

/* Raft listens on --raft only inside raft_start, after a bootstrap would
 * have written the Raft state: bind the address once here (as libuv does,
 * with SO_REUSEADDR) so that a taken port stops the start before anything
 * is written. */
static int srv__probe_raft_port(const struct cfg *cfg, char *errmsg)
{
    char ip[64];
    unsigned port;
    struct sockaddr_in sin;
    int fd, one = 1, rv = 0;
    if (cfg_parse_addr(cfg->raft_addr, ip, sizeof ip, &port) != 0 ||
        uv_ip4_addr(ip, (int)port, &sin) != 0) {
        err_printf(errmsg, "--raft %s: not an IPv4:PORT address", cfg->raft_addr);
        return TALLY_INVAL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return err_os(errmsg, errno, "raft: listen on %s: socket", cfg->raft_addr);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 1) != 0) {
        err_printf(errmsg, "raft: listen on %s: %s", cfg->raft_addr,
                   uv_strerror(uv_translate_sys_error(errno)));
        rv = TALLY_IOERR;
    }
    close(fd);
    return rv;
}

/* The data directory must be this node's: its identity file (if any) names
 * the node that created it. Raft's term and vote in it are that node's;
 * running them under another id could let one node vote twice in a term. */
static int srv__check_identity(struct srv *s, struct ident *id, bool *found, char *errmsg)
{
    int rv = ident_load(s->cfg->data_dir, id, errmsg);
    *found = false;
    if (rv == TALLY_NOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (id->node_id != s->cfg->id) {
        err_printf(errmsg, "data directory %s belongs to node %llu, not to --id %llu: start "
                           "it with --id %llu, or give node %llu its own data directory",
                   s->cfg->data_dir, (unsigned long long)id->node_id,
                   (unsigned long long)s->cfg->id, (unsigned long long)id->node_id,
                   (unsigned long long)s->cfg->id);
        return TALLY_INVAL;
    }
    *found = true;
    return 0;
}

/* The Kafka front door (--kafka): its gateway (given ours once it exists,
 * before the loop runs and any request can arrive) and its listener, bound
 * with the other listeners, before anything is written to the data
 * directory. */
static int srv__kafka_start(struct srv *s, char *errmsg)
{
    int rv;
    if (s->cfg->kafka_addr[0] == '\0') {
        return 0;
    }
    if ((rv = kgw_create(s->cfg, &s->loop, NULL, &s->kgw)) != 0) {
        err_printf(errmsg, "kafka: %s", tally_strerror(rv));
        return rv;
    }
    if ((rv = kconn_listen(&s->loop, s->cfg->kafka_addr, s->cfg->max_connections, s->kgw,
                           s->tls_on ? &s->tls : NULL, &s->kafka, errmsg)) != 0) {
        return rv;
    }
    const char *how = !s->tls_on               ? "in plaintext (PLAINTEXT)"
                      : s->cfg->auth_required ? "with TLS and SASL (SASL_SSL)"
                                              : "with TLS (SSL)";
    TLOG_INFO("server", "serving Kafka clients on %s (advertised as %s) %s", s->cfg->kafka_addr,
              s->cfg->kafka_advertise[0] != '\0' ? s->cfg->kafka_advertise : s->cfg->kafka_addr,
              how);
    return 0;
}

int srv_run(const struct cfg *cfg)
{
    struct srv s;
    char errmsg[ERR_MSG_SIZE] = "";
    char path[CFG_PATH_MAX + 16];
    struct log_config lc;
    struct node_config nc;
    struct store_member members[CFG_MAX_PEERS];
    struct ident ident;
    bool have_ident = false;
    int rv, fail_exit = 0;

    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.lock_fd = -1;
    /* raft_uv_tcp writes to peer sockets; a dead peer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* libuv's thread pool (4 threads by default, sized at its first use)
     * runs raft's disk work and snapshot builds, and our compaction jobs,
     * which can take a thread for minutes: more threads, so that raft
     * never waits behind one. An explicit setting is kept. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);
    srv__raise_nofile(cfg);
    uv_loop_init(&s.loop);

    if ((rv = srv__lock(&s, errmsg)) != 0) {
        goto fail;
    }
    /* Nothing is written to the data directory until the arguments are
     * checked against it and every listener is bound: a start that fails
     * leaves the directory as it was (docs/operations.md, exit status). */
    if (cfg->tls_cert[0] != '\0') {
        struct tls_files f = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca, cfg->tls_allow_12};
        if (tls_set_load(&s.tls, &f, cfg->tls_client_cert_required, errmsg) != 0) {
            rv = TALLY_INVAL;
            fail_exit = 2;
            goto fail;
        }
        s.tls_on = true;
    }
    if ((rv = srv__check_identity(&s, &ident, &have_ident, errmsg)) != 0) {
        fail_exit = 2;
        goto fail;
    }
    if ((rv = srv__listen(&s, errmsg)) != 0) {
        fail_exit = 2;
        goto fail;
    }
    /* console: ui_http answers /ui and hands every other path to metrics_http */
    if (cfg->metrics_addr[0] != '\0' &&
        ((rv = ui_create(&s.loop, cfg, &s.metrics, &s.ui, errmsg)) != 0 ||
         (rv = http_start(&s.loop, cfg->metrics_addr, ui_http, s.ui, &s.http, errmsg)) != 0)) {
        fail_exit = 2;
        goto fail;
    }
    if ((rv = srv__kafka_start(&s, errmsg)) != 0) {
        fail_exit = 2;
        goto fail;
    }
    if (s.http != NULL && cfg->metrics_tls) {
        http_set_tls(s.http, &s.tls); /* TLS hook: HTTPS on --metrics */
    }
    if ((rv = srv__probe_raft_port(cfg, errmsg)) != 0) {
        fail_exit = 2;
        goto fail;
    }
    if (!have_ident) {
        ident.node_id = cfg->id;
        ident.directory_id = ident_random();
        if ((rv = ident_save(cfg->data_dir, &ident, errmsg)) != 0) {
            goto fail;
        }
        TLOG_INFO("server", "data directory %s: node %llu, directory id %016llx (new)",
                  cfg->data_dir, (unsigned long long)ident.node_id,
                  (unsigned long long)ident.directory_id);
    }
    log_config_init(&lc);
    lc.segment_bytes = cfg->segment_bytes;
    log_set_fd_cache(cfg->segment_fd_cache);
    if ((rv = store_open(cfg->data_dir, &lc, &s.store, errmsg)) != 0) {
        goto fail;
    }
    srv__check_nofile(cfg, store_topic_count(s.store));
    /* (the same reserve srv__check_nofile counts beside the topics) */
    store_set_fd_reserve(s.store, cfg->segment_fd_cache + cfg->max_connections + 256);
    for (unsigned i = 0; i < cfg->n_peers; i++) {
        memset(&members[i], 0, sizeof members[i]);
        members[i].id = cfg->peers[i].id;
        snprintf(members[i].client_addr, sizeof members[i].client_addr, "%s",
                 cfg->peers[i].client_addr);
        snprintf(members[i].raft_addr, sizeof members[i].raft_addr, "%s", cfg->peers[i].raft_addr);
    }
    if ((rv = store_seed_members(s.store, members, cfg->n_peers, errmsg)) != 0) {
        goto fail;
    }
    if ((rv = gw_create(cfg, s.store, &s.loop, &s.gw)) != 0) {
        goto fail;
    }
    store_set_append_hook(s.store, srv__on_append, &s);
    if (s.kgw != NULL) {
        kgw_set_gw(s.kgw, s.gw);
        kgw_set_metrics(s.kgw, &s.metrics);
    }
    metrics_init(&s.metrics, cfg, s.store);
    gw_set_metrics(s.gw, &s.metrics);
    s.conns.metrics = &s.metrics;
    metrics_set_connections(&s.metrics, &s.conns.n);
    if (s.tls_on) {
        struct buf not_tls;
        buf_init(&not_tls);
        proto_put_error_frame(&not_tls, 0, 0, TALLY_PROTO,
                              "this port requires TLS: connect with --tls-ca (and --tls-cert and "
                              "--tls-key if the cluster asks for a client certificate)",
                              0, "");
        tlsaccept_init(&s.tlsa, &s.tls, srv__serve_tls, &s, not_tls.data,
                       buf_ok(&not_tls) ? not_tls.len : 0, cfg->max_connections);
        buf_free(&not_tls);
    }

    memset(&nc, 0, sizeof nc);
    nc.id = cfg->id;
    snprintf(nc.raft_addr, sizeof nc.raft_addr, "%s", cfg->raft_addr);
    snprintf(path, sizeof path, "%s/raft", cfg->data_dir);
    snprintf(nc.raft_dir, sizeof nc.raft_dir, "%s", path);
    for (unsigned i = 0; i < cfg->n_peers && i < NODE_MAX_PEERS; i++) {
        nc.peers[i].id = cfg->peers[i].id;
        snprintf(nc.peers[i].raft_addr, sizeof nc.peers[i].raft_addr, "%s", cfg->peers[i].raft_addr);
        nc.n_peers++;
    }
    nc.bootstrap = cfg->bootstrap;
    nc.election_timeout_ms = cfg->election_timeout_ms;
    nc.heartbeat_timeout_ms = cfg->heartbeat_timeout_ms;
    nc.segment_bytes = cfg->raft_segment_bytes;
    nc.snapshot_threshold = cfg->snapshot_threshold;
    nc.snapshot_trailing = cfg->snapshot_trailing;
    nc.log_budget_bytes = cfg->raft_log_budget_bytes;
    snprintf(nc.data_dir, sizeof nc.data_dir, "%s", cfg->data_dir);
    nc.ident = ident;
    nc.tls = s.tls_on ? &s.tls : NULL; /* mutual TLS on the Raft links */
    struct node_events ev = {&s, srv__on_role, srv__on_applied, srv__on_fatal};
    if ((rv = node_create(&s.loop, &nc, s.store, &ev, &s.node, errmsg)) != 0) {
        goto fail;
    }
    gw_set_node(s.gw, s.node);
    metrics_set_node(&s.metrics, s.node);
    if ((rv = skew_start(&s.loop, cfg, s.store, s.node, s.tls_on ? &s.tls : NULL, &s.skew)) != 0) {
        goto fail;
    }
    gw_set_skew(s.gw, s.skew);
    metrics_set_skew(&s.metrics, s.skew);
    if (s.ui != NULL) {
        /* console; with TLS it asks the other members over TLS */
        ui_attach(s.ui, s.store, s.node, s.tls_on ? &s.tls : NULL);
    }
    if ((rv = compactor_start(&s.loop, cfg, s.store, &s.metrics, s.gw, &s.compactor, errmsg)) != 0 ||
        (rv = checkpointer_start(&s.loop, s.store, &s.checkpointer, errmsg)) != 0 ||
        (rv = backfill_start(&s.loop, s.store, cfg->id, s.tls_on ? &s.tls : NULL,
                             srv__on_fatal, &s, &s.backfill, errmsg)) != 0) {
        goto fail;
    }
    metrics_set_checkpoints(&s.metrics, checkpointer_stats(s.checkpointer));
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigterm.data = &s;
    uv_signal_start(&s.sigterm, srv__signal, SIGTERM);
    uv_signal_init(&s.loop, &s.sigint);
    s.sigint.data = &s;
    uv_signal_start(&s.sigint, srv__signal, SIGINT);
    uv_signal_init(&s.loop, &s.sighup);
    s.sighup.data = &s;
    uv_signal_start(&s.sighup, srv__reload_tls, SIGHUP);
    uv_timer_init(&s.loop, &s.tick);
    s.tick.data = &s;
    uv_timer_start(&s.tick, srv__tick, SRV__TICK_MS, SRV__TICK_MS);
    uv_timer_init(&s.loop, &s.retention);
    s.retention.data = &s;
    uv_timer_start(&s.retention, srv__retention, cfg->retention_interval_ms,
                   cfg->retention_interval_ms);
    TLOG_INFO("server", "node %llu serving clients on %s%s (data %s)",
              (unsigned long long)cfg->id, cfg->listen_addr,
              s.tls_on ? " with TLS" : " in plaintext (TLS off: loopback only unless --insecure)",
              cfg->data_dir);
    if (s.http != NULL) {
        TLOG_INFO("server", "metrics and health on %s://%s/", cfg->metrics_tls ? "https" : "http",
                  cfg->metrics_addr);
    }

    uv_run(&s.loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&s.loop);
    if (rv != 0) {
        TLOG_WARN("server", "loop closed with handles still open: %s", uv_strerror(rv));
    }
    fs_close(s.lock_fd);
    tls_set_free(&s.tls);
    TLOG_INFO("server", "stopped (exit %d)", s.exit_code);
    return s.exit_code;

fail:
    TLOG_ERROR("server", "%s", errmsg);
    if (s.listening) {
        uv_close((uv_handle_t *)&s.listener, NULL);
    }
    kconn_stop(s.kafka);
    http_stop(s.http);
    ui_close(s.ui); /* console */
    skew_close(s.skew);
    if (s.tlsa.serve != NULL) {
        tlsaccept_close(&s.tlsa);
    }
    if (s.gw != NULL) {
        gw_destroy(s.gw);
    }
    kgw_destroy(s.kgw);
    checkpointer_close(s.checkpointer, NULL, NULL); /* (none runs yet) */
    if (s.store != NULL) {
        store_close(s.store);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT); /* let a half-built node finish closing */
    uv_loop_close(&s.loop);
    tls_set_free(&s.tls);
    fs_close(s.lock_fd);
    return fail_exit != 0 ? fail_exit : rv == TALLY_BUSY || rv == TALLY_INVAL ? 2 : 1;
}
