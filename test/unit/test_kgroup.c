/* Unit tests of the Kafka group coordinator (src/server/kgroup.c): the
 * state machine on a real libuv loop, time moved by sleeping in short
 * steps (session timeouts of tens of ms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "kafka/errors.h"
#include "server/kgroup.h"

/* One client's view: the last answer of each kind it got. */
struct client {
    int joins, syncs;
    int16_t join_error, sync_error;
    int32_t generation;
    char member_id[300];
    char leader[300];
    int32_t n_members;
    char assignment[64];
    char protocol[32];
};

static void on_join(void *arg, const struct kafka_join_resp *r)
{
    struct client *c = arg;
    c->joins++;
    c->join_error = r->error;
    c->generation = r->generation_id;
    snprintf(c->member_id, sizeof c->member_id, "%s", r->member_id != NULL ? r->member_id : "");
    snprintf(c->leader, sizeof c->leader, "%s", r->leader != NULL ? r->leader : "");
    c->n_members = r->n_members;
    snprintf(c->protocol, sizeof c->protocol, "%s",
             r->protocol_name != NULL ? r->protocol_name : "");
}

static void on_sync(void *arg, int16_t error, const uint8_t *a, size_t len)
{
    struct client *c = arg;
    c->syncs++;
    c->sync_error = error;
    snprintf(c->assignment, sizeof c->assignment, "%.*s", (int)len, a != NULL ? (const char *)a : "");
}

static struct kafka_str S(const char *s)
{
    return (struct kafka_str){(const uint8_t *)s, s != NULL ? (int32_t)strlen(s) : -1};
}

static struct kafka_join_protocol range_protocol = {{(const uint8_t *)"range", 5},
                                                    {(const uint8_t *)"md", 2}};

static struct kafka_join_req join_req(const char *member, int32_t session_ms)
{
    return (struct kafka_join_req){
        .group_id = S("g"),
        .session_timeout_ms = session_ms,
        .rebalance_timeout_ms = 200,
        .member_id = S(member),
        .group_instance_id = S(NULL),
        .protocol_type = S("consumer"),
        .n_protocols = 1,
        .protocols = &range_protocol,
    };
}

/* Run the loop for about @ms. */
static void run_for(uv_loop_t *loop, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 10) {
        usleep(10000);
        uv_update_time(loop);
        uv_run(loop, UV_RUN_NOWAIT);
    }
}

struct fixture {
    uv_loop_t loop;
    uv_timer_t keep_alive; /* the coordinator's timer is unreferenced, as in
                            * tallyd, whose listeners keep the loop alive */
    struct kgroups *gs;
};

static void never(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    static struct fixture f;
    struct kgroup_limits lim = {.max_groups = 2, .max_members = 3, .min_session_ms = 10,
                                .max_session_ms = 10000, .initial_delay_ms = 0};
    uv_loop_init(&f.loop);
    uv_timer_init(&f.loop, &f.keep_alive);
    uv_timer_start(&f.keep_alive, never, 3600 * 1000, 0);
    assert_int_equal(kgroups_create(&f.loop, &lim, &f.gs), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kgroups_destroy(f->gs);
    uv_close((uv_handle_t *)&f->keep_alive, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    return 0;
}

/* v4: a first join gets an id; joining with it makes a generation. */
static void join_with(struct fixture *f, struct client *c, int16_t version, unsigned session)
{
    struct kafka_join_req r = join_req("", (int32_t)session);
    kgroups_join(f->gs, &r, version, "cli", "/127.0.0.1", on_join, c);
    if (version >= 4) {
        assert_int_equal(c->join_error, KAFKA_MEMBER_ID_REQUIRED);
        r = join_req(c->member_id, (int32_t)session);
        kgroups_join(f->gs, &r, version, "cli", "/127.0.0.1", on_join, c);
    }
}

static void sync_as(struct fixture *f, struct client *c, const char *give_to, const char *what)
{
    struct kafka_sync_assignment a = {S(give_to), S(what)};
    struct kafka_sync_req r = {.group_id = S("g"), .generation_id = c->generation,
                               .member_id = S(c->member_id), .group_instance_id = S(NULL),
                               .n_assignments = give_to != NULL ? 1 : 0,
                               .assignments = give_to != NULL ? &a : NULL};
    kgroups_sync(f->gs, &r, on_sync, c);
}

static int16_t heartbeat(struct fixture *f, struct client *c)
{
    struct kafka_heartbeat_req r = {S("g"), c->generation, S(c->member_id), S(NULL)};
    return kgroups_heartbeat(f->gs, &r);
}

static void test_one_member_generation(void **state)
{
    struct fixture *f = *state;
    struct client a = {0};
    join_with(f, &a, 4, 1000);
    assert_int_equal(a.joins, 2);
    assert_int_equal(a.join_error, KAFKA_NONE);
    assert_int_equal(a.generation, 1);
    assert_string_equal(a.leader, a.member_id);
    assert_int_equal(a.n_members, 1);
    sync_as(f, &a, a.member_id, "topics-a");
    assert_int_equal(a.sync_error, KAFKA_NONE);
    assert_string_equal(a.assignment, "topics-a");
    assert_int_equal(heartbeat(f, &a), KAFKA_NONE);
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), 1, S(a.member_id)), KAFKA_NONE);
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), 0, S(a.member_id)),
                     KAFKA_ILLEGAL_GENERATION);
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), 1, S("nobody")),
                     KAFKA_UNKNOWN_MEMBER_ID);
}

/* A second member: the first is told to rejoin, the new generation has
 * both, the follower waits in SyncGroup for the leader's assignment. */
static void test_rebalance_and_sync(void **state)
{
    struct fixture *f = *state;
    struct client a = {0}, b = {0};
    join_with(f, &a, 3, 1000);
    sync_as(f, &a, a.member_id, "all");
    join_with(f, &b, 3, 1000);
    assert_int_equal(b.joins, 0); /* waits for a */
    assert_int_equal(heartbeat(f, &a), KAFKA_REBALANCE_IN_PROGRESS);
    struct kafka_join_req r = join_req(a.member_id, 1000);
    kgroups_join(f->gs, &r, 3, "cli", "/h", on_join, &a);
    assert_int_equal(a.generation, 2);
    assert_int_equal(b.generation, 2);
    assert_string_equal(a.leader, b.leader);
    struct client *leader = strcmp(a.leader, a.member_id) == 0 ? &a : &b;
    struct client *follower = leader == &a ? &b : &a;
    assert_int_equal(leader->n_members, 2);
    assert_int_equal(follower->n_members, 0);
    sync_as(f, follower, NULL, NULL);
    assert_int_equal(follower->syncs, 0); /* waits */
    /* A commit in COMPLETING is refused until the assignment is out. */
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), 2, S(follower->member_id)),
                     KAFKA_REBALANCE_IN_PROGRESS);
    sync_as(f, leader, follower->member_id, "half");
    assert_int_equal(follower->syncs, 1);
    assert_string_equal(follower->assignment, "half");
    assert_int_equal(leader->sync_error, KAFKA_NONE);
    assert_string_equal(leader->assignment, ""); /* none given to itself */
    /* A stale generation. */
    struct kafka_heartbeat_req hb = {S("g"), 1, S(follower->member_id), S(NULL)};
    assert_int_equal(kgroups_heartbeat(f->gs, &hb), KAFKA_ILLEGAL_GENERATION);
    struct client stale = *follower;
    stale.generation = 1;
    stale.syncs = 0;
    sync_as(f, &stale, NULL, NULL);
    assert_int_equal(stale.sync_error, KAFKA_ILLEGAL_GENERATION);
}

/* A member that stops heartbeating is removed after its session timeout;
 * the other one rebalances alone. */
static void test_session_expiry(void **state)
{
    struct fixture *f = *state;
    struct client a = {0}, b = {0};
    join_with(f, &a, 3, 2000);
    join_with(f, &b, 3, 60);
    struct kafka_join_req r = join_req(a.member_id, 2000);
    kgroups_join(f->gs, &r, 3, "cli", "/h", on_join, &a);
    struct client *leader = strcmp(a.leader, a.member_id) == 0 ? &a : &b;
    sync_as(f, leader, NULL, NULL);
    assert_int_equal(a.generation, 2);
    int16_t hb = KAFKA_NONE;
    for (int i = 0; i < 50 && hb == KAFKA_NONE; i++) {
        run_for(&f->loop, 10);
        hb = heartbeat(f, &a); /* only a stays alive */
    }
    assert_int_equal(hb, KAFKA_REBALANCE_IN_PROGRESS);
    assert_int_equal(heartbeat(f, &b), KAFKA_UNKNOWN_MEMBER_ID);
    kgroups_join(f->gs, &r, 3, "cli", "/h", on_join, &a);
    assert_int_equal(a.join_error, KAFKA_NONE);
    assert_int_equal(a.generation, 3);
    assert_int_equal(a.n_members, 1);
}

/* A member that does not rejoin within the rebalance timeout is dropped
 * and the ones that did get their generation. */
static void test_rebalance_timeout(void **state)
{
    struct fixture *f = *state;
    struct client a = {0}, b = {0}, c = {0};
    join_with(f, &a, 3, 5000);
    sync_as(f, &a, NULL, NULL);
    join_with(f, &b, 3, 5000); /* a never rejoins */
    assert_int_equal(b.joins, 0);
    run_for(&f->loop, 400); /* rebalance_timeout_ms 200 */
    assert_int_equal(b.joins, 1);
    assert_int_equal(b.join_error, KAFKA_NONE);
    assert_int_equal(b.n_members, 1);
    assert_string_equal(b.leader, b.member_id);
    assert_int_equal(heartbeat(f, &a), KAFKA_UNKNOWN_MEMBER_ID);
    (void)c;
}

/* Bounds: members per group (pending ids count) and groups. */
static void test_limits(void **state)
{
    struct fixture *f = *state;
    struct client c[5];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 5; i++) {
        struct kafka_join_req r = join_req("", 50);
        kgroups_join(f->gs, &r, 4, "flood", "/h", on_join, &c[i]);
    }
    assert_int_equal(c[2].join_error, KAFKA_MEMBER_ID_REQUIRED);
    assert_int_equal(c[3].join_error, KAFKA_GROUP_MAX_SIZE_REACHED);
    assert_int_equal(c[4].join_error, KAFKA_GROUP_MAX_SIZE_REACHED);
    unsigned members;
    assert_int_equal(kgroups_count(f->gs, &members), 1);
    /* The pending ids expire together (a tick, not a tick each) and the
     * group is forgotten. */
    run_for(&f->loop, 190);
    assert_int_equal(kgroups_count(f->gs, &members), 0);
    struct client d = {0};
    struct kafka_join_req r = join_req("", 50);
    kgroups_join(f->gs, &r, 4, "flood", "/h", on_join, &d);
    assert_int_equal(d.join_error, KAFKA_MEMBER_ID_REQUIRED);
    /* Groups: two allowed. */
    struct client g2 = {0}, g3 = {0};
    r.group_id = S("g2");
    kgroups_join(f->gs, &r, 4, "x", "/h", on_join, &g2);
    assert_int_equal(g2.join_error, KAFKA_MEMBER_ID_REQUIRED);
    r.group_id = S("g3");
    kgroups_join(f->gs, &r, 4, "x", "/h", on_join, &g3);
    assert_int_equal(g3.join_error, KAFKA_COORDINATOR_NOT_AVAILABLE);
}

/* Bad requests: unknown members, wrong protocol type, bad session. */
static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct client a = {0}, x = {0};
    struct kafka_join_req r = join_req("ghost", 1000);
    kgroups_join(f->gs, &r, 4, "cli", "/h", on_join, &x);
    assert_int_equal(x.join_error, KAFKA_UNKNOWN_MEMBER_ID);
    r = join_req("", 5);
    kgroups_join(f->gs, &r, 4, "cli", "/h", on_join, &x);
    assert_int_equal(x.join_error, KAFKA_INVALID_SESSION_TIMEOUT);
    r = join_req("", 1000);
    r.group_id = S("");
    kgroups_join(f->gs, &r, 4, "cli", "/h", on_join, &x);
    assert_int_equal(x.join_error, KAFKA_INVALID_GROUP_ID);
    join_with(f, &a, 3, 1000);
    r = join_req("", 1000);
    r.protocol_type = S("connect");
    kgroups_join(f->gs, &r, 3, "cli", "/h", on_join, &x);
    assert_int_equal(x.join_error, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
    struct kafka_heartbeat_req hb = {S("nogroup"), 1, S("m"), S(NULL)};
    assert_int_equal(kgroups_heartbeat(f->gs, &hb), KAFKA_UNKNOWN_MEMBER_ID);
    struct kafka_leave_member lm = {S("nobody"), S(NULL), 0};
    struct kafka_leave_req lr = {S("g"), 1, &lm};
    assert_int_equal(kgroups_leave(f->gs, &lr), KAFKA_UNKNOWN_MEMBER_ID);
    /* Leaving empties the group; a generation -1 commit is then fine. */
    lm.member_id = S(a.member_id);
    assert_int_equal(kgroups_leave(f->gs, &lr), KAFKA_NONE);
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), -1, S("")), KAFKA_NONE);
    assert_int_equal(kgroups_commit_check(f->gs, S("g"), 3, S("m")), KAFKA_UNKNOWN_MEMBER_ID);
}

/* Leadership lost: a waiting JoinGroup is answered NOT_COORDINATOR. */
static void test_reset_answers_waiters(void **state)
{
    struct fixture *f = *state;
    struct client a = {0}, b = {0};
    join_with(f, &a, 3, 1000);
    sync_as(f, &a, NULL, NULL);
    join_with(f, &b, 3, 1000);
    assert_int_equal(b.joins, 0);
    kgroups_reset(f->gs);
    assert_int_equal(b.joins, 1);
    assert_int_equal(b.join_error, KAFKA_NOT_COORDINATOR);
    assert_int_equal(heartbeat(f, &a), KAFKA_UNKNOWN_MEMBER_ID);
}

/* The generation's protocol: a name every member lists, by vote of each
 * member's first such name (Kafka's rule). */
static void join_listing(struct fixture *f, struct client *c, const char *const *names,
                         unsigned n)
{
    struct kafka_join_protocol p[4];
    for (unsigned i = 0; i < n; i++) {
        p[i] = (struct kafka_join_protocol){S(names[i]), S("md")};
    }
    struct kafka_join_req r = join_req(c->member_id, 1000);
    r.n_protocols = (int32_t)n;
    r.protocols = p;
    kgroups_join(f->gs, &r, 3, "cli", "/127.0.0.1", on_join, c);
}

static void test_protocol_vote(void **state)
{
    struct fixture *f = *state;
    static const char *const rr_range[] = {"roundrobin", "range"};
    static const char *const range_rr[] = {"range", "roundrobin"};
    static const char *const only_sticky[] = {"sticky"};
    struct client a = {0}, b = {0}, c = {0}, d = {0};
    join_listing(f, &a, rr_range, 2);
    assert_string_equal(a.protocol, "roundrobin");
    join_listing(f, &b, rr_range, 2); /* waits for a to rejoin */
    join_listing(f, &a, rr_range, 2);
    assert_int_equal(a.generation, 2);
    join_listing(f, &c, range_rr, 2);
    join_listing(f, &a, rr_range, 2);
    join_listing(f, &b, rr_range, 2);
    assert_int_equal(c.generation, 3);
    /* roundrobin: two votes to one */
    assert_string_equal(a.protocol, "roundrobin");
    assert_string_equal(c.protocol, "roundrobin");
    /* A member that lists neither is refused; the others keep theirs. */
    join_listing(f, &d, only_sticky, 1);
    assert_int_equal(d.join_error, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_member_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_vote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_and_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_answers_waiters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
