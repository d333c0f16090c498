/* The Kafka front door's gateway: one decoded Kafka request becomes one or
 * more native requests handed to the same gateway (gw.c) a native client
 * reaches, as requests of a front door of its own (struct req_ops,
 * server/req.h); their answers are translated back.
 * So a Kafka produce takes the native path (checks, group commit, Raft,
 * store) and a Kafka fetch is served by the native fetch (committed data
 * only, parked long-poll); nothing here reads or writes the store.
 * Mapping and compatibility: docs/kafka-users.md. */
#ifndef TALLY_SERVER_KGW_H_
#define TALLY_SERVER_KGW_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kafka/msg.h"
#include "lib/byte.h"
#include "server/cfg.h"
#include "server/gw.h"

struct kgw;
struct kconn;

/* One Kafka request, from its frame to its answer. Reference counted: the
 * connection holds one reference until the answer is written (or the
 * connection is gone), and every native request under way holds one. */
struct kjob {
    struct kconn *conn;      /* NULL once the connection is gone */
    struct kjob *next;       /* FIFO of the connection */
    unsigned refs;
    bool done;               /* resp holds the whole answer frame */
    bool silent;             /* acks=0 produce: Kafka sends no answer */
    bool close_after;        /* close the connection once earlier answers are out */
    struct buf resp;         /* the answer frame */
    uint8_t *frame;          /* the request after its size field (owned) */
    size_t frame_len;
    struct kafka_req_header h;
    struct kafka_arena arena; /* the decoded request's arrays */
    void *state;             /* per-API state (owned, freed with the job) */
    void (*free_state)(void *state);
    unsigned pending;        /* native requests not answered yet */
};

int kgw_create(const struct cfg *cfg, uv_loop_t *loop, struct gw *gw, struct kgw **out);
/* The gateway may be given later (@gw NULL), before the loop runs. */
void kgw_set_gw(struct kgw *kg, struct gw *gw);
/* Count the native requests made for Kafka ones in @m (NULL: off). */
struct metrics;
void kgw_set_metrics(struct kgw *kg, struct metrics *m);
void kgw_destroy(struct kgw *kg);
/* This node became (@leader) or stopped being the Raft leader: only the
 * leader coordinates consumer groups (kgroup.h). NULL: no-op. */
void kgw_on_role(struct kgw *kg, bool leader);

/* Handle @job (its frame is set, one reference is the connection's):
 * eventually kconn_job_done(job) is called exactly once, possibly from
 * inside this call. */
void kgw_handle(struct kgw *kg, struct kjob *job);

/* Drop one reference; free the job at zero. */
void kjob_unref(struct kjob *job);

/* End of a burst of requests: propose what the gateway gathered. */
void kgw_flush(struct kgw *kg);

#endif
