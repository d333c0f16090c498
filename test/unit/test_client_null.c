/* Unit test of libtally's argument checks: every call, given NULL for its
 * handle or for any pointer it writes through, returns TALLY_INVAL (or,
 * for the calls without a result, does nothing) instead of crashing. One
 * row per call and argument; the suite's ASan build (build-asan) turns any
 * write through NULL into a failure with the call named. No node is
 * contacted: the broker list names a closed port, and every check happens
 * before a request is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tally.h"

/* Nothing listens there (port 1 on loopback); the checks must answer
 * before any connection is tried. */
#define T__BROKERS "127.0.0.1:1"

static tally_client *t__c;
static tally_producer *t__p;

static void t__ack(void *arg, const struct tally_ack *ack)
{
    (void)arg;
    (void)ack;
}

static const struct tally_record_in t__rec = {"k", 1, "v", 1};

/* ---- one function per row: the call with one NULL -------------------- */

static int r_create_out(void) { return tally_client_create(T__BROKERS, NULL); }
static int r_create_brokers(void)
{
    tally_client *c = (tally_client *)(uintptr_t)1;
    int rv = tally_client_create(NULL, &c);
    return c == NULL ? rv : -1000;
}
static int r_topic_create_c(void) { return tally_topic_create(NULL, "t", NULL); }
static int r_topic_create_name(void) { return tally_topic_create(t__c, NULL, NULL); }
static int r_topic_delete_c(void) { return tally_topic_delete(NULL, "t"); }
static int r_topic_delete_name(void) { return tally_topic_delete(t__c, NULL); }
static int r_topic_list_c(void)
{
    struct tally_topic_info *t;
    size_t n;
    return tally_topic_list(NULL, &t, &n);
}
static int r_topic_list_both(void) { return tally_topic_list(t__c, NULL, NULL); }
static int r_topic_list_topics(void)
{
    size_t n;
    return tally_topic_list(t__c, NULL, &n);
}
static int r_topic_list_n(void)
{
    struct tally_topic_info *t;
    return tally_topic_list(t__c, &t, NULL);
}
static int r_produce_c(void)
{
    struct tally_produce_result r;
    return tally_produce(NULL, "t", &t__rec, 1, &r);
}
static int r_produce_result(void) { return tally_produce(t__c, "t", &t__rec, 1, NULL); }
static int r_produce_records(void)
{
    struct tally_produce_result r;
    return tally_produce(t__c, "t", NULL, 1, &r);
}
static int r_produce_ex_result(void)
{
    struct tally_produce_options o;
    tally_produce_options_init(&o);
    return tally_produce_ex(t__c, "t", &t__rec, 1, &o, NULL);
}
static int r_produce_ex_conditions(void)
{
    struct tally_produce_options o;
    struct tally_produce_result r;
    tally_produce_options_init(&o);
    o.n_conditions = 1; /* conditions stays NULL */
    return tally_produce_ex(t__c, "t", &t__rec, 1, &o, &r);
}
static int r_produce_ex_condition_key(void)
{
    struct tally_produce_options o;
    struct tally_produce_result r;
    struct tally_condition cond = {NULL, 3, 0};
    tally_produce_options_init(&o);
    o.conditions = &cond;
    o.n_conditions = 1;
    return tally_produce_ex(t__c, "t", &t__rec, 1, &o, &r);
}
static int r_fetch_c(void)
{
    struct tally_fetch_result r;
    return tally_fetch(NULL, "t", 0, NULL, &r);
}
static int r_fetch_res(void) { return tally_fetch(t__c, "t", 0, NULL, NULL); }
static int r_fetch_topic(void)
{
    struct tally_fetch_result r;
    return tally_fetch(t__c, NULL, 0, NULL, &r);
}
static int r_time_c(void)
{
    uint64_t o;
    return tally_offset_for_time(NULL, "t", 0, &o);
}
static int r_time_offset(void) { return tally_offset_for_time(t__c, "t", 0, NULL); }
static int r_group_commit_c(void) { return tally_group_commit(NULL, "g", "t", 1); }
static int r_group_commit_group(void) { return tally_group_commit(t__c, NULL, "t", 1); }
static int r_group_fetch_c(void)
{
    uint64_t o;
    int f;
    return tally_group_fetch(NULL, "g", "t", &o, &f);
}
static int r_group_fetch_both(void) { return tally_group_fetch(t__c, "g", "t", NULL, NULL); }
static int r_group_fetch_offset(void)
{
    int f;
    return tally_group_fetch(t__c, "g", "t", NULL, &f);
}
static int r_group_fetch_found(void)
{
    uint64_t o;
    return tally_group_fetch(t__c, "g", "t", &o, NULL);
}
static int r_group_list_c(void)
{
    struct tally_group_position *p;
    size_t n;
    return tally_group_list(NULL, NULL, NULL, &p, &n);
}
static int r_group_list_positions(void)
{
    size_t n;
    return tally_group_list(t__c, NULL, NULL, NULL, &n);
}
static int r_group_list_n(void)
{
    struct tally_group_position *p;
    return tally_group_list(t__c, NULL, NULL, &p, NULL);
}
static int r_group_commit_at_c(void) { return tally_group_commit_at(NULL, "g", "t", 1, 1); }
static int r_group_reset_c(void)
{
    return tally_group_reset(NULL, "g", "t", TALLY_RESET_EARLIEST, 0, NULL);
}
static int r_group_delete_c(void) { return tally_group_delete(NULL, "g", "t"); }
static int r_status_c(void)
{
    struct tally_status st;
    return tally_status_get(NULL, &st);
}
static int r_status_st(void) { return tally_status_get(t__c, NULL); }
static int r_member_add_c(void) { return tally_member_add(NULL, 4, "127.0.0.1:1/127.0.0.1:2"); }
static int r_member_add_addr(void) { return tally_member_add(t__c, 4, NULL); }
static int r_member_remove_c(void) { return tally_member_remove(NULL, 4); }
static int r_member_transfer_c(void) { return tally_member_transfer(NULL, 4); }
static int r_member_promote_c(void) { return tally_member_promote(NULL, 4); }
static int r_member_replace_c(void) { return tally_member_replace(NULL, 4); }
static int r_read_index_c(void)
{
    uint64_t i;
    return tally_read_index(NULL, &i);
}
static int r_read_index_index(void) { return tally_read_index(t__c, NULL); }
static int r_catchup_c(void)
{
    struct tally_catchup o;
    return tally_member_catchup(NULL, 1, 0, &o);
}
static int r_catchup_out(void) { return tally_member_catchup(t__c, 1, 0, NULL); }
static int r_producer_create_c(void)
{
    tally_producer *p = NULL;
    return tally_producer_create(NULL, NULL, &p);
}
static int r_producer_create_out(void) { return tally_producer_create(t__c, NULL, NULL); }
static int r_producer_create_both(void) { return tally_producer_create(NULL, NULL, NULL); }
static int r_producer_send_p(void) { return tally_producer_send(NULL, "t", &t__rec, t__ack, NULL); }
static int r_producer_send_topic(void)
{
    return tally_producer_send(t__p, NULL, &t__rec, t__ack, NULL);
}
static int r_producer_send_rec(void) { return tally_producer_send(t__p, "t", NULL, t__ack, NULL); }
static int r_producer_poll_p(void) { return tally_producer_poll(NULL, 0); }
static int r_producer_flush_p(void) { return tally_producer_flush(NULL); }
static int r_stream_read_c(void)
{
    struct tally_stream_result r;
    return tally_stream_read(NULL, "t", "k", 1, NULL, &r);
}
static int r_stream_read_res(void) { return tally_stream_read(t__c, "t", "k", 1, NULL, NULL); }
static int r_stream_read_topic(void)
{
    struct tally_stream_result r;
    return tally_stream_read(t__c, NULL, "k", 1, NULL, &r);
}
static int r_filtered_c(void)
{
    struct tally_fetch_result r;
    return tally_fetch_filtered(NULL, "t", 0, "a*", NULL, &r);
}
static int r_filtered_res(void) { return tally_fetch_filtered(t__c, "t", 0, "a*", NULL, NULL); }
static int r_filtered_filter(void)
{
    struct tally_fetch_result r;
    return tally_fetch_filtered(t__c, "t", 0, NULL, NULL, &r);
}
static int r_stream_meta_c(void) { return tally_stream_set_meta(NULL, "t", "k", 1, NULL, NULL); }
static int r_stream_meta_topic(void)
{
    return tally_stream_set_meta(t__c, NULL, "k", 1, NULL, NULL);
}
static int r_stream_meta_key(void) { return tally_stream_set_meta(t__c, "t", NULL, 1, NULL, NULL); }
static int r_stream_read_key(void)
{
    struct tally_stream_result r;
    return tally_stream_read(t__c, "t", NULL, 1, NULL, &r);
}

static int r_set_tls_c(void) { return tally_client_set_tls(NULL, "ca", NULL, NULL); }
static int r_set_tls_ca(void) { return tally_client_set_tls(t__c, NULL, NULL, NULL); }
static int r_set_auth_c(void) { return tally_client_set_auth(NULL, "u", "p"); }
static int r_set_auth_user(void) { return tally_client_set_auth(t__c, NULL, "p"); }
static int r_set_auth_password(void) { return tally_client_set_auth(t__c, "u", NULL); }
static int r_set_mech_c(void) { return tally_client_set_auth_mechanism(NULL, "SCRAM-SHA-256"); }
static int r_set_mech_name(void) { return tally_client_set_auth_mechanism(t__c, NULL); }
static int r_user_set_c(void) { return tally_user_set(NULL, "u", "p"); }
static int r_user_set_name(void) { return tally_user_set(t__c, NULL, "p"); }
static int r_user_set_password(void) { return tally_user_set(t__c, "u", NULL); }
static int r_user_remove_c(void) { return tally_user_remove(NULL, "u"); }
static int r_user_remove_name(void) { return tally_user_remove(t__c, NULL); }
static int r_user_list_c(void)
{
    char **n;
    size_t k;
    return tally_user_list(NULL, &n, &k);
}
static int r_user_list_names(void)
{
    size_t k;
    return tally_user_list(t__c, NULL, &k);
}
static int r_user_list_n(void)
{
    char **n;
    return tally_user_list(t__c, &n, NULL);
}
static int r_acl_add_c(void)
{
    struct tally_acl a = {"p", TALLY_ACL_TOPIC, 0, "t", TALLY_ACL_READ, 1};
    return tally_acl_add(NULL, &a);
}
static int r_acl_add_acl(void) { return tally_acl_add(t__c, NULL); }
static int r_acl_remove_acl(void) { return tally_acl_remove(t__c, NULL); }
static int r_acl_list_c(void)
{
    struct tally_acl *a;
    size_t k;
    return tally_acl_list(NULL, &a, &k);
}
static int r_acl_list_acls(void)
{
    size_t k;
    return tally_acl_list(t__c, NULL, &k);
}
static int r_acl_list_n(void)
{
    struct tally_acl *a;
    return tally_acl_list(t__c, &a, NULL);
}

struct row {
    const char *name;
    int (*call)(void);
};

#define ROW(f) {#f, f}
static const struct row rows[] = {
    ROW(r_create_out),        ROW(r_create_brokers),     ROW(r_topic_create_c),
    ROW(r_topic_create_name), ROW(r_topic_delete_c),     ROW(r_topic_delete_name),
    ROW(r_topic_list_c),      ROW(r_topic_list_both),    ROW(r_topic_list_topics),
    ROW(r_topic_list_n),      ROW(r_produce_c),          ROW(r_produce_result),
    ROW(r_produce_records),   ROW(r_produce_ex_result),  ROW(r_produce_ex_conditions),
    ROW(r_produce_ex_condition_key),
    ROW(r_group_list_c),      ROW(r_group_list_positions), ROW(r_group_list_n),
    ROW(r_group_commit_at_c), ROW(r_group_reset_c),      ROW(r_group_delete_c),
    ROW(r_fetch_c),           ROW(r_fetch_res),          ROW(r_fetch_topic),
    ROW(r_time_c),            ROW(r_time_offset),        ROW(r_group_commit_c),
    ROW(r_group_commit_group), ROW(r_group_fetch_c),     ROW(r_group_fetch_both),
    ROW(r_group_fetch_offset), ROW(r_group_fetch_found), ROW(r_status_c),
    ROW(r_status_st),         ROW(r_member_add_c),       ROW(r_member_add_addr),
    ROW(r_member_remove_c),   ROW(r_member_transfer_c),  ROW(r_member_promote_c),
    ROW(r_catchup_c),         ROW(r_catchup_out),        ROW(r_producer_create_c),
    ROW(r_producer_create_out), ROW(r_producer_create_both), ROW(r_producer_send_p),
    ROW(r_producer_send_topic), ROW(r_producer_send_rec), ROW(r_producer_poll_p),
    ROW(r_producer_flush_p),  ROW(r_member_replace_c),   ROW(r_read_index_c),
    ROW(r_read_index_index),  ROW(r_stream_read_c),      ROW(r_stream_read_res),
    ROW(r_stream_read_topic), ROW(r_stream_read_key),    ROW(r_filtered_c),
    ROW(r_filtered_res),      ROW(r_filtered_filter),    ROW(r_stream_meta_c),
    ROW(r_stream_meta_topic), ROW(r_stream_meta_key),
    ROW(r_read_index_index),  ROW(r_set_tls_c),          ROW(r_set_tls_ca),
    ROW(r_set_auth_c),        ROW(r_set_auth_user),      ROW(r_set_auth_password),
    ROW(r_set_mech_c),        ROW(r_set_mech_name),      ROW(r_user_set_c),
    ROW(r_user_set_name),     ROW(r_user_set_password),  ROW(r_user_remove_c),
    ROW(r_user_remove_name),  ROW(r_user_list_c),        ROW(r_user_list_names),
    ROW(r_user_list_n),       ROW(r_acl_add_c),          ROW(r_acl_add_acl),
    ROW(r_acl_remove_acl),    ROW(r_acl_list_c),         ROW(r_acl_list_acls),
    ROW(r_acl_list_n),
};

static void test_null_arguments_refused(void **state)
{
    (void)state;
    assert_int_equal(tally_client_create(T__BROKERS, &t__c), 0);
    assert_int_equal(tally_producer_create(t__c, NULL, &t__p), 0);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rv = rows[i].call();
        if (rv != TALLY_INVAL) {
            fail_msg("%s returned %d (%s), want TALLY_INVAL", rows[i].name, rv,
                     tally_strerror(rv));
        }
    }
    /* The refusals that have a handle say which argument. */
    assert_int_equal(tally_status_get(t__c, NULL), TALLY_INVAL);
    assert_non_null(strstr(tally_errmsg(t__c), "'st' is NULL"));
    assert_int_equal(tally_read_index(t__c, NULL), TALLY_INVAL);
    assert_non_null(strstr(tally_errmsg(t__c), "'index' is NULL"));
    assert_int_equal(tally_stream_read(t__c, "t", "k", 1, NULL, NULL), TALLY_INVAL);
    assert_non_null(strstr(tally_errmsg(t__c), "'res' is NULL"));
    tally_producer_destroy(t__p);
    tally_client_destroy(t__c);
    t__p = NULL;
    t__c = NULL;
}

/* The calls without a result accept NULL and do nothing. */
static void test_null_no_result_calls(void **state)
{
    (void)state;
    tally_client_destroy(NULL);
    tally_client_set_timeout(NULL, 5);
    assert_non_null(tally_errmsg(NULL));
    tally_topic_config_init(NULL);
    tally_produce_options_init(NULL);
    tally_fetch_options_init(NULL);
    tally_fetch_result_free(NULL);
    tally_stream_options_init(NULL);
    tally_stream_result_free(NULL);
    tally_status_free(NULL);
    tally_producer_options_init(NULL);
    assert_non_null(tally_producer_errmsg(NULL));
    tally_producer_destroy(NULL);
    assert_int_equal(tally_condition_actual(NULL), 0);
    assert_int_equal(tally_outcome_unknown(NULL), 0);
    tally_set_linearizable(NULL, 1);
    assert_int_equal(tally_fetch_possibly_stale(NULL), 0);
    assert_string_equal(tally_status_disagreement(NULL), "");
    assert_non_null(tally_strerror(TALLY_INVAL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments_refused),
        cmocka_unit_test(test_null_no_result_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
