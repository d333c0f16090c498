/* tally backup --to DIR: an online backup of one node's applied state at
 * one Raft index; tally restore --from DIR --data-dir D: build a new node's
 * data directory from it, offline (formats in store/import.h).
 *
 * The backup asks one node for BACKUP_CUT (its applied index, every topic's
 * settings and offsets, every group position, read at one moment on its
 * loop), then copies each topic's [start, next) with plain FETCH requests
 * to that same node, on the same connection. Records below a topic's next
 * offset are not written again, but compaction on the node would remove
 * those whose keys get later records after the cut; so the node pins its
 * logs from the cut until this connection closes (no compaction is swapped
 * in and no segment file is deleted meanwhile: a retention entry applied
 * meanwhile moves the start offset, but this connection's FETCHes may still
 * read below it, server/gw.c, store_hold_trim), and the copy is the
 * state at the cut however
 * long it takes. The batches are verified (checksums) and written with the log
 * layer into DIR/topics/NAME; the manifest is written last, atomically.
 *
 * It speaks the wire protocol (proto/) on one blocking connection
 * (client/wire.h, the one libtally uses) instead of through libtally's
 * calls: it must stay on one node (the cut's) and wants raw batches. */
#include "tool/cmd_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/wire.h"
#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/tls.h"
#include "log/log.h"
#include "proto/auth.h"
#include "proto/proto.h"
#include "store/import.h"
#include "tool/util.h"

#define BACKUP__FETCH_BYTES (4u << 20)
#define BACKUP__DEFAULT_TIMEOUT_MS 10000

/* ---- requests on one connection (client/wire.h carries the bytes) ---- */

struct backup_conn {
    struct wire w;   /* w.addr is the node as given, for messages */
    uint32_t next_id;
    int timeout_ms;  /* per request */
};

static int backup__connect(struct backup_conn *c, const char *hostport, int timeout_ms,
                           char *errmsg)
{
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    memset(c, 0, sizeof *c);
    c->next_id = 1;
    c->timeout_ms = timeout_ms;
    wire_init(&c->w, hostport);
    if (wire_parse_addr(hostport, strlen(hostport), &sa, norm) != 0) {
        err_printf(errmsg, "'%s' is not HOST:PORT, or its host cannot be resolved", hostport);
        return TALLY_INVAL;
    }
    int rv = wire_open(&c->w, &sa, wire_now_ms() + timeout_ms, errmsg);
    if (rv == 0 && tool_tls_wanted()) { /* TLS hook: the same TLS as every other command */
        struct tls_files tf = {tool_g.tls_cert, tool_g.tls_key, tool_g.tls_ca, true};
        char host[PROTO_ADDR_MAX];
        bool refused;
        SSL_CTX *ctx = tls_client_ctx(&tf, errmsg);
        const char *colon = strrchr(hostport, ':');
        if (ctx == NULL) {
            wire_close(&c->w);
            return TALLY_INVAL;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
        rv = wire_start_tls(&c->w, ctx, host, wire_now_ms() + timeout_ms, &refused, errmsg);
        SSL_CTX_free(ctx); /* the connection holds its own reference */
    }
    return rv;
}

/* Send one request (@body) and read its answer: 0 with *resp (malloc'd,
 * the body) or the error response's code with its message. */
static int backup__call(struct backup_conn *c, uint16_t type, const struct buf *body,
                        uint8_t **resp, size_t *resp_len, char *errmsg)
{
    struct buf b;
    uint8_t h[PROTO_HEADER_SIZE];
    struct proto_frame f;
    uint32_t id = c->next_id++;
    int64_t deadline = wire_now_ms() + c->timeout_ms;
    bool sent = false;
    int rv;
    *resp = NULL;
    buf_init(&b);
    size_t start = proto_begin_frame(&b, type, 0, id);
    buf_put(&b, body->data, body->len);
    proto_end_frame(&b, start);
    if (!buf_ok(&b)) {
        buf_free(&b);
        return TALLY_NOMEM;
    }
    rv = wire_send_all(&c->w, b.data, b.len, deadline, &sent, errmsg);
    buf_free(&b);
    if (rv == 0) {
        rv = wire_recv_exact(&c->w, h, sizeof h, deadline, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    if (proto_decode_frame(h, sizeof h, PROTO_MAX_FRAME, &f) != 0 ||
        !(f.flags & PROTO_FLAG_RESPONSE) || f.type != type || f.request_id != id) {
        err_printf(errmsg, "node %s sent a malformed answer to %s", c->w.addr,
                   proto_type_name(type));
        return TALLY_PROTO;
    }
    size_t n = f.frame_len + 4 - PROTO_HEADER_SIZE;
    uint8_t *data = malloc(n > 0 ? n : 1);
    if (data == NULL) {
        return TALLY_NOMEM;
    }
    if ((rv = wire_recv_exact(&c->w, data, n, deadline, errmsg)) != 0) {
        free(data);
        return rv;
    }
    if (f.flags & PROTO_FLAG_ERROR) {
        struct proto_error e;
        struct rd r;
        rd_init(&r, data, n);
        if (proto_get_error(&r, &e) != 0 || e.code == 0) {
            err_printf(errmsg, "node %s sent a malformed error", c->w.addr);
            rv = TALLY_PROTO;
        } else {
            err_printf(errmsg, "%s", e.message);
            rv = e.code;
        }
        free(data);
        return rv;
    }
    *resp = data;
    *resp_len = n;
    return 0;
}

/* ---- login (SCRAM, docs/security.md) ------------------------------------ */

struct backup__login_arg {
    struct backup_conn *c;
    uint8_t *resp; /* the last answer's body (owned) */
};

static int backup__login_rt(void *arg, struct buf *frame, struct proto_auth_reply *rep,
                            char *errmsg)
{
    struct backup__login_arg *a = arg;
    struct buf body;
    size_t len = 0;
    int rv;
    free(a->resp);
    a->resp = NULL;
    buf_init(&body);
    buf_put(&body, frame->data + PROTO_HEADER_SIZE, frame->len - PROTO_HEADER_SIZE);
    rv = buf_ok(&body) ? backup__call(a->c, PROTO_AUTH, &body, &a->resp, &len, errmsg)
                       : TALLY_NOMEM;
    buf_free(&body);
    rep->is_error = rv == TALLY_AUTH;
    rep->message[0] = '\0';
    if (rv == TALLY_AUTH) {
        snprintf(rep->message, sizeof rep->message, "%s", errmsg);
        return 0;
    }
    if (rv == 0) {
        rd_init(&rep->body, a->resp, len);
    }
    return rv;
}

/* Log in as tool_g.user, if given. */
static int backup__login(struct backup_conn *c, char *errmsg)
{
    struct backup__login_arg a = {c, NULL};
    int rv;
    if (tool_g.user == NULL) {
        return 0;
    }
    rv = proto_auth_login_mech(tool_g.mechanism != NULL &&
                                       strcmp(tool_g.mechanism, "SCRAM-SHA-512") == 0
                                   ? 2
                                   : 1,
                               tool_g.user, tool_g.password, backup__login_rt, &a, NULL, 0,
                               errmsg);
    free(a.resp);
    return rv;
}

/* ---- backup ----------------------------------------------------------- */

static const char backup_help[] =
    "Usage: tally backup --to DIR [--node HOST:PORT] [OPTIONS]\n"
    "\n"
    "Copy the applied state of one node, consistent at one Raft index, into\n"
    "DIR (which must not exist or be empty): every topic's settings and\n"
    "records (the stored batches, checksums verified), every consumer group\n"
    "position, and a MANIFEST listing each file with its size and XXH3\n"
    "checksum. The cluster keeps serving; records written after the cut are\n"
    "not in the backup. The MANIFEST is written last: a DIR without it is\n"
    "not a backup. Progress goes to stderr once a second.\n"
    "\n"
    "  --to DIR            where to write the backup\n"
    "  --node HOST:PORT    the node to copy (any member; default: the first\n"
    "                      node of --brokers that answers)\n"
    "\n"
    "Restore it with 'tally restore'. Exit status: 0 done, 1 failed (the\n"
    "message says why; DIR then holds no MANIFEST), 2 bad usage.\n"
    "\n" TOOL_COMMON_HELP;

struct backup_progress {
    int64_t started_ms, last_ms;
    uint64_t total, done, bytes;
    const char *topic;
};

static void backup__progress(struct backup_progress *p, bool final)
{
    int64_t now = tool_now_ms();
    if (!final && now - p->last_ms < 1000) {
        return;
    }
    if (final && now - p->started_ms < 1000) {
        return; /* short work: no progress lines */
    }
    p->last_ms = now;
    fprintf(stderr, "tally backup: %3.0f%% %" PRIu64 "/%" PRIu64 " offsets, %.1f MB%s%s\n",
            p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0, p->done, p->total,
            (double)p->bytes / 1e6, p->topic != NULL && !final ? ", topic " : "",
            p->topic != NULL && !final ? p->topic : "");
}

/* Copy [t->start_offset, t->next_offset) of one topic. */
static int backup__topic(struct backup_conn *c, const char *dir, const struct import_topic *t,
                         uint64_t cut_index, struct backup_progress *pg, char *errmsg)
{
    char path[PATH_MAX + STORE_NAME_MAX + 16];
    struct log_config lc;
    struct tally_log *log = NULL;
    uint64_t offset = t->start_offset;
    int rv;
    log_config_init(&lc);
    if (t->config.segment_bytes > 0) {
        lc.segment_bytes = (uint64_t)t->config.segment_bytes;
    }
    snprintf(path, sizeof path, "%s/topics/%s", dir, t->name);
    if ((rv = log_open(path, &lc, t->start_offset, &log, errmsg)) != 0) {
        return rv;
    }
    pg->topic = t->name;
    while (rv == 0 && offset < t->next_offset) {
        struct buf body;
        struct proto_fetch_req req;
        struct proto_fetch_resp resp;
        uint8_t *data = NULL;
        size_t len = 0;
        struct rd r;
        memset(&req, 0, sizeof req);
        snprintf(req.topic, sizeof req.topic, "%s", t->name);
        req.offset = offset;
        req.max_bytes = BACKUP__FETCH_BYTES;
        req.min_index = cut_index;
        buf_init(&body);
        proto_put_fetch_req(&body, &req);
        rv = buf_ok(&body) ? backup__call(c, PROTO_FETCH, &body, &data, &len, errmsg) : TALLY_NOMEM;
        buf_free(&body);
        if (rv != 0) {
            err_wrap(errmsg, "fetch %s at offset %" PRIu64 " from %s", t->name, offset, c->w.addr);
            break;
        }
        rd_init(&r, data, len);
        if (proto_get_fetch_resp(&r, &resp) != 0 || proto_get_end(&r) != 0) {
            rv = TALLY_PROTO;
            err_printf(errmsg, "malformed FETCH answer from %s", c->w.addr);
        } else if (resp.batches_len == 0) {
            rv = TALLY_CORRUPT;
            err_printf(errmsg, "node %s has no records of %s at offset %" PRIu64
                               " although the cut says they end at %" PRIu64,
                       c->w.addr, t->name, offset, t->next_offset);
        }
        for (size_t pos = 0; rv == 0 && pos < resp.batches_len;) {
            struct batch_header h;
            const uint8_t *p = resp.batches + pos;
            size_t left = resp.batches_len - pos;
            rv = batch_decode_header(p, left, &h, errmsg);
            if (rv == 0 && h.batch_len > left) {
                rv = TALLY_CORRUPT;
                err_printf(errmsg, "batch cut short");
            }
            if (rv == 0) {
                rv = batch_verify(p, h.batch_len, &h, errmsg);
            }
            if (rv != 0) {
                err_wrap(errmsg, "batch of %s at offset %" PRIu64 " from %s", t->name, offset,
                         c->w.addr);
                break;
            }
            pos += h.batch_len;
            if (batch_last_offset(&h) < offset) {
                continue; /* before the start */
            }
            if (h.base_offset >= t->next_offset) {
                offset = t->next_offset; /* written after the cut */
                break;
            }
            rv = log_append(log, p, h.batch_len, h.first_timestamp, errmsg);
            if (rv != 0) {
                err_wrap(errmsg, "write %s", path);
                break;
            }
            pg->done += batch_last_offset(&h) + 1 - offset;
            pg->bytes += h.batch_len;
            offset = batch_last_offset(&h) + 1;
        }
        free(data);
        backup__progress(pg, false);
    }
    if (rv == 0 && log_next_offset(log) != t->next_offset) {
        rv = TALLY_CORRUPT;
        err_printf(errmsg, "topic %s: copied up to offset %" PRIu64 ", the cut says %" PRIu64,
                   t->name, log_next_offset(log), t->next_offset);
    }
    if (rv == 0) {
        rv = log_sync(log, errmsg);
    }
    log_close(log);
    return rv;
}

/* The start offset topic @name has on @c's node now (TOPIC_LIST). */
static int backup__start_now(struct backup_conn *c, const char *name, uint64_t *start, char *errmsg)
{
    struct buf body;
    struct proto_topic_list_req req = {0};
    struct proto_topic_list_resp resp;
    uint8_t *data = NULL;
    size_t len = 0;
    struct rd r;
    int rv;
    buf_init(&body);
    proto_put_topic_list_req(&body, &req);
    rv = buf_ok(&body) ? backup__call(c, PROTO_TOPIC_LIST, &body, &data, &len, errmsg) : TALLY_NOMEM;
    buf_free(&body);
    if (rv != 0) {
        return rv;
    }
    rd_init(&r, data, len);
    rv = proto_get_topic_list_resp(&r, &resp) != 0 ? TALLY_PROTO : TALLY_NOTFOUND;
    for (uint32_t i = 0; rv == TALLY_NOTFOUND && i < resp.n_topics; i++) {
        struct proto_topic pt;
        if (proto_get_topic(&r, &pt) != 0) {
            rv = TALLY_PROTO;
        } else if (strcmp(pt.name, name) == 0) {
            *start = pt.start_offset;
            rv = 0;
        }
    }
    free(data);
    if (rv != 0) {
        err_printf(errmsg, "topic %s: %s in the topic list of %s", name,
                   rv == TALLY_NOTFOUND ? "not" : "malformed answer", c->w.addr);
    }
    return rv;
}

/* Copy one topic. If the node's retention deletes the oldest records of
 * the topic after the cut, before they were copied (only a node of an
 * older version, without the backup pin that holds retention back; FETCH
 * then answers OUT_OF_RANGE below the node's new start), the copy starts
 * over from the node's new start: the same state as a cut taken after
 * that retention pass, which is what a backup taken a moment later would
 * hold. */
static int backup__topic_retrying(struct backup_conn *c, const char *dir, struct import_topic *t,
                                  uint64_t cut_index, struct backup_progress *pg,
                                  char *errmsg)
{
    for (int attempt = 0;; attempt++) {
        uint64_t done = pg->done, bytes = pg->bytes, now_start = 0;
        char why[ERR_MSG_SIZE] = "";
        char path[PATH_MAX + STORE_NAME_MAX + 16];
        int rv = backup__topic(c, dir, t, cut_index, pg, errmsg);
        if (rv != TALLY_OUT_OF_RANGE || attempt == 3) {
            return rv;
        }
        if (backup__start_now(c, t->name, &now_start, why) != 0 ||
            now_start <= t->start_offset) {
            return rv; /* not retention: keep the fetch's message */
        }
        if (now_start > t->next_offset) {
            now_start = t->next_offset; /* nothing of the cut is left */
        }
        fprintf(stderr, "tally backup: retention on %s removed offsets %" PRIu64 "..%" PRIu64
                        " of topic %s during the backup; copying it again from %" PRIu64 "\n",
                c->w.addr, t->start_offset, now_start - 1, t->name, now_start);
        snprintf(path, sizeof path, "%s/topics/%s", dir, t->name);
        if ((rv = fs_clear_dir(path, errmsg)) != 0) {
            return rv;
        }
        pg->total -= now_start - t->start_offset;
        pg->done = done;
        pg->bytes = bytes;
        t->start_offset = now_start;
    }
}

/* Ask @c for the cut and fill @m. */
static int backup__cut(struct backup_conn *c, struct import_manifest *m, char *errmsg)
{
    struct buf body;
    struct proto_backup_cut_req req = {0};
    struct proto_backup_cut_resp resp;
    struct proto_backup_groups groups;
    uint8_t *data = NULL;
    size_t len = 0;
    struct rd r;
    int rv;
    buf_init(&body);
    proto_put_backup_cut_req(&body, &req);
    rv = buf_ok(&body) ? backup__call(c, PROTO_BACKUP_CUT, &body, &data, &len, errmsg) : TALLY_NOMEM;
    buf_free(&body);
    if (rv == TALLY_UNKNOWN_REQUEST) {
        err_wrap(errmsg, "node %s does not know BACKUP_CUT (upgrade it)", c->w.addr);
    }
    if (rv != 0) {
        return rv;
    }
    rd_init(&r, data, len);
    rv = proto_get_backup_cut_resp(&r, &resp);
    if (rv == 0 && resp.cut_version != PROTO_BACKUP_CUT_VERSION) {
        free(data);
        err_printf(errmsg, "node %s answers BACKUP_CUT version %u, this tool reads %u", c->w.addr,
                   resp.cut_version, PROTO_BACKUP_CUT_VERSION);
        return TALLY_VERSION;
    }
    m->node_id = resp.node_id;
    m->applied_index = resp.applied_index;
    m->term = resp.term;
    for (uint32_t i = 0; rv == 0 && i < resp.n_topics; i++) {
        struct proto_topic pt;
        struct import_topic t;
        memset(&t, 0, sizeof t);
        if ((rv = proto_get_topic(&r, &pt)) == 0) {
            snprintf(t.name, sizeof t.name, "%s", pt.name);
            t.config.policy = pt.policy;
            t.config.retention_ms = pt.retention_ms;
            t.config.retention_bytes = pt.retention_bytes;
            t.config.segment_bytes = pt.segment_bytes;
            t.start_offset = pt.start_offset;
            t.next_offset = pt.next_offset;
            rv = import_manifest_add_topic(m, &t);
        }
    }
    if (rv == 0) {
        rv = proto_get_backup_groups(&r, &groups);
    }
    for (uint32_t i = 0; rv == 0 && i < groups.n_groups; i++) {
        struct proto_backup_group pg;
        struct import_group g;
        memset(&g, 0, sizeof g);
        if ((rv = proto_get_backup_group(&r, &pg)) == 0) {
            snprintf(g.group, sizeof g.group, "%s", pg.group);
            snprintf(g.topic, sizeof g.topic, "%s", pg.topic);
            g.offset = pg.offset;
            rv = import_manifest_add_group(m, &g);
        }
    }
    if (rv == 0) {
        rv = proto_get_end(&r);
    }
    free(data);
    if (rv == TALLY_PROTO) {
        err_printf(errmsg, "malformed BACKUP_CUT answer from %s", c->w.addr);
    }
    return rv;
}

/* fsync DIR/NAME: the topic directories' names are durable before the
 * MANIFEST that lists their files is (its rename fsyncs DIR itself). */
static int backup__fsync_dir(const char *dir, const char *name, char *errmsg)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fs_sync_dir(path, errmsg);
}

/* DIR must not exist (it is created) or be an empty directory. */
static int backup__prepare_dir(const char *dir, char *errmsg)
{
    char path[PATH_MAX + 16];
    bool existed;
    int rv = fs_mkdir(dir, &existed, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (existed) {
        if (!fs_is_dir(dir)) {
            err_printf(errmsg, "%s exists and is not a directory", dir);
            return TALLY_EXISTS;
        }
        if (fs_rmdir(dir, errmsg) != 0) { /* fails unless empty: then recreate it */
            err_printf(errmsg, "%s is not empty: back up into a new directory", dir);
            return TALLY_EXISTS;
        }
        if ((rv = fs_mkdir(dir, NULL, errmsg)) != 0) {
            return rv;
        }
    }
    snprintf(path, sizeof path, "%s/topics", dir);
    return fs_mkdir(path, NULL, errmsg);
}

int cmd_backup_main(int argc, char **argv)
{
    static const char cmd[] = "backup";
    enum { OPT_TO = TOOL_OPT__FIRST_FREE, OPT_NODE };
    static const struct option longopts[] = {
        TOOL_COMMON_LONGOPTS,
        {"to", required_argument, NULL, OPT_TO},
        {"node", required_argument, NULL, OPT_NODE},
        {NULL, 0, NULL, 0},
    };
    const char *to = NULL, *node = NULL;
    char errmsg[ERR_MSG_SIZE] = "";
    char nodes[4096];
    struct backup_conn conn;
    struct import_manifest m;
    struct backup_progress pg;
    int c, rc, rv = TALLY_INVAL;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(backup_help, stdout);
            return TOOL_EXIT_OK;
        case OPT_TO:
            to = optarg;
            break;
        case OPT_NODE:
            node = optarg;
            break;
        case '?':
            return tool_bad_option(cmd, argv);
        default:
            rc = tool_common_option(cmd, c, optarg);
            if (rc != TOOL_EXIT_OK) {
                return rc < 0 ? TOOL_EXIT_USAGE : rc;
            }
        }
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (to == NULL || to[0] == '\0') {
        return tool_usage_error(cmd, "missing --to DIR");
    }
    if (node == NULL) {
        node = tool_g.brokers != NULL ? tool_g.brokers : getenv("TALLY_BROKERS");
        if (node == NULL || node[0] == '\0') {
            node = TOOL_DEFAULT_BROKERS;
        }
    } else if (strchr(node, ',') != NULL) {
        return tool_usage_error(cmd, "--node takes one HOST:PORT");
    }
    if (strlen(node) >= sizeof nodes) {
        return tool_usage_error(cmd, "broker list too long");
    }
    snprintf(nodes, sizeof nodes, "%s", node);
    int timeout = tool_g.timeout_ms > 0 ? tool_g.timeout_ms : BACKUP__DEFAULT_TIMEOUT_MS;

    if ((rv = tool_read_login(cmd)) != TOOL_EXIT_OK) {
        return rv;
    }
    /* The first node that answers BACKUP_CUT is the one copied. */
    import_manifest_init(&m);
    wire_init(&conn.w, "");
    char *save = NULL;
    for (char *a = strtok_r(nodes, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
        rv = backup__connect(&conn, a, timeout, errmsg);
        if (rv == TALLY_INVAL) {
            return tool_usage_error(cmd, "%s", errmsg);
        }
        if (rv == 0) {
            rv = backup__login(&conn, errmsg); /* auth hook */
        }
        if (rv == 0) {
            rv = backup__cut(&conn, &m, errmsg);
        }
        if (rv == 0) {
            break;
        }
        /* The connection's own messages start with the address already. */
        if (strncmp(errmsg, a, strlen(a)) == 0 && errmsg[strlen(a)] == ':') {
            fprintf(stderr, "tally backup: %s\n", errmsg);
        } else {
            fprintf(stderr, "tally backup: %s: %s\n", a, errmsg);
        }
        wire_close(&conn.w);
        import_manifest_free(&m);
    }
    if (rv != 0) {
        return tool_error(cmd, "no node answered; nothing was written");
    }
    if ((rv = backup__prepare_dir(to, errmsg)) != 0) {
        wire_close(&conn.w);
        import_manifest_free(&m);
        return tool_error(cmd, "%s", errmsg);
    }
    memset(&pg, 0, sizeof pg);
    pg.started_ms = pg.last_ms = tool_now_ms();
    for (unsigned i = 0; i < m.n_topics; i++) {
        pg.total += m.topics[i].next_offset - m.topics[i].start_offset;
    }
    fprintf(stderr, "tally backup: node %" PRIu64 " (%s) at applied index %" PRIu64 ": %u topics, "
                    "%" PRIu64 " offsets, %u group positions\n",
            m.node_id, conn.w.addr, m.applied_index, m.n_topics, pg.total, m.n_groups);
    for (unsigned i = 0; rv == 0 && i < m.n_topics; i++) {
        rv = backup__topic_retrying(&conn, to, &m.topics[i], m.applied_index, &pg, errmsg);
    }
    wire_close(&conn.w);
    if (rv == 0) {
        rv = backup__fsync_dir(to, "topics", errmsg);
    }
    if (rv == 0) {
        m.created_ms = (int64_t)time(NULL) * 1000;
        rv = import_manifest_add_files(&m, to, errmsg);
    }
    if (rv == 0) {
        rv = import_manifest_write(&m, to, errmsg);
    }
    if (rv != 0) {
        import_manifest_free(&m);
        return tool_error(cmd, "%s; %s is incomplete (it has no MANIFEST): delete it", errmsg, to);
    }
    backup__progress(&pg, true);
    printf("backup of node %" PRIu64 " at index %" PRIu64 ": %u topics, %" PRIu64
           " offsets, %.1f MB, %u group positions, %u files in %s\n",
           m.node_id, m.applied_index, m.n_topics, pg.done, (double)pg.bytes / 1e6, m.n_groups,
           m.n_files, to);
    import_manifest_free(&m);
    rc = tool_check_stdout(cmd);
    return rc >= 0 ? rc : TOOL_EXIT_OK;
}

/* ---- restore ---------------------------------------------------------- */

static const char restore_help[] =
    "Usage: tally restore --from DIR --data-dir DATA\n"
    "       tally restore --from DIR --verify\n"
    "\n"
    "Offline: build the data directory of one node of a NEW cluster from a\n"
    "backup made by 'tally backup'. Run it for every node of the new cluster\n"
    "before its first start, then start the nodes with --bootstrap as for\n"
    "any new cluster. It checks the MANIFEST and the size and checksum of\n"
    "every file first, and refuses a damaged backup naming the file. DATA\n"
    "must not exist or be empty; the state is built in DATA.restoring and\n"
    "renamed to DATA at the end. Topics, their settings, the records at the\n"
    "same offsets (keys, values, headers, timestamps) and consumer group\n"
    "positions are restored; idempotent producer state is not.\n"
    "\n"
    "  --from DIR       the backup\n"
    "  --data-dir DATA  the new node's data directory (tallyd --data)\n"
    "  --verify         only check the backup (files, and each topic's batches\n"
    "                   against its manifest range), write nothing\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 done, 1 the backup is damaged or the restore failed\n"
    "(nothing usable is left in DATA), 2 bad usage.\n";

struct restore_progress {
    int64_t started_ms, last_ms;
};

static void backup__restore_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
    struct restore_progress *p = arg;
    int64_t now = tool_now_ms();
    if (now - p->last_ms < 1000) {
        return;
    }
    p->last_ms = now;
    fprintf(stderr, "tally restore: %s %3.0f%% (%.1f of %.1f MB)\n", phase,
            total > 0 ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1e6,
            (double)total / 1e6);
}

int cmd_restore_main(int argc, char **argv)
{
    static const char cmd[] = "restore";
    enum { OPT_FROM = TOOL_OPT__FIRST_FREE, OPT_DATA, OPT_VERIFY };
    static const struct option longopts[] = {
        {"from", required_argument, NULL, OPT_FROM},
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *data = NULL;
    bool verify_only = false;
    char errmsg[ERR_MSG_SIZE] = "";
    struct restore_progress pg;
    int c, rv;

    tool_getopt_reset();
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_help, stdout);
            return TOOL_EXIT_OK;
        case OPT_FROM:
            from = optarg;
            break;
        case OPT_DATA:
            data = optarg;
            break;
        case OPT_VERIFY:
            verify_only = true;
            break;
        default:
            return tool_bad_option(cmd, argv);
        }
    }
    if (optind < argc) {
        return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (from == NULL || from[0] == '\0') {
        return tool_usage_error(cmd, "missing --from DIR");
    }
    if (verify_only == (data != NULL)) {
        return tool_usage_error(cmd, "give either --data-dir DATA or --verify");
    }
    if (data != NULL && data[0] == '\0') {
        return tool_usage_error(cmd, "--data-dir needs a directory");
    }
    pg.started_ms = pg.last_ms = tool_now_ms();
    if (verify_only) {
        struct import_manifest m;
        uint64_t bytes = 0;
        if ((rv = import_manifest_read(from, &m, errmsg)) == 0) {
            rv = import_verify(&m, from, backup__restore_progress, &pg, errmsg);
        }
        if (rv != 0) {
            return tool_error(cmd, "%s", errmsg);
        }
        for (unsigned i = 0; i < m.n_files; i++) {
            bytes += m.files[i].size;
        }
        printf("backup %s is intact: node %" PRIu64 " at index %" PRIu64
               ", %u topics, %u group positions, %u files, %" PRIu64 " bytes\n",
               from, m.node_id, m.applied_index, m.n_topics, m.n_groups, m.n_files, bytes);
        import_manifest_free(&m);
    } else {
        struct log_config lc;
        struct import_stats st;
        log_config_init(&lc);
        rv = import_restore(from, data, &lc, backup__restore_progress, &pg, &st, errmsg);
        if (rv != 0) {
            return tool_error(cmd, "%s", errmsg);
        }
        printf("restored %u topics (%" PRIu64 " records in %" PRIu64 " batches, %.1f MB) and "
               "%u group positions into %s\n",
               st.topics, st.records, st.batches, (double)st.bytes / 1e6, st.groups, data);
    }
    rv = tool_check_stdout(cmd);
    return rv >= 0 ? rv : TOOL_EXIT_OK;
}
