/* What the Kafka front door's files share (kgw.c: the gateway, produce,
 * fetch, metadata, topics; kgw_group.c: consumer groups, committed
 * offsets, configs). Not for other modules. */
#ifndef TALLY_SERVER_KGW_INT_H_
#define TALLY_SERVER_KGW_INT_H_

#include "server/kgroup.h"
#include "server/kgw.h"
#include "server/req.h"

struct kgw {
    const struct cfg *cfg;
    uv_loop_t *loop;
    struct gw *gw;
    struct metrics *metrics; /* counts the native requests made here; NULL: off */
    struct kgroups *groups;  /* the group coordinator (kgroup.h) */
    bool leading;            /* this node is the Raft leader: it coordinates groups */
};

/* A native answer, decoded as far as the frame. */
struct kgw__answer {
    int code;               /* 0, or the TALLY_* code of an error answer */
    const char *message;    /* the error's text ("" if none) */
    struct rd body;         /* the answer's body when code is 0 */
};

/* A native request under way for a job. The gateway sees only @req; this
 * front door's req_ops (kgw__req_ops) bring it back here. */
struct kgw__sub {
    struct req req;         /* first: the request the gateway handles */
    struct kgw *kg;
    struct kjob *job;
    void (*cb)(struct kgw__sub *sub, struct kgw__answer *a);
    int32_t t, p;           /* topic and partition index in the Kafka request */
    uv_work_t work;         /* reads a FETCH answer's batches off the loop */
    uint8_t *whole;         /* the answer frame with its batches, when read */
    bool read_failed;
};

/* Hand a native request of @type with body @body to the gateway for @job;
 * @cb gets its answer (possibly before this returns). */
void kgw__native(struct kgw *kg, struct kjob *job, uint16_t type, const struct buf *body,
                 void (*cb)(struct kgw__sub *, struct kgw__answer *), int32_t t, int32_t p);
/* Answer @job: the response header, @encode's body, the frame's size. */
void kgw__finish(struct kjob *job, void (*encode)(struct kjob *job));
/* Close the connection after earlier answers (a request that cannot be
 * answered in a way the client would read), logged. */
void kgw__reject(struct kjob *job, const char *why);
/* A name tally accepts (1..PROTO_NAME_MAX-1 bytes, no NUL), copied out. */
int32_t kgw__name_ok(struct kafka_str s);
void kgw__name(char *out, struct kafka_str s);
/* The Kafka address of member @id; false if unknown. */
bool kgw__kafka_addr(const struct cfg *cfg, uint64_t id, struct kafka_broker *b);
/* A NUL-terminated copy of @s in @job's arena; NULL when out of memory. */
char *kgw__arena_str(struct kjob *job, const char *s);

/* A Kafka config value as an integer >= -1. */
bool kgw__config_int(struct kafka_str v, int64_t *out);
/* Is @s the string @lit? */
bool kgw__str_is(struct kafka_str s, const char *lit);
/* The Kafka error of a topic change's native error: topic changes go to
 * the Raft leader, which Kafka calls the controller. */
int16_t kgw__admin_error(int code);

/* The topics one Kafka request names, asked with one TOPIC_LIST of those
 * names (a lookup each, not the whole catalog): add them (names tally
 * cannot have are left out), then send; more than a page's worth asks for
 * every topic. */
struct kgw__names {
    struct buf names;
    uint32_t n;
};
void kgw__names_init(struct kgw__names *q);
void kgw__names_add(struct kgw__names *q, struct kafka_str name);
/* Send the TOPIC_LIST for @job (@cb gets its answer) and free @q. */
void kgw__names_send(struct kgw *kg, struct kjob *job, struct kgw__names *q,
                     void (*cb)(struct kgw__sub *, struct kgw__answer *));

/* kgw_group.c: the APIs of consumer groups and configs. */
void kgw__find_coordinator(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__join_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__sync_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__heartbeat(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__leave_group(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__offset_commit(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__offset_fetch(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__list_groups(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__describe_groups(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__describe_configs(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);
void kgw__alter_configs(struct kgw *kg, struct kjob *job, struct kafka_rd *rd);

#endif
