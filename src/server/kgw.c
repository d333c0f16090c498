/* The Kafka front door's gateway (kgw.h).
 *
 * Every Kafka request is answered from native requests to gw.c, encoded
 * with proto.h like a client's and handed back through this front door's
 * req_ops (server/req.h):
 *   Metadata     METADATA (members, leader) + TOPIC_LIST
 *   Produce      one PRODUCE per partition, its batch converted from
 *                Kafka's record batch v2 (kafka/records.h)
 *   Fetch        one FETCH per partition, repeated while min_bytes is not
 *                reached and max_wait_ms has not passed (the native fetch
 *                parks at the end of the log: tally's long-poll)
 *   ListOffsets  TOPIC_LIST (earliest, latest) + OFFSET_FOR_TIME
 *   CreateTopics TOPIC_CREATE per topic; DeleteTopics TOPIC_DELETE per topic
 *   Metadata with kafka_auto_create_topics: TOPIC_CREATE for unknown names
 * InitProducerId and FindCoordinator are answered here (no state). A
 * native request may be answered inside gw_handle (an error, a read), so
 * each handler holds job->pending up while it issues them. So every check, the group commit, Raft and the store are the native
 * ones; this file only translates.
 *
 * Failure modes: a request that does not decode, or an API or version not
 * in kafka_apis[], closes the connection (logged once, at WARN; nothing
 * reaches gw.c), except ApiVersions, answered in v0 with
 * UNSUPPORTED_VERSION; a record batch that fails its checks (length, CRC,
 * framing, magic, compression) is answered with its Kafka error for that
 * partition and logged, and nothing of it is proposed. */
#include "server/kgw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "kafka/errors.h"
#include "kafka/records.h"
#include "lib/batch.h"
#include "lib/err.h"
#include "lib/logger.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/kconn.h"
#include "server/kgw_int.h"
#include "server/metrics.h"
#include "server/req.h"

/* The most a Fetch answer carries (Kafka's fetch.max.bytes is a hint the
 * broker may cap; the native FETCH caps at 4 MiB too). */
#define KGW_MAX_FETCH_BYTES (4u << 20)

int kgw_create(const struct cfg *cfg, uv_loop_t *loop, struct gw *gw, struct kgw **out)
{
    struct kgw *kg = calloc(1, sizeof *kg);
    if (kg == NULL) {
        return TALLY_NOMEM;
    }
    kg->cfg = cfg;
    kg->loop = loop;
    kgw_set_gw(kg, gw);
    *out = kg;
    return 0;
}

void kgw_on_role(struct kgw *kg, bool leader)
{
    if (kg == NULL || kg->leading == leader) {
        return;
    }
    /* Membership is the leader's alone (gw.c resets the coordinator). */
    kg->leading = leader;
}

void kgw_set_gw(struct kgw *kg, struct gw *gw)
{
    kg->gw = gw;
    kg->groups = gw != NULL ? gw_groups(gw) : NULL; /* gw.c owns the coordinator */
}

void kgw_set_metrics(struct kgw *kg, struct metrics *m)
{
    kg->metrics = m;
}

void kgw_destroy(struct kgw *kg)
{
    free(kg);
}

void kgw_flush(struct kgw *kg)
{
    gw_flush(kg->gw);
}

void kjob_unref(struct kjob *job)
{
    if (--job->refs > 0) {
        return;
    }
    if (job->free_state != NULL) {
        job->free_state(job->state);
    }
    kafka_arena_free(&job->arena);
    buf_free(&job->resp);
    free(job->frame);
    free(job);
}

/* ---- native requests ---------------------------------------------------- */

/* The answer of a native request, frame decoded; @cb translates it. */
static void kgw__native_answer(struct kgw__sub *sub)
{
    struct req *r = &sub->req;
    struct kjob *job = sub->job;
    struct kgw__answer a = {.code = 0, .message = ""};
    struct proto_error err;
    struct proto_frame f;
    const uint8_t *frame = sub->whole != NULL ? sub->whole : r->resp.data;
    size_t len = r->resp.len + (sub->whole != NULL ? r->file_len : 0);

    if (r->file_len > 0 && (sub->whole == NULL || sub->read_failed)) {
        a.code = TALLY_IOERR;
        a.message = "cannot read the fetched batches";
    }
    if (a.code == 0 && (frame == NULL || len < PROTO_HEADER_SIZE ||
                        proto_decode_frame(frame, len, UINT32_MAX, &f) != 0)) {
        a.code = TALLY_PROTO;
        a.message = "malformed native answer";
    }
    if (a.code == 0) {
        rd_init(&a.body, frame + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE);
        if (f.flags & PROTO_FLAG_ERROR) {
            if (proto_get_error(&a.body, &err) == 0) {
                a.code = err.code != 0 ? err.code : TALLY_PROTO;
                a.message = err.message;
            } else {
                a.code = TALLY_PROTO;
                a.message = "malformed native error";
            }
        }
    }
    job->pending--;
    sub->cb(sub, &a);
    free(sub->whole);
    buf_free(&r->resp);
    if (r->file_fd >= 0) {
        close(r->file_fd);
    }
    free(sub);
    kjob_unref(job);
}

/* On a worker of the thread pool: a FETCH answer's batches are in a
 * segment file (zero copy for native clients); read them next to the
 * frame, so that the loop never waits for the disk. sub->whole was
 * allocated on the loop (kgw__req_complete). */
static void kgw__read_work(uv_work_t *w)
{
    struct kgw__sub *sub = w->data;
    struct req *r = &sub->req;
    ssize_t n = -1;
    if (sub->whole != NULL) {
        memcpy(sub->whole, r->resp.data, r->resp.len);
        do {
            n = pread(r->file_fd, sub->whole + r->resp.len, r->file_len, r->file_pos);
        } while (n < 0 && errno == EINTR);
    }
    sub->read_failed = n != (ssize_t)r->file_len;
}

static void kgw__read_done(uv_work_t *w, int status)
{
    struct kgw__sub *sub = w->data;
    if (status != 0) {
        sub->read_failed = true;
    }
    kgw__native_answer(sub);
}

/* req_ops.complete: the gateway answered (possibly inside gw_handle). */
static void kgw__req_complete(struct req *r)
{
    struct kgw__sub *sub = (struct kgw__sub *)r; /* req is its first member */
    r->done = true;
    metrics_request_done(sub->kg->metrics, r->type, r->start_ns, r->resp.data, r->resp.len);
    if (r->file_len == 0) {
        kgw__native_answer(sub);
        return;
    }
    /* Allocated here, not on the worker: the loop's heap reuses the
     * memory of the last answer, where each worker's own arena handed out
     * fresh pages, which the kernel zeroed on the read's first touch (half
     * of the leader's CPU in a Kafka consume, by perf). */
    sub->whole = malloc(r->resp.len + r->file_len);
    sub->work.data = sub;
    if (uv_queue_work(sub->kg->loop, &sub->work, kgw__read_work, kgw__read_done) != 0) {
        kgw__read_work(&sub->work); /* cannot happen on a live loop; read here */
        kgw__native_answer(sub);
    }
}

/* Backups come only through the native listener. */
static void kgw__req_hold_backup(struct req *r)
{
    (void)r;
}

static bool kgw__req_is_backup(const struct req *r)
{
    (void)r;
    return false;
}

/* The Kafka connection's authentication: a SaslAuthenticate runs the
 * native AUTH step on it (auth.c), and every later native request of the
 * connection is authorized as its principal. */
static struct auth_conn **kgw__req_auth(struct req *r)
{
    struct kgw__sub *sub = (struct kgw__sub *)r;
    return kconn_job_auth(sub->job);
}

static const char *kgw__req_peer(const struct req *r)
{
    const struct kgw__sub *sub = (const struct kgw__sub *)r;
    return kconn_job_peer(sub->job);
}

/* How the gateway hands this front door's requests back (server/req.h). */
static const struct req_ops kgw__req_ops = {
    .complete = kgw__req_complete,
    .hold_backup = kgw__req_hold_backup,
    .is_backup = kgw__req_is_backup,
    .auth = kgw__req_auth,
    .peer = kgw__req_peer,
};

/* Hand a native request of @type with body @body to the gateway for @job;
 * @cb gets its answer (possibly before this returns). */
void kgw__native(struct kgw *kg, struct kjob *job, uint16_t type, const struct buf *body,
                        void (*cb)(struct kgw__sub *, struct kgw__answer *), int32_t t,
                        int32_t p)
{
    struct kgw__sub *sub = calloc(1, sizeof *sub);
    if (sub == NULL || !buf_ok(body)) {
        struct kgw__answer a = {.code = TALLY_NOMEM, .message = "out of memory"};
        struct kgw__sub tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.kg = kg;
        tmp.job = job;
        tmp.t = t;
        tmp.p = p;
        free(sub);
        cb(&tmp, &a);
        return;
    }
    sub->req.ops = &kgw__req_ops;
    /* The gateway only tests conn against NULL ("the client is gone"); a
     * Kafka job that is gone keeps its native requests going until they
     * are answered (job->refs), so conn is never NULL here. It points at
     * the request's own container and is never dereferenced. */
    sub->req.conn = (struct conn *)(void *)sub;
    sub->req.type = type;
    sub->req.start_ns = metrics_now_ns();
    sub->req.file_fd = -1;
    buf_init(&sub->req.resp);
    sub->kg = kg;
    sub->job = job;
    sub->cb = cb;
    sub->t = t;
    sub->p = p;
    job->refs++;
    job->pending++;
    gw_handle(kg->gw, &sub->req, PROTO_VERSION, body->data, body->len);
}

void kgw__finish(struct kjob *job, void (*encode)(struct kjob *job))
{
    size_t start = kafka_begin_response(&job->resp, &job->h);
    encode(job);
    kafka_end_response(&job->resp, start);
    if (!buf_ok(&job->resp)) {
        TLOG_WARN("kafka", "out of memory for an answer: closing the connection");
        job->resp.len = 0;
        job->close_after = true;
    }
    kconn_job_done(job);
}

/* Close the connection after earlier answers: the request cannot be
 * answered in a way the client would read. */
void kgw__reject(struct kjob *job, const char *why)
{
    const struct kafka_api *api = kafka_api_find(job->h.api_key);
    TLOG_WARN("kafka", "request %s v%d (correlation id %d) rejected, closing the connection: %s",
              api != NULL ? api->name : "of unknown API", job->h.api_version,
              job->h.correlation_id, why);
    job->resp.len = 0;
    job->close_after = true;
    kconn_job_done(job);
}

int32_t kgw__name_ok(struct kafka_str s)
{
    return s.len > 0 && s.len < PROTO_NAME_MAX && memchr(s.p, '\0', (size_t)s.len) == NULL;
}

void kgw__name(char *out, struct kafka_str s)
{
    memcpy(out, s.p, (size_t)s.len);
    out[s.len] = '\0';
}

void kgw__names_init(struct kgw__names *q)
{
    buf_init(&q->names);
    q->n = 0;
}

void kgw__names_add(struct kgw__names *q, struct kafka_str name)
{
    char s[PROTO_NAME_MAX];
    if (!kgw__name_ok(name)) {
        return;
    }
    kgw__name(s, name);
    buf_put_str(&q->names, s);
    q->n++;
}

void kgw__names_send(struct kgw *kg, struct kjob *job, struct kgw__names *q,
                     void (*cb)(struct kgw__sub *, struct kgw__answer *))
{
    struct buf body;
    bool named = q->n <= PROTO_TOPIC_PAGE_MAX;
    struct proto_topic_list_req m = {named ? PROTO_TOPIC_LIST_NAMED : 0};
    buf_init(&body);
    proto_put_topic_list_req(&body, &m);
    if (named) {
        struct proto_topic_names_req names = {q->n};
        proto_put_topic_names_req(&body, &names);
        buf_put(&body, q->names.data, q->names.len);
    }
    if (!buf_ok(&q->names)) {
        body.oom = true; /* answered as out of memory by kgw__native */
    }
    kgw__native(kg, job, PROTO_TOPIC_LIST, &body, cb, 0, 0);
    buf_free(&body);
    buf_free(&q->names);
}

/* ---- ApiVersions -------------------------------------------------------- */

static void kgw__api_versions(struct kjob *job, int16_t error)
{
    size_t start = kafka_begin_response(&job->resp, &job->h);
    kafka_encode_api_versions(&job->resp, error ? 0 : job->h.api_version, error);
    kafka_end_response(&job->resp, start);
    kconn_job_done(job);
}

/* ---- Metadata ----------------------------------------------------------- */

struct kgw__md {
    struct kafka_metadata_req req;
    struct kgw *kg;
    bool *auto_created;               /* per asked topic: a create was proposed for it */
    bool creating;                    /* the auto-creates were sent */
    int code;                         /* first native error */
    char message[PROTO_MSG_MAX];
    struct proto_metadata_resp meta;
    uint64_t cluster_id;              /* 0: not known (an older node) */
    struct proto_member *members;
    uint32_t n_members;
    struct proto_topic *topics;
    uint32_t n_topics;
};

static void kgw__md_free(void *p)
{
    struct kgw__md *md = p;
    free(md->members);
    free(md->topics);
    free(md);
}

/* The Kafka address of member @id: this node's advertised one, or its
 * kafka_peer setting. false if unknown. */
bool kgw__kafka_addr(const struct cfg *cfg, uint64_t id, struct kafka_broker *b)
{
    const char *addr = NULL;
    if (id == cfg->id) {
        addr = cfg->kafka_advertise[0] != '\0' ? cfg->kafka_advertise : cfg->kafka_addr;
    }
    for (unsigned i = 0; addr == NULL && i < cfg->n_kafka_peers; i++) {
        if (cfg->kafka_peers[i].id == id) {
            addr = cfg->kafka_peers[i].addr;
        }
    }
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    if (colon == NULL || id > INT32_MAX || (size_t)(colon - addr) >= sizeof b->host) {
        return false;
    }
    b->node_id = (int32_t)id;
    memcpy(b->host, addr, (size_t)(colon - addr));
    b->host[colon - addr] = '\0';
    b->port = atoi(colon + 1);
    return true;
}

static void kgw__md_encode(struct kjob *job)
{
    struct kgw__md *md = job->state;
    const struct cfg *cfg = md->kg->cfg;
    struct kafka_broker brokers[CFG_MAX_PEERS + 1];
    int32_t replicas[CFG_MAX_PEERS + 1];
    int32_t n_brokers = 0, n_replicas = 0, leader = -1;
    for (uint32_t i = 0; i < md->n_members && n_brokers < CFG_MAX_PEERS + 1; i++) {
        if (!kgw__kafka_addr(cfg, md->members[i].id, &brokers[n_brokers])) {
            continue;
        }
        if (md->members[i].voter == 1) {
            replicas[n_replicas++] = brokers[n_brokers].node_id;
        }
        if (md->members[i].id == md->meta.leader_id) {
            leader = brokers[n_brokers].node_id;
        }
        n_brokers++;
    }
    int32_t n = md->req.n_topics < 0 ? (int32_t)md->n_topics : md->req.n_topics;
    struct kafka_md_topic *topics = kafka_arena_alloc(&job->arena, (size_t)(n > 0 ? n : 1) *
                                                                       sizeof *topics);
    if (topics == NULL) {
        n = 0;
    }
    for (int32_t i = 0; i < n; i++) {
        struct kafka_md_topic *t = &topics[i];
        const struct proto_topic *found = NULL;
        if (md->req.n_topics < 0) {
            found = &md->topics[i];
            t->name = found->name;
            t->name_len = strlen(found->name);
        } else {
            struct kafka_str s = md->req.topics[i];
            t->name = (const char *)s.p;
            t->name_len = (size_t)s.len;
            for (uint32_t k = 0; k < md->n_topics && found == NULL; k++) {
                if (strlen(md->topics[k].name) == (size_t)s.len &&
                    memcmp(md->topics[k].name, s.p, (size_t)s.len) == 0) {
                    found = &md->topics[k];
                }
            }
        }
        t->leader = -1;
        if (found == NULL && md->auto_created != NULL && md->auto_created[i]) {
            /* Created just now: Kafka answers so too, and the client asks again. */
            t->error = KAFKA_LEADER_NOT_AVAILABLE;
            continue;
        }
        if (found == NULL) {
            t->error = kgw__name_ok(md->req.topics[i]) ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION
                                                       : KAFKA_INVALID_TOPIC_EXCEPTION;
            continue;
        }
        t->has_partition = true;
        t->leader = leader;
        t->partition_error = leader < 0 ? KAFKA_LEADER_NOT_AVAILABLE : KAFKA_NONE;
        t->replicas = replicas;
        t->n_replicas = n_replicas;
    }
    char cluster[24] = "tally";
    if (md->cluster_id != 0) {
        snprintf(cluster, sizeof cluster, "%016llx", (unsigned long long)md->cluster_id);
    }
    struct kafka_metadata_resp m = {
        .n_brokers = n_brokers,
        .brokers = brokers,
        .cluster_id = cluster,
        .controller_id = leader,
        .n_topics = n,
        .topics = topics,
    };
    kafka_encode_metadata(&job->resp, &job->h, &m);
}

static void kgw__md_done(struct kjob *job);

static void kgw__md_created(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__md *md = sub->job->state;
    /* Only a created topic is answered LEADER_NOT_AVAILABLE (try again);
     * a follower cannot create, and says UNKNOWN_TOPIC_OR_PARTITION. */
    md->auto_created[sub->t] = a->code == 0 || a->code == TALLY_EXISTS;
    if (!md->auto_created[sub->t]) {
        TLOG_DEBUG("kafka", "auto-creating a topic: %s", a->message);
    }
    if (sub->job->pending == 0) {
        kgw__md_done(sub->job);
    }
}

/* kafka_auto_create_topics: propose a TOPIC_CREATE (tally's defaults:
 * policy retain) for every asked topic that does not exist, as Kafka's
 * auto.create.topics.enable does. Returns true if any was sent. */
static bool kgw__md_auto_create(struct kjob *job)
{
    struct kgw__md *md = job->state;
    bool sent = false;
    md->creating = true;
    if (!md->kg->cfg->kafka_auto_create_topics || !md->req.allow_auto_create ||
        md->req.n_topics <= 0 ||
        (md->auto_created = kafka_arena_alloc(&job->arena, (size_t)md->req.n_topics)) == NULL) {
        return false;
    }
    job->pending++;
    for (int32_t i = 0; i < md->req.n_topics; i++) {
        struct kafka_str s = md->req.topics[i];
        bool found = false;
        for (uint32_t k = 0; k < md->n_topics && !found; k++) {
            found = strlen(md->topics[k].name) == (size_t)s.len &&
                    memcmp(md->topics[k].name, s.p, (size_t)s.len) == 0;
        }
        if (found || !kgw__name_ok(s)) {
            continue;
        }
        struct proto_topic_create_req c;
        struct buf body;
        memset(&c, 0, sizeof c);
        kgw__name(c.name, s);
        c.policy = TALLY_POLICY_RETAIN;
        c.retention_ms = -1;
        c.retention_bytes = -1;
        buf_init(&body);
        proto_put_topic_create_req(&body, &c);
        sent = true;
        kgw__native(md->kg, job, PROTO_TOPIC_CREATE, &body, kgw__md_created, i, 0);
        buf_free(&body);
    }
    job->pending--;
    return sent;
}

static void kgw__md_done(struct kjob *job)
{
    struct kgw__md *md = job->state;
    if (md->code != 0) {
        /* The node cannot describe itself (starting, out of memory):
         * close, and let the client ask another bootstrap server. */
        kgw__reject(job, md->message);
        return;
    }
    if (!md->creating && kgw__md_auto_create(job) && job->pending > 0) {
        return; /* answered when the creates are done */
    }
    kgw__finish(job, kgw__md_encode);
}

static void kgw__md_meta(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__md *md = sub->job->state;
    if (a->code == 0) {
        if (proto_get_metadata_resp(&a->body, &md->meta) != 0 ||
            (md->members = calloc(md->meta.n_members + 1, sizeof *md->members)) == NULL) {
            a->code = TALLY_PROTO;
        }
        for (uint32_t i = 0; a->code == 0 && i < md->meta.n_members; i++) {
            if (proto_get_member(&a->body, &md->members[i]) != 0) {
                a->code = TALLY_PROTO;
            }
        }
        md->n_members = a->code == 0 ? md->meta.n_members : 0;
        if (a->code == 0 && a->body.left >= 8) {
            md->cluster_id = rd_u64(&a->body);
        }
    }
    if (a->code != 0 && md->code == 0) {
        md->code = a->code;
        snprintf(md->message, sizeof md->message, "METADATA: %s", a->message);
    }
    if (sub->job->pending == 0) {
        kgw__md_done(sub->job);
    }
}

static void kgw__md_topics(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__md *md = sub->job->state;
    struct proto_topic_list_resp tl;
    if (a->code == 0) {
        if (proto_get_topic_list_resp(&a->body, &tl) != 0 ||
            (md->topics = calloc(tl.n_topics + 1, sizeof *md->topics)) == NULL) {
            a->code = TALLY_PROTO;
        }
        for (uint32_t i = 0; a->code == 0 && i < tl.n_topics; i++) {
            if (proto_get_topic(&a->body, &md->topics[i]) != 0) {
                a->code = TALLY_PROTO;
            }
        }
        md->n_topics = a->code == 0 ? tl.n_topics : 0;
    }
    if (a->code != 0 && md->code == 0) {
        md->code = a->code;
        snprintf(md->message, sizeof md->message, "TOPIC_LIST: %s", a->message);
    }
    if (sub->job->pending == 0) {
        kgw__md_done(sub->job);
    }
}

static void kgw__metadata(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__md *md = calloc(1, sizeof *md);
    struct buf body;
    if (md == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = md;
    job->free_state = kgw__md_free;
    if (kafka_decode_metadata(rd, &job->h, &job->arena, &md->req) != 0) {
        kgw__reject(job, "malformed Metadata request");
        return;
    }
    md->kg = kg;
    buf_init(&body);
    struct proto_metadata_req mreq = {.flags = PROTO_METADATA_CLUSTER_ID};
    proto_put_metadata_req(&body, &mreq);
    job->pending++; /* until both requests are sent */
    kgw__native(kg, job, PROTO_METADATA, &body, kgw__md_meta, 0, 0);
    buf_free(&body);
    if (md->req.n_topics < 0) {
        /* Every topic: the whole catalog is the answer. */
        struct proto_topic_list_req treq = {0};
        buf_init(&body);
        proto_put_topic_list_req(&body, &treq);
        kgw__native(kg, job, PROTO_TOPIC_LIST, &body, kgw__md_topics, 0, 0);
        buf_free(&body);
    } else {
        struct kgw__names q;
        kgw__names_init(&q);
        for (int32_t i = 0; i < md->req.n_topics; i++) {
            kgw__names_add(&q, md->req.topics[i]);
        }
        kgw__names_send(kg, job, &q, kgw__md_topics);
    }
    if (--job->pending == 0) {
        kgw__md_done(job);
    }
}

/* ---- Produce ------------------------------------------------------------ */

static void kgw__produce_encode(struct kjob *job)
{
    kafka_encode_produce(&job->resp, &job->h, job->state);
}

static void kgw__produce_check_done(struct kjob *job)
{
    if (job->pending == 0) {
        kgw__finish(job, kgw__produce_encode);
    }
}

static void kgw__part_error(struct kjob *job, struct kafka_produce_part *p, int16_t error,
                            const char *message)
{
    p->error = error;
    size_t n = strlen(message);
    p->error_message = kafka_arena_alloc(&job->arena, n + 1);
    if (p->error_message != NULL) {
        memcpy(p->error_message, message, n + 1);
    }
}

static void kgw__produce_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kafka_produce_req *m = sub->job->state;
    struct kafka_produce_part *p = &m->topics[sub->t].parts[sub->p];
    struct proto_produce_resp pr;
    if (a->code == 0 && proto_get_produce_resp(&a->body, &pr) != 0) {
        a->code = TALLY_PROTO;
        a->message = "malformed native PRODUCE answer";
    }
    if (a->code != 0) {
        kgw__part_error(sub->job, p, kafka_error_from_tally(a->code), a->message);
    } else {
        p->base_offset = (int64_t)pr.base_offset;
    }
    kgw__produce_check_done(sub->job);
}

/* One partition of a Produce: check and convert its batch, then hand it
 * to the gateway as a native PRODUCE. */
static void kgw__produce_part(struct kgw *kg, struct kjob *job, int32_t ti, int32_t pi)
{
    struct kafka_produce_req *m = job->state;
    struct kafka_produce_topic *t = &m->topics[ti];
    struct kafka_produce_part *p = &t->parts[pi];
    struct kafka_batch_info info;
    char errmsg[ERR_MSG_SIZE] = "";
    struct proto_produce_req nreq;
    struct buf batch, body;

    if (!kgw__name_ok(t->name)) {
        kgw__part_error(job, p, KAFKA_INVALID_TOPIC_EXCEPTION, "invalid topic name");
        return;
    }
    if (p->index != 0) {
        kgw__part_error(job, p, KAFKA_UNKNOWN_TOPIC_OR_PARTITION,
                        "a tally topic has one partition, 0");
        return;
    }
    buf_init(&batch);
    int err = kafka_records_to_tally(p->records.p, p->records.len < 0 ? 0 : (size_t)p->records.len,
                                     &info, &batch, errmsg);
    if (err != 0) {
        TLOG_WARN("kafka", "produce to %.*s rejected, nothing written: %s", (int)t->name.len,
                  (const char *)t->name.p, errmsg);
        kgw__part_error(job, p, (int16_t)err, errmsg);
        buf_free(&batch);
        return;
    }
    memset(&nreq, 0, sizeof nreq);
    kgw__name(nreq.topic, t->name);
    nreq.timeout_ms = m->timeout_ms > 0 ? (uint32_t)m->timeout_ms : 0;
    nreq.expect_offset = PROTO_NO_EXPECT;
    nreq.n_conditions = 0;
    nreq.batch = batch.data;
    nreq.batch_len = (uint32_t)batch.len;
    buf_init(&body);
    proto_put_produce_req(&body, &nreq);
    kgw__native(kg, job, PROTO_PRODUCE, &body, kgw__produce_answer, ti, pi);
    buf_free(&body);
    buf_free(&batch);
}

static void kgw__produce(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_produce_req *m = kafka_arena_alloc(&job->arena, sizeof *m);
    if (m == NULL || kafka_decode_produce(rd, &job->h, &job->arena, m) != 0) {
        kgw__reject(job, m == NULL ? "out of memory" : "malformed Produce request");
        return;
    }
    job->state = m; /* arena memory: no free_state */
    /* acks=0: Kafka sends no answer at all; the write still goes the
     * native way (and is committed or not, unseen by the client). acks=1
     * is answered like acks=-1, after the commit: tally has no weaker
     * acknowledgement. */
    job->silent = m->acks == 0;
    job->pending++;
    for (int32_t i = 0; i < m->n_topics; i++) {
        for (int32_t k = 0; k < m->topics[i].n_parts; k++) {
            if (m->acks != 0 && m->acks != 1 && m->acks != -1) {
                kgw__part_error(job, &m->topics[i].parts[k], KAFKA_INVALID_REQUIRED_ACKS,
                                "acks must be -1, 0 or 1");
            } else {
                kgw__produce_part(kg, job, i, k);
            }
        }
    }
    job->pending--;
    kgw__produce_check_done(job);
}

/* ---- Fetch -------------------------------------------------------------- */

struct kgw__fetch {
    struct kafka_fetch_req req;
    struct kgw *kg;
    uint64_t deadline;      /* uv_now() when max_wait_ms has passed */
    size_t total;           /* Kafka batch bytes gathered */
    size_t min_bytes;
    size_t max_bytes;
    bool finished;          /* answered: later native answers are dropped */
    uint64_t *cursor;       /* per partition (flattened): next offset to read */
    size_t *part_bytes;     /* per partition: bytes gathered */
};

static void kgw__fetch_free(void *p)
{
    struct kgw__fetch *f = p;
    for (int32_t i = 0; i < f->req.n_topics; i++) {
        for (int32_t k = 0; k < f->req.topics[i].n_parts; k++) {
            buf_free(&f->req.topics[i].parts[k].records);
        }
    }
    free(f->cursor);
    free(f->part_bytes);
    free(f);
}

static size_t kgw__flat(const struct kgw__fetch *f, int32_t ti, int32_t pi)
{
    size_t n = 0;
    for (int32_t i = 0; i < ti; i++) {
        n += (size_t)f->req.topics[i].n_parts;
    }
    return n + (size_t)pi;
}

static void kgw__fetch_encode(struct kjob *job)
{
    struct kgw__fetch *f = job->state;
    /* One allocation for the answer: it is mostly the records gathered. */
    (void)buf_reserve(&job->resp, f->total + 64 + 64 * kgw__flat(f, f->req.n_topics, 0));
    kafka_encode_fetch(&job->resp, &job->h, &f->req);
}

static void kgw__fetch_issue(struct kjob *job, int32_t ti, int32_t pi, uint32_t wait_ms);

static void kgw__fetch_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__fetch *f = job->state;
    struct kafka_fetch_part *p = &f->req.topics[sub->t].parts[sub->p];
    size_t flat = kgw__flat(f, sub->t, sub->p);
    struct proto_fetch_resp fr;
    char errmsg[ERR_MSG_SIZE] = "";
    bool error = false;

    if (f->finished) {
        return; /* answered without this one (it was parked) */
    }
    if (a->code == 0 && (proto_get_fetch_resp(&a->body, &fr) != 0 || proto_get_end(&a->body) != 0)) {
        a->code = TALLY_PROTO;
    }
    if (a->code != 0) {
        p->error = kafka_error_from_tally(a->code);
        error = true;
    } else {
        p->high_watermark = (int64_t)fr.next_offset;
        p->log_start_offset = (int64_t)fr.start_offset;
        size_t before = p->records.len, used = 0;
        size_t part_left = (size_t)(p->max_bytes > 0 ? p->max_bytes : 1);
        part_left = part_left > f->part_bytes[flat] ? part_left - f->part_bytes[flat] : 1;
        size_t total_left = f->max_bytes > f->total ? f->max_bytes - f->total : 1;
        int rv = kafka_records_from_tally(fr.batches, fr.batches_len,
                                          part_left < total_left ? part_left : total_left,
                                          &p->records, &used, errmsg);
        if (rv != 0) {
            TLOG_ERROR("kafka", "fetch %.*s: %s", (int)f->req.topics[sub->t].name.len,
                       (const char *)f->req.topics[sub->t].name.p, errmsg);
            p->records.len = before;
            p->error = KAFKA_KAFKA_STORAGE_ERROR;
            error = true;
        } else {
            /* Move the cursor past the last batch read. */
            size_t pos = 0;
            struct batch_header h;
            while (pos < used &&
                   batch_decode_header(fr.batches + pos, used - pos, &h, errmsg) == 0) {
                f->cursor[flat] = batch_last_offset(&h) + 1;
                pos += h.batch_len;
            }
            f->total += p->records.len - before;
            f->part_bytes[flat] += p->records.len - before;
        }
    }
    uint64_t now = uv_now(f->kg->loop);
    size_t part_max = p->max_bytes > 0 ? (size_t)p->max_bytes : 0;
    if (!error && f->total < f->min_bytes && now < f->deadline && f->total < f->max_bytes &&
        f->part_bytes[flat] < part_max) {
        /* Not enough yet: wait for more here, in the native long-poll. */
        kgw__fetch_issue(job, sub->t, sub->p, (uint32_t)(f->deadline - now));
        return;
    }
    if (error || f->total >= f->min_bytes || job->pending == 0) {
        f->finished = true;
        kgw__finish(job, kgw__fetch_encode);
    }
}

static void kgw__fetch_issue(struct kjob *job, int32_t ti, int32_t pi, uint32_t wait_ms)
{
    struct kgw__fetch *f = job->state;
    struct kafka_fetch_topic *t = &f->req.topics[ti];
    struct kafka_fetch_part *p = &t->parts[pi];
    size_t flat = kgw__flat(f, ti, pi);
    struct proto_fetch_req nreq;
    struct buf body;
    size_t left_total = f->max_bytes > f->total ? f->max_bytes - f->total : 1;
    size_t left_part = (size_t)p->max_bytes > f->part_bytes[flat]
                           ? (size_t)p->max_bytes - f->part_bytes[flat] : 1;
    memset(&nreq, 0, sizeof nreq);
    kgw__name(nreq.topic, t->name);
    nreq.offset = f->cursor[flat];
    nreq.max_bytes = (uint32_t)(left_total < left_part ? left_total : left_part);
    nreq.max_wait_ms = wait_ms;
    nreq.min_index = 0;
    buf_init(&body);
    proto_put_fetch_req(&body, &nreq);
    kgw__native(f->kg, job, PROTO_FETCH, &body, kgw__fetch_answer, ti, pi);
    buf_free(&body);
}

static void kgw__fetch(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__fetch *f = calloc(1, sizeof *f);
    if (f == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = f;
    job->free_state = kgw__fetch_free;
    if (kafka_decode_fetch(rd, &job->h, &job->arena, &f->req) != 0) {
        kgw__reject(job, "malformed Fetch request");
        return;
    }
    size_t n = kgw__flat(f, f->req.n_topics, 0);
    f->cursor = calloc(n + 1, sizeof *f->cursor);
    f->part_bytes = calloc(n + 1, sizeof *f->part_bytes);
    if (f->cursor == NULL || f->part_bytes == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    f->kg = kg;
    f->deadline = uv_now(kg->loop) + (uint64_t)(f->req.max_wait_ms > 0 ? f->req.max_wait_ms : 0);
    f->min_bytes = f->req.min_bytes > 1 ? (size_t)f->req.min_bytes : 1;
    f->max_bytes = f->req.max_bytes > 0 && (uint32_t)f->req.max_bytes < KGW_MAX_FETCH_BYTES
                       ? (size_t)f->req.max_bytes : KGW_MAX_FETCH_BYTES;
    job->pending++;
    for (int32_t i = 0; i < f->req.n_topics && !f->finished; i++) {
        struct kafka_fetch_topic *t = &f->req.topics[i];
        for (int32_t k = 0; k < t->n_parts && !f->finished; k++) {
            struct kafka_fetch_part *p = &t->parts[k];
            if (!kgw__name_ok(t->name) || p->index != 0 || p->fetch_offset < 0) {
                p->error = p->fetch_offset < 0 && p->index == 0 && kgw__name_ok(t->name)
                               ? KAFKA_OFFSET_OUT_OF_RANGE : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            f->cursor[kgw__flat(f, i, k)] = (uint64_t)p->fetch_offset;
            /* First look without waiting; a partition with too little data
             * then waits in the native long-poll (kgw__fetch_answer). */
            kgw__fetch_issue(job, i, k, 0);
        }
    }
    job->pending--;
    if (!f->finished && job->pending == 0) {
        f->finished = true;
        kgw__finish(job, kgw__fetch_encode);
    }
}

/* ---- ListOffsets -------------------------------------------------------- */

struct kgw__list {
    struct kafka_list_req req;
    struct kgw *kg;
    uint64_t *next_offset;  /* per partition (flattened): the topic's next offset */
    size_t n;
};

static void kgw__list_free(void *p)
{
    struct kgw__list *l = p;
    free(l->next_offset);
    free(l);
}

static void kgw__list_encode(struct kjob *job)
{
    struct kgw__list *l = job->state;
    kafka_encode_list_offsets(&job->resp, &job->h, &l->req);
}

static void kgw__list_check_done(struct kjob *job)
{
    if (job->pending == 0) {
        kgw__finish(job, kgw__list_encode);
    }
}

static size_t kgw__list_flat(const struct kgw__list *l, int32_t ti, int32_t pi)
{
    size_t n = 0;
    for (int32_t i = 0; i < ti; i++) {
        n += (size_t)l->req.topics[i].n_parts;
    }
    return n + (size_t)pi;
}

static void kgw__list_time(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kgw__list *l = sub->job->state;
    struct kafka_list_part *p = &l->req.topics[sub->t].parts[sub->p];
    struct proto_offset_resp r;
    if (a->code == 0 && proto_get_offset_resp(&a->body, &r) != 0) {
        a->code = TALLY_PROTO;
    }
    if (a->code != 0) {
        p->error = kafka_error_from_tally(a->code);
    } else if (r.offset >= l->next_offset[kgw__list_flat(l, sub->t, sub->p)]) {
        p->offset = -1; /* no record at or after that time: Kafka says -1 */
        p->found_timestamp = -1;
    } else {
        p->offset = (int64_t)r.offset;
        /* The time index finds the first batch at or after the time; the
         * record's own timestamp is not at hand, so the asked time is
         * returned (docs/kafka-users.md). */
        p->found_timestamp = p->timestamp;
    }
    kgw__list_check_done(sub->job);
}

static void kgw__list_topics(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__list *l = job->state;
    struct proto_topic_list_resp tl;
    struct proto_topic *topics = NULL;
    if (a->code == 0 && (proto_get_topic_list_resp(&a->body, &tl) != 0 ||
                         (topics = calloc(tl.n_topics + 1, sizeof *topics)) == NULL)) {
        a->code = TALLY_PROTO;
    }
    for (uint32_t i = 0; a->code == 0 && i < tl.n_topics; i++) {
        if (proto_get_topic(&a->body, &topics[i]) != 0) {
            a->code = TALLY_PROTO;
        }
    }
    job->pending++;
    for (int32_t i = 0; i < l->req.n_topics; i++) {
        struct kafka_list_topic *t = &l->req.topics[i];
        const struct proto_topic *found = NULL;
        for (uint32_t k = 0; a->code == 0 && k < tl.n_topics && found == NULL; k++) {
            if (strlen(topics[k].name) == (size_t)t->name.len &&
                memcmp(topics[k].name, t->name.p, (size_t)t->name.len) == 0) {
                found = &topics[k];
            }
        }
        for (int32_t k = 0; k < t->n_parts; k++) {
            struct kafka_list_part *p = &t->parts[k];
            if (a->code != 0) {
                p->error = kafka_error_from_tally(a->code);
            } else if (found == NULL || p->index != 0) {
                p->error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (p->timestamp == KAFKA_TIME_EARLIEST) {
                p->offset = (int64_t)found->start_offset;
            } else if (p->timestamp == KAFKA_TIME_LATEST) {
                p->offset = (int64_t)found->next_offset;
            } else if (p->timestamp < 0) {
                p->error = KAFKA_INVALID_REQUEST;
            } else {
                struct proto_offset_for_time_req oreq;
                struct buf body;
                memset(&oreq, 0, sizeof oreq);
                kgw__name(oreq.topic, t->name);
                oreq.timestamp_ms = p->timestamp;
                l->next_offset[kgw__list_flat(l, i, k)] = found->next_offset;
                buf_init(&body);
                proto_put_offset_for_time_req(&body, &oreq);
                kgw__native(l->kg, job, PROTO_OFFSET_FOR_TIME, &body, kgw__list_time, i, k);
                buf_free(&body);
            }
        }
    }
    free(topics);
    job->pending--;
    kgw__list_check_done(job);
}

static void kgw__list_offsets(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kgw__list *l = calloc(1, sizeof *l);
    if (l == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    job->state = l;
    job->free_state = kgw__list_free;
    if (kafka_decode_list_offsets(rd, &job->h, &job->arena, &l->req) != 0) {
        kgw__reject(job, "malformed ListOffsets request");
        return;
    }
    for (int32_t i = 0; i < l->req.n_topics; i++) {
        l->n += (size_t)l->req.topics[i].n_parts; /* a bad name matches no topic */
    }
    if ((l->next_offset = calloc(l->n + 1, sizeof *l->next_offset)) == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    l->kg = kg;
    struct kgw__names q;
    kgw__names_init(&q);
    for (int32_t i = 0; i < l->req.n_topics; i++) {
        kgw__names_add(&q, l->req.topics[i].name);
    }
    kgw__names_send(kg, job, &q, kgw__list_topics);
}

/* ---- CreateTopics and DeleteTopics ------------------------------------- */

char *kgw__arena_str(struct kjob *job, const char *s)
{
    size_t n = strlen(s);
    char *p = kafka_arena_alloc(&job->arena, n + 1);
    if (p != NULL) {
        memcpy(p, s, n + 1);
    }
    return p;
}

bool kgw__config_int(struct kafka_str v, int64_t *out)
{
    char tmp[32];
    char *end;
    if (v.len <= 0 || (size_t)v.len >= sizeof tmp) {
        return false;
    }
    memcpy(tmp, v.p, (size_t)v.len);
    tmp[v.len] = '\0';
    errno = 0;
    long long x = strtoll(tmp, &end, 10);
    if (errno != 0 || *end != '\0' || x < -1) {
        return false;
    }
    *out = x;
    return true;
}

bool kgw__str_is(struct kafka_str s, const char *lit)
{
    return s.len >= 0 && (size_t)s.len == strlen(lit) && memcmp(s.p, lit, (size_t)s.len) == 0;
}

/* Kafka topic configs -> the native settings in @c. Returns 0 or
 * INVALID_CONFIG with @why. Without cleanup.policy a topic keeps
 * everything (tally's retain); retention.ms or retention.bytes alone mean
 * delete, as they do under Kafka's default policy. */
static int16_t kgw__topic_config(const struct kafka_create_topic *t,
                                 struct proto_topic_create_req *c, char *why, size_t n)
{
    int policy = -1;
    c->policy = TALLY_POLICY_RETAIN;
    c->retention_ms = -1;
    c->retention_bytes = -1;
    c->segment_bytes = 0;
    for (int32_t i = 0; i < t->n_configs; i++) {
        struct kafka_str k = t->configs[i].name, v = t->configs[i].value;
        if (kgw__str_is(k, "cleanup.policy")) {
            if (kgw__str_is(v, "delete")) {
                policy = TALLY_POLICY_DELETE;
            } else if (kgw__str_is(v, "compact")) {
                policy = TALLY_POLICY_COMPACT;
            } else if (kgw__str_is(v, "compact,delete") || kgw__str_is(v, "delete,compact")) {
                policy = TALLY_POLICY_COMPACT_DELETE;
            } else {
                snprintf(why, n, "cleanup.policy must be delete, compact or compact,delete");
                return KAFKA_INVALID_CONFIG;
            }
        } else if (kgw__str_is(k, "retention.ms")) {
            if (!kgw__config_int(v, &c->retention_ms)) {
                snprintf(why, n, "retention.ms must be -1 or a number of ms");
                return KAFKA_INVALID_CONFIG;
            }
        } else if (kgw__str_is(k, "retention.bytes")) {
            if (!kgw__config_int(v, &c->retention_bytes)) {
                snprintf(why, n, "retention.bytes must be -1 or a number of bytes");
                return KAFKA_INVALID_CONFIG;
            }
        } else if (kgw__str_is(k, "segment.bytes")) {
            if (!kgw__config_int(v, &c->segment_bytes) || c->segment_bytes < 0) {
                snprintf(why, n, "segment.bytes must be a number of bytes");
                return KAFKA_INVALID_CONFIG;
            }
        } else {
            snprintf(why, n, "config %.*s is not supported by tally (only cleanup.policy, "
                             "retention.ms, retention.bytes, segment.bytes)",
                     (int)k.len, (const char *)k.p);
            return KAFKA_INVALID_CONFIG;
        }
    }
    if (policy >= 0) {
        c->policy = (uint8_t)policy;
    } else if (c->retention_ms >= 0 || c->retention_bytes >= 0) {
        c->policy = TALLY_POLICY_DELETE;
    }
    return KAFKA_NONE;
}

int16_t kgw__admin_error(int code)
{
    if (code == TALLY_NOTLEADER || code == TALLY_NOLEADER) {
        return KAFKA_NOT_CONTROLLER;
    }
    if (code == TALLY_INVAL) {
        return KAFKA_INVALID_REQUEST;
    }
    return kafka_error_from_tally(code);
}

static void kgw__create_encode(struct kjob *job)
{
    kafka_encode_create_topics(&job->resp, &job->h, job->state);
}

static void kgw__create_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kafka_create_req *m = sub->job->state;
    struct kafka_create_topic *t = &m->topics[sub->t];
    if (a->code != 0) {
        t->error = kgw__admin_error(a->code);
        t->error_message = kgw__arena_str(sub->job, a->message);
    }
    if (sub->job->pending == 0) {
        kgw__finish(sub->job, kgw__create_encode);
    }
}

static void kgw__create_topics(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_create_req *m = kafka_arena_alloc(&job->arena, sizeof *m);
    char why[160];
    if (m == NULL || kafka_decode_create_topics(rd, &job->h, &job->arena, m) != 0) {
        kgw__reject(job, m == NULL ? "out of memory" : "malformed CreateTopics request");
        return;
    }
    job->state = m;
    job->pending++;
    for (int32_t i = 0; i < m->n_topics; i++) {
        struct kafka_create_topic *t = &m->topics[i];
        struct proto_topic_create_req c;
        memset(&c, 0, sizeof c);
        why[0] = '\0';
        if (!kgw__name_ok(t->name)) {
            t->error = KAFKA_INVALID_TOPIC_EXCEPTION;
            snprintf(why, sizeof why, "invalid topic name");
        } else if (t->num_partitions != -1 && t->num_partitions != 1) {
            t->error = KAFKA_INVALID_PARTITIONS;
            snprintf(why, sizeof why, "a tally topic has exactly one partition");
        } else if (t->replication_factor == 0 || t->replication_factor < -1) {
            t->error = KAFKA_INVALID_REPLICATION_FACTOR;
            snprintf(why, sizeof why, "replication factor must be -1 or positive (every "
                                      "member holds every topic)");
        } else if (t->n_assignments > 0) {
            t->error = KAFKA_INVALID_REQUEST;
            snprintf(why, sizeof why, "replica assignments are not supported");
        } else {
            t->error = kgw__topic_config(t, &c, why, sizeof why);
        }
        if (t->error != KAFKA_NONE) {
            t->error_message = kgw__arena_str(job, why);
            continue;
        }
        if (m->validate_only) {
            continue;
        }
        struct buf body;
        kgw__name(c.name, t->name);
        buf_init(&body);
        proto_put_topic_create_req(&body, &c);
        kgw__native(kg, job, PROTO_TOPIC_CREATE, &body, kgw__create_answer, i, 0);
        buf_free(&body);
    }
    if (--job->pending == 0) {
        kgw__finish(job, kgw__create_encode);
    }
}

static void kgw__delete_encode(struct kjob *job)
{
    kafka_encode_delete_topics(&job->resp, &job->h, job->state);
}

static void kgw__delete_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kafka_delete_req *m = sub->job->state;
    if (a->code != 0) {
        m->topics[sub->t].error = kgw__admin_error(a->code);
    }
    if (sub->job->pending == 0) {
        kgw__finish(sub->job, kgw__delete_encode);
    }
}

static void kgw__delete_topics(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_delete_req *m = kafka_arena_alloc(&job->arena, sizeof *m);
    if (m == NULL || kafka_decode_delete_topics(rd, &job->h, &job->arena, m) != 0) {
        kgw__reject(job, m == NULL ? "out of memory" : "malformed DeleteTopics request");
        return;
    }
    job->state = m;
    job->pending++;
    for (int32_t i = 0; i < m->n_topics; i++) {
        if (!kgw__name_ok(m->topics[i].name)) {
            m->topics[i].error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        struct proto_topic_delete_req d;
        struct buf body;
        memset(&d, 0, sizeof d);
        kgw__name(d.name, m->topics[i].name);
        buf_init(&body);
        proto_put_topic_delete_req(&body, &d);
        kgw__native(kg, job, PROTO_TOPIC_DELETE, &body, kgw__delete_answer, i, 0);
        buf_free(&body);
    }
    if (--job->pending == 0) {
        kgw__finish(job, kgw__delete_encode);
    }
}

/* ---- InitProducerId ----------------------------------------------------- */

/* A new idempotent producer: a random id below KAFKA_MAX_PRODUCER_ID, epoch
 * 0. Nothing is stored: the id's sequences live in each topic's replicated
 * producer table from its first batch on, as a native producer's do, so
 * any node can answer. Two producers drawing the same id (2^47 choices)
 * would share sequences; the odds for a million producers are 4 in a
 * billion. Transactions do not exist in tally: a transactional id is
 * refused. */
static void kgw__init_pid(struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_init_pid_req m;
    int64_t id = 0;
    int16_t error = KAFKA_NONE;
    if (kafka_decode_init_pid(rd, &job->h, &m) != 0) {
        kgw__reject(job, "malformed InitProducerId request");
        return;
    }
    if (m.transactional_id.len >= 0) {
        error = KAFKA_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else {
        while (id <= 0) {
            uint64_t u;
            if (getrandom(&u, sizeof u, 0) != (ssize_t)sizeof u) {
                error = KAFKA_UNKNOWN_SERVER_ERROR;
                break;
            }
            id = (int64_t)(u & (uint64_t)(KAFKA_MAX_PRODUCER_ID - 1));
        }
    }
    size_t start = kafka_begin_response(&job->resp, &job->h);
    kafka_encode_init_pid(&job->resp, error, error == KAFKA_NONE ? id : -1,
                          error == KAFKA_NONE ? 0 : -1);
    kafka_end_response(&job->resp, start);
    kconn_job_done(job);
}

/* ---- SASL --------------------------------------------------------------- */

static const char *const kgw__mechanisms[] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};

/* SaslHandshake: the client names its mechanism, to be used by the
 * SaslAuthenticate requests that follow. */
static void kgw__sasl_handshake(struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_str mech;
    int16_t error = KAFKA_UNSUPPORTED_SASL_MECHANISM;
    char *chosen = kconn_job_sasl_mech(job);
    if (kafka_decode_sasl_handshake(rd, &job->h, &mech) != 0) {
        kgw__reject(job, "malformed SaslHandshake request");
        return;
    }
    for (size_t i = 0; i < sizeof kgw__mechanisms / sizeof kgw__mechanisms[0]; i++) {
        if ((size_t)mech.len == strlen(kgw__mechanisms[i]) &&
            memcmp(mech.p, kgw__mechanisms[i], (size_t)mech.len) == 0 && chosen != NULL) {
            snprintf(chosen, KCONN_SASL_MECH_MAX, "%s", kgw__mechanisms[i]);
            error = KAFKA_NONE;
        }
    }
    if (error != KAFKA_NONE) {
        TLOG_WARN("kafka", "%s: SASL mechanism '%.*s' refused (SCRAM-SHA-256 and SCRAM-SHA-512 "
                           "are enabled)",
                  kconn_job_peer(job), (int)(mech.len < 64 ? mech.len : 64),
                  (const char *)mech.p);
    }
    size_t start = kafka_begin_response(&job->resp, &job->h);
    kafka_encode_sasl_handshake(&job->resp, error, kgw__mechanisms,
                                (int)(sizeof kgw__mechanisms / sizeof kgw__mechanisms[0]));
    kafka_end_response(&job->resp, start);
    kconn_job_done(job);
}

struct kgw__sasl {
    int16_t error;
    const char *message;    /* NULL: none */
    struct buf bytes;       /* the server's SASL message */
    char text[256];
};

static void kgw__sasl_free(void *p)
{
    struct kgw__sasl *a = p;
    buf_free(&a->bytes);
    free(a);
}

static void kgw__sasl_encode(struct kjob *job)
{
    struct kgw__sasl *a = job->state;
    kafka_encode_sasl_authenticate(&job->resp, &job->h, a->error, a->message, a->bytes.data,
                                   a->bytes.len);
}

static void kgw__sasl_answer(struct kgw__sub *sub, struct kgw__answer *a)
{
    struct kjob *job = sub->job;
    struct kgw__sasl *st = job->state;
    struct proto_auth_resp m;
    if (a->code == 0 && (proto_get_auth_resp(&a->body, &m) != 0 ||
                         proto_get_end(&a->body) != 0)) {
        a->code = TALLY_PROTO;
        a->message = "malformed native AUTH answer";
    }
    if (a->code != 0) {
        /* auth.c logged a wrong password with the peer and the user. */
        st->error = kafka_error_from_tally(a->code);
        snprintf(st->text, sizeof st->text, "%s", a->message);
        st->message = st->text;
    } else {
        buf_put(&st->bytes, m.message, m.message_len);
    }
    kgw__finish(job, kgw__sasl_encode);
}

/* SaslAuthenticate: one SCRAM message, taken by the native AUTH step on
 * this connection's authentication state, whose answer goes back. */
static void kgw__sasl_authenticate(struct kgw *kg, struct kjob *job, struct kafka_rd *rd)
{
    struct kafka_str bytes;
    struct proto_auth_req m;
    struct buf body;
    const char *mech = kconn_job_sasl_mech(job);
    struct kgw__sasl *st = calloc(1, sizeof *st);
    if (st == NULL) {
        kgw__reject(job, "out of memory");
        return;
    }
    buf_init(&st->bytes);
    job->state = st;
    job->free_state = kgw__sasl_free;
    if (kafka_decode_sasl_authenticate(rd, &job->h, &bytes) != 0) {
        kgw__reject(job, "malformed SaslAuthenticate request");
        return;
    }
    if (mech == NULL || mech[0] == '\0') {
        st->error = KAFKA_ILLEGAL_SASL_STATE;
        st->message = "SaslAuthenticate before a SaslHandshake chose a mechanism";
        kgw__finish(job, kgw__sasl_encode);
        return;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.mechanism, sizeof m.mechanism, "%s", mech);
    m.message = bytes.p;
    m.message_len = (uint32_t)bytes.len;
    buf_init(&body);
    proto_put_auth_req(&body, &m);
    kgw__native(kg, job, PROTO_AUTH, &body, kgw__sasl_answer, 0, 0);
    buf_free(&body);
}

/* Whether @job's connection may send @key: with auth = required, only
 * ApiVersions and the SASL exchange until it authenticated (a TLS client
 * certificate counts), as Kafka's SASL listeners do. */
static bool kgw__may_send(struct kgw *kg, struct kjob *job, int16_t key)
{
    if (!kg->cfg->auth_required || key == KAFKA_API_VERSIONS || key == KAFKA_SASL_HANDSHAKE ||
        key == KAFKA_SASL_AUTHENTICATE) {
        return true;
    }
    struct auth_conn **slot = kconn_job_auth(job);
    return slot != NULL && auth_conn_principal(*slot) != NULL;
}

/* ---- dispatch ----------------------------------------------------------- */

void kgw_handle(struct kgw *kg, struct kjob *job)
{
    struct kafka_rd rd;
    kafka_rd_init(&rd, job->frame, job->frame_len);
    int rv = kafka_decode_header(&rd, &job->h);
    if (rv == 1 && job->h.api_key == KAFKA_API_VERSIONS) {
        kgw__api_versions(job, KAFKA_UNSUPPORTED_VERSION);
        return;
    }
    if (rv != 0) {
        kgw__reject(job, rv < 0 ? "malformed request header" : "unknown API or version");
        return;
    }
    if (!kgw__may_send(kg, job, job->h.api_key)) {
        const struct kafka_api *api = kafka_api_find(job->h.api_key);
        TLOG_WARN("kafka", "%s: %s before authenticating (this node has auth = required: "
                           "connect with SASL_SSL and SCRAM-SHA-256 or -512)",
                  kconn_job_peer(job), api != NULL ? api->name : "a request");
        kgw__reject(job, "not authenticated");
        return;
    }
    switch (job->h.api_key) {
    case KAFKA_SASL_HANDSHAKE:
        kgw__sasl_handshake(job, &rd);
        break;
    case KAFKA_SASL_AUTHENTICATE:
        kgw__sasl_authenticate(kg, job, &rd);
        break;
    case KAFKA_API_VERSIONS:
        kgw__api_versions(job, KAFKA_NONE); /* the v3 body (client name) is not needed */
        break;
    case KAFKA_METADATA:
        kgw__metadata(kg, job, &rd);
        break;
    case KAFKA_PRODUCE:
        kgw__produce(kg, job, &rd);
        break;
    case KAFKA_FETCH:
        kgw__fetch(kg, job, &rd);
        break;
    case KAFKA_LIST_OFFSETS:
        kgw__list_offsets(kg, job, &rd);
        break;
    case KAFKA_INIT_PRODUCER_ID:
        kgw__init_pid(job, &rd);
        break;
    case KAFKA_CREATE_TOPICS:
        kgw__create_topics(kg, job, &rd);
        break;
    case KAFKA_FIND_COORDINATOR:
        kgw__find_coordinator(kg, job, &rd);
        break;
    case KAFKA_JOIN_GROUP:
        kgw__join_group(kg, job, &rd);
        break;
    case KAFKA_SYNC_GROUP:
        kgw__sync_group(kg, job, &rd);
        break;
    case KAFKA_HEARTBEAT:
        kgw__heartbeat(kg, job, &rd);
        break;
    case KAFKA_LEAVE_GROUP:
        kgw__leave_group(kg, job, &rd);
        break;
    case KAFKA_OFFSET_COMMIT:
        kgw__offset_commit(kg, job, &rd);
        break;
    case KAFKA_OFFSET_FETCH:
        kgw__offset_fetch(kg, job, &rd);
        break;
    case KAFKA_LIST_GROUPS:
        kgw__list_groups(kg, job, &rd);
        break;
    case KAFKA_DESCRIBE_GROUPS:
        kgw__describe_groups(kg, job, &rd);
        break;
    case KAFKA_DESCRIBE_CONFIGS:
        kgw__describe_configs(kg, job, &rd);
        break;
    case KAFKA_ALTER_CONFIGS:
    case KAFKA_INCREMENTAL_ALTER_CONFIGS:
        kgw__alter_configs(kg, job, &rd);
        break;
    case KAFKA_DELETE_TOPICS:
        kgw__delete_topics(kg, job, &rd);
        break;
    default:
        kgw__reject(job, "unknown API"); /* cannot happen: kafka_apis[] lists these */
    }
}
