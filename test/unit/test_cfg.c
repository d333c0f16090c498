/* Unit tests of tallyd's configuration loader (src/server/cfg.c): defaults,
 * the INI file, flags overriding it, and every validation error. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "server/cfg.h"

#define P1 "1=127.0.0.1:7001/127.0.0.1:7101"
#define P2 "2=127.0.0.1:7002/127.0.0.1:7102"
#define P3 "3=127.0.0.1:7003/127.0.0.1:7103"

/* A scratch directory per test, removed afterwards. */
struct fixture {
    char dir[64];
    char data[128];
    char *argv[64];
    int argc;
    struct cfg cfg;
    char errmsg[ERR_MSG_SIZE];
};

static int test_cfg_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int test_cfg_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-test-cfg-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    f->argv[f->argc++] = strdup("tallyd");
    *state = f;
    return 0;
}

static int test_cfg_teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, test_cfg_rm, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < f->argc; i++) {
        free(f->argv[i]);
    }
    free(f);
    return 0;
}

/* Append arguments (NULL-terminated); copies, since getopt permutes argv. */
static void test_cfg_args(struct fixture *f, ...)
{
    va_list ap;
    const char *s;
    va_start(ap, f);
    while ((s = va_arg(ap, const char *)) != NULL) {
        assert_true(f->argc < 63);
        f->argv[f->argc++] = strdup(s);
    }
    va_end(ap);
}

/* The flags of node 1 of a three-node cluster on 127.0.0.1, minus any
 * flag named in @skip ("--id" drops "--id 1"). */
static void test_cfg_node1(struct fixture *f, const char *skip)
{
    const char *pairs[][2] = {
        {"--id", "1"},
        {"--data", f->data},
        {"--listen", "127.0.0.1:7001"},
        {"--raft", "127.0.0.1:7101"},
        {"--peer", P1},
        {"--peer", P2},
        {"--peer", P3},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (skip == NULL || strcmp(skip, pairs[i][0]) != 0) {
            test_cfg_args(f, pairs[i][0], pairs[i][1], NULL);
        }
    }
}

static int test_cfg_load(struct fixture *f)
{
    f->argv[f->argc] = NULL;
    return cfg_load(&f->cfg, f->argc, f->argv, f->errmsg);
}

/* Write @text to DIR/NAME and return the path (static buffer). */
static const char *test_cfg_file(struct fixture *f, const char *text)
{
    static char path[160];
    FILE *fp;
    snprintf(path, sizeof path, "%s/tallyd.conf", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* Loading fails with TALLY_INVAL and a one-line message containing @want. */
static void test_cfg_expect_error(struct fixture *f, const char *want)
{
    int rv = test_cfg_load(f);
    if (rv != TALLY_INVAL || strstr(f->errmsg, want) == NULL) {
        fail_msg("rv=%d errmsg='%s', wanted TALLY_INVAL with '%s'", rv, f->errmsg, want);
    }
    assert_null(strchr(f->errmsg, '\n'));
}

/* --- happy paths --------------------------------------------------------- */

static void test_cfg_flags_happy(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    test_cfg_node1(f, NULL);
    test_cfg_args(f, "--bootstrap", "--metrics", "127.0.0.1:9001", "--log-level", "debug",
                  NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_string_equal(f->errmsg, "");
    assert_int_equal(f->cfg.id, 1);
    assert_string_equal(f->cfg.data_dir, f->data);
    assert_string_equal(f->cfg.listen_addr, "127.0.0.1:7001");
    assert_string_equal(f->cfg.raft_addr, "127.0.0.1:7101");
    assert_int_equal(f->cfg.n_peers, 3);
    assert_int_equal(f->cfg.peers[2].id, 3);
    assert_string_equal(f->cfg.peers[2].client_addr, "127.0.0.1:7003");
    assert_string_equal(f->cfg.peers[2].raft_addr, "127.0.0.1:7103");
    assert_true(f->cfg.bootstrap);
    assert_string_equal(f->cfg.metrics_addr, "127.0.0.1:9001");
    assert_int_equal(f->cfg.log_level, LOGGER_DEBUG);
    /* The data dir was created. */
    assert_int_equal(stat(f->data, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* Tunables keep their documented defaults. */
    assert_int_equal(f->cfg.election_timeout_ms, 400);
    assert_int_equal(f->cfg.heartbeat_timeout_ms, 50);
    assert_int_equal(f->cfg.raft_segment_bytes, 64u << 20);
    assert_int_equal(f->cfg.snapshot_threshold, 0); /* from the budget */
    assert_int_equal(f->cfg.snapshot_trailing, 4096);
    assert_int_equal(f->cfg.raft_log_budget_bytes, 256u << 20);
    assert_int_equal(f->cfg.compaction_interval_ms, 15000);
    assert_int_equal(f->cfg.retention_interval_ms, 30000);
    assert_int_equal(f->cfg.delete_retention_ms, 86400000);
    assert_int_equal(f->cfg.compaction_buffer_bytes, 64u << 20);
    assert_int_equal(f->cfg.compaction_nice, 19);
    assert_int_equal(f->cfg.compaction_io_rate, 64u << 20);
    assert_int_equal(f->cfg.segment_bytes, 64u << 20);
    assert_int_equal(f->cfg.max_batch_bytes, 1u << 20);
    assert_int_equal(f->cfg.group_commit_bytes, 1u << 20);
    assert_int_equal(f->cfg.max_inflight_entries, 4);
    assert_int_equal(f->cfg.max_connections, 1024);
    /* peer lookup */
    assert_ptr_equal(cfg_peer_by_id(&f->cfg, 2), &f->cfg.peers[1]);
    assert_null(cfg_peer_by_id(&f->cfg, 4));
}

static void test_cfg_defaults_off(void **state)
{
    struct fixture *f = *state;
    test_cfg_node1(f, NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_false(f->cfg.bootstrap);
    assert_string_equal(f->cfg.metrics_addr, "");
}

static void test_cfg_nested_data_dir(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    char deep[200];
    snprintf(deep, sizeof deep, "%s/a/b//c/", f->dir);
    test_cfg_node1(f, "--data");
    test_cfg_args(f, "--data", deep, NULL);
    assert_int_equal(test_cfg_load(f), 0);
    snprintf(deep, sizeof deep, "%s/a/b/c", f->dir);
    assert_int_equal(stat(deep, &st), 0);
    /* The writability probe leaves nothing behind. */
    assert_int_equal(rmdir(deep), 0);
}

static void test_cfg_file_only(void **state)
{
    struct fixture *f = *state;
    char text[1024];
    snprintf(text, sizeof text,
             "# node 2\n"
             "; another comment style\n"
             "\n"
             "[tallyd]\n"
             "id = 2\n"
             "data = \"%s\"\n"
             "  listen=127.0.0.1:7002  \n"
             "raft = 127.0.0.1:7102 # trailing comment\n"
             "peer = " P1 "\n"
             "peer = " P2 "\r\n"
             "peer = " P3 "\n"
             "bootstrap = yes\n"
             "metrics = 127.0.0.1:9002\n"
             "log-level = warn\n"
             "election_timeout_ms = 2000\n"
             "heartbeat_timeout_ms = 200\n"
             "raft_segment_bytes = 8M\n"
             "snapshot_threshold = 100\n"
             "snapshot_trailing = 1\n"
             "segment_bytes = 512k\n"
             "max_batch_bytes = 65536\n"
             "group_commit_bytes = 2M\n"
             "max_inflight_entries = 8\n"
             "max_connections = 10\n",
             f->data);
    test_cfg_args(f, "--config", test_cfg_file(f, text), NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_int_equal(f->cfg.id, 2);
    assert_string_equal(f->cfg.data_dir, f->data);
    assert_string_equal(f->cfg.listen_addr, "127.0.0.1:7002");
    assert_string_equal(f->cfg.raft_addr, "127.0.0.1:7102");
    assert_int_equal(f->cfg.n_peers, 3);
    assert_string_equal(f->cfg.peers[1].raft_addr, "127.0.0.1:7102");
    assert_true(f->cfg.bootstrap);
    assert_string_equal(f->cfg.metrics_addr, "127.0.0.1:9002");
    assert_int_equal(f->cfg.log_level, LOGGER_WARN);
    assert_int_equal(f->cfg.election_timeout_ms, 2000);
    assert_int_equal(f->cfg.heartbeat_timeout_ms, 200);
    assert_int_equal(f->cfg.raft_segment_bytes, 8u << 20);
    assert_int_equal(f->cfg.snapshot_threshold, 100);
    assert_int_equal(f->cfg.snapshot_trailing, 1);
    assert_int_equal(f->cfg.segment_bytes, 512u << 10);
    assert_int_equal(f->cfg.max_batch_bytes, 65536);
    assert_int_equal(f->cfg.group_commit_bytes, 2u << 20);
    assert_int_equal(f->cfg.max_inflight_entries, 8);
    assert_int_equal(f->cfg.max_connections, 10);
}

static void test_cfg_flags_override_file(void **state)
{
    struct fixture *f = *state;
    char text[1024];
    /* The file describes node 1 of a cluster on other ports; the flags
     * turn it into node 3 of the usual cluster. */
    snprintf(text, sizeof text,
             "id = 1\n"
             "data = %s\n"
             "listen = 127.0.0.1:8001\n"
             "raft = 127.0.0.1:8101\n"
             "peer = 1=127.0.0.1:8001/127.0.0.1:8101\n"
             "peer = 9=127.0.0.1:8009/127.0.0.1:8109\n"
             "metrics = 127.0.0.1:9009\n"
             "log_level = error\n"
             "election_timeout_ms = 3000\n"
             "max_connections = 7\n",
             f->data);
    test_cfg_args(f, "--id", "3", "--listen", "127.0.0.1:7003", "--raft", "127.0.0.1:7103",
                  "--peer", P1, "--peer", P2, "--peer", P3, "--log-level", "info", "--set",
                  "election_timeout_ms=500", "--set", "metrics=", "--config",
                  test_cfg_file(f, text), NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_int_equal(f->cfg.id, 3);
    assert_string_equal(f->cfg.listen_addr, "127.0.0.1:7003");
    /* Flag peers replace the file's list instead of adding to it. */
    assert_int_equal(f->cfg.n_peers, 3);
    assert_null(cfg_peer_by_id(&f->cfg, 9));
    assert_int_equal(f->cfg.log_level, LOGGER_INFO);
    assert_int_equal(f->cfg.election_timeout_ms, 500);
    assert_string_equal(f->cfg.metrics_addr, "");
    /* Untouched file settings survive. */
    assert_int_equal(f->cfg.max_connections, 7);
    assert_string_equal(f->cfg.data_dir, f->data);
}

static void test_cfg_help_version(void **state)
{
    struct fixture *f = *state;
    /* The texts go to stdout; keep them out of the test log. */
    int saved = dup(STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
    fflush(stdout);
    dup2(null, STDOUT_FILENO);
    close(null);
    test_cfg_args(f, "--help", NULL);
    assert_int_equal(test_cfg_load(f), 1);
    free(f->argv[1]);
    f->argv[1] = strdup("--version");
    assert_int_equal(test_cfg_load(f), 1);
    free(f->argv[1]);
    f->argv[1] = strdup("-h");
    assert_int_equal(test_cfg_load(f), 1);
    /* --help wins over everything else on the line, bad flags included. */
    test_cfg_node1(f, NULL);
    test_cfg_args(f, "--bogus", "--id", NULL);
    assert_int_equal(test_cfg_load(f), 1);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
}

static void test_cfg_usage_text(void **state)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    (void)state;
    assert_non_null(out);
    cfg_usage(out);
    fclose(out);
    const char *want[] = {"--id", "--data", "--listen", "--raft", "--peer", "--bootstrap",
                          "--metrics", "--config", "--log-level", "--set", "--help",
                          "--version", "election_timeout_ms", "heartbeat_timeout_ms",
                          "raft_segment_bytes", "snapshot_threshold", "snapshot_trailing",
                          "segment_bytes", "max_batch_bytes", "group_commit_bytes",
                          "max_inflight_entries", "max_connections", "raft_log_budget_bytes",
                          "compaction_interval_ms", "min_compaction_lag_ms",
                          "retention_interval_ms",
                          "delete_retention_ms", "compaction_buffer_bytes",
                          "compaction_nice", "compaction_io_rate"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(buf, want[i]) == NULL) {
            fail_msg("usage lacks %s", want[i]);
        }
    }
    free(buf);
}

static void test_cfg_parse_addr(void **state)
{
    char ip[16];
    unsigned port = 0;
    (void)state;
    assert_int_equal(cfg_parse_addr("10.0.0.1:7001", ip, sizeof ip, &port), 0);
    assert_string_equal(ip, "10.0.0.1");
    assert_int_equal(port, 7001);
    assert_int_equal(cfg_parse_addr("0.0.0.0:65535", NULL, 0, NULL), 0);
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         ":7001",
                         "localhost:7001",
                         "127.1:7001",
                         "256.0.0.1:7001",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         "127.0.0.1:70a",
                         "127.0.0.1: 70",
                         "::1:7001",
                         "[::1]:7001",
                         "127.0.0.1:99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cfg_parse_addr(bad[i], ip, sizeof ip, &port) == 0) {
            fail_msg("accepted '%s'", bad[i]);
        }
    }
    /* Too small an output buffer is an error, not an overflow. */
    assert_int_equal(cfg_parse_addr("10.0.0.1:1", ip, 4, &port), -1);
}

/* --- errors -------------------------------------------------------------- */

static void test_cfg_missing_required(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *skip;
        const char *want;
    } cases[] = {
        {"--id", "missing required --id"},
        {"--data", "missing required --data"},
        {"--listen", "missing required --listen"},
        {"--raft", "missing required --raft"},
        {"--peer", "missing required --peer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        while (f->argc > 1) {
            free(f->argv[--f->argc]);
        }
        test_cfg_node1(f, cases[i].skip);
        test_cfg_expect_error(f, cases[i].want);
    }
}

/* One bad flag on top of a good node-1 command line. */
struct bad_flag {
    const char *skip; /* flag of test_cfg_node1 to drop, or NULL */
    const char *args[10];
    const char *want;
};

static void test_cfg_run_bad_flags(struct fixture *f, const struct bad_flag *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (f->argc > 1) {
            free(f->argv[--f->argc]);
        }
        test_cfg_node1(f, cases[i].skip);
        for (size_t j = 0; cases[i].args[j] != NULL; j++) {
            test_cfg_args(f, cases[i].args[j], NULL);
        }
        test_cfg_expect_error(f, cases[i].want);
    }
}

static void test_cfg_bad_flags(void **state)
{
    static const struct bad_flag cases[] = {
        {"--id", {"--id", "0"}, "--id 0: not a positive integer"},
        {"--id", {"--id", "abc"}, "--id abc: not a positive integer"},
        {"--id", {"--id", "-1"}, "--id -1: not a positive integer"},
        {"--listen", {"--listen", "localhost:7001"}, "--listen localhost:7001: not an IPv4"},
        {"--listen", {"--listen", "127.0.0.1"}, "--listen 127.0.0.1: not an IPv4"},
        {"--raft", {"--raft", "127.0.0.1:0"}, "--raft 127.0.0.1:0: not an IPv4"},
        {"--raft", {"--raft", "::1:7101"}, "--raft ::1:7101: not an IPv4"},
        {NULL, {"--metrics", "x:1"}, "--metrics x:1: not an IPv4"},
        {NULL, {"--metrics", "127.0.0.1:7001"}, "--metrics 127.0.0.1:7001: already used"},
        {NULL, {"--log-level", "loud"}, "--log-level loud: expected debug, info"},
        {NULL, {"--bogus"}, "unknown option '--bogus'"},
        {NULL, {"-x"}, "unknown option '-x'"},
        {NULL, {"--listen"}, "option '--listen' needs a value"},
        {NULL, {"stray"}, "unexpected argument 'stray'"},
        {NULL, {"--set", "nokey"}, "--set nokey: expected KEY=VALUE"},
        {NULL, {"--set", "=5"}, "--set =5: expected KEY=VALUE"},
        {NULL, {"--set", "bogus=1"}, "--set: unknown key 'bogus'"},
        {NULL, {"--set", "max_connections=0"}, "--set max_connections=0: out of range"},
        {NULL, {"--set", "max_connections=x"}, "not a non-negative integer"},
        {NULL, {"--set", "snapshot_trailing=0"}, "--set snapshot_trailing=0: out of range"},
        {NULL, {"--set", "segment_bytes=1T"}, "--set segment_bytes=1T: not a size"},
        {NULL, {"--set", "segment_bytes=99999999999G"}, "not a size"},
        {NULL, {"--set", "bootstrap=maybe"}, "--set bootstrap=maybe: expected true or false"},
        {NULL, {"--set", "heartbeat_timeout_ms=1000"}, "must be less than election_timeout_ms"},
        {NULL, {"--set", "max_batch_bytes=2M"}, "group_commit_bytes (1048576) must be at least"},
        {NULL, {"--set", "raft_segment_bytes=512K"}, "raft_segment_bytes (524288) must be at"},
        {"--data", {"--data", ""}, "--data : empty path"},
        {NULL, {"--config", "/nonexistent/tallyd.conf"}, "--config /nonexistent/tallyd.conf: No"},
    };
    test_cfg_run_bad_flags(*state, cases, sizeof cases / sizeof cases[0]);
}

/* TLS settings hang together, and plaintext off loopback needs --insecure. */
static void test_cfg_bad_tls(void **state)
{
    static const struct bad_flag cases[] = {
        {NULL, {"--tls-cert", "n.crt", "--tls-ca", "ca.crt"}, "--tls-cert needs --tls-key"},
        {NULL, {"--tls-key", "n.key", "--tls-ca", "ca.crt"}, "--tls-key needs --tls-cert"},
        {NULL, {"--tls-cert", "n.crt", "--tls-key", "n.key"}, "--tls-cert needs --tls-ca"},
        {NULL, {"--tls-ca", "ca.crt"}, "--tls-ca needs --tls-cert and --tls-key"},
        {NULL, {"--set", "tls_min_version=1.1"}, "--set tls_min_version=1.1: expected 1.3 or 1.2"},
        {NULL, {"--set", "insecure=perhaps"}, "--set insecure=perhaps: expected true or false"},
        {NULL, {"--metrics", "0.0.0.0:9100"}, "0.0.0.0:9100 is not a loopback address and TLS is off"},
        {NULL, {"--kafka", "0.0.0.0:9092"}, "0.0.0.0:9092 is not a loopback address and TLS is off"},
        {NULL, {"--set", "metrics_tls=true"}, "metrics_tls needs --tls-cert"},
        {NULL, {"--set", "tls_client_auth=maybe"}, "expected optional or required"},
        {NULL, {"--set", "auth=maybe"}, "expected none or required"},
        {NULL, {"--set", "auth=required"}, "auth = required needs TLS"},
        {NULL, {"--set", "authorize=rbac"}, "expected none or acl"},
        {NULL,
         {"--tls-cert", "n.crt", "--tls-key", "n.key", "--tls-ca", "ca.crt", "--set",
          "authorize=acl"},
         "authorize = acl needs auth = required"},
        {NULL,
         {"--tls-cert", "n.crt", "--tls-key", "n.key", "--tls-ca", "ca.crt", "--metrics",
          "0.0.0.0:9100"},
         "serves plain HTTP: set metrics_tls = true"},
    };
    test_cfg_run_bad_flags(*state, cases, sizeof cases / sizeof cases[0]);
}

/* The TLS flags and keys land in the struct; --insecure lets plaintext
 * listen off loopback. */
static void test_cfg_tls_happy(void **state)
{
    struct fixture *f = *state;
    test_cfg_node1(f, NULL);
    /* With TLS the Kafka listener may serve the network too (SSL). */
    test_cfg_args(f, "--tls-cert", "n.crt", "--tls-key", "n.key", "--tls-ca", "ca.crt", "--set",
                  "tls_min_version=1.2", "--metrics", "0.0.0.0:9100", "--set", "metrics_tls=true",
                  "--set", "tls_client_auth=required", "--kafka", "0.0.0.0:9092", NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_true(f->cfg.metrics_tls);
    assert_true(f->cfg.tls_client_cert_required);
    assert_string_equal(f->cfg.tls_cert, "n.crt");
    assert_string_equal(f->cfg.tls_key, "n.key");
    assert_string_equal(f->cfg.tls_ca, "ca.crt");
    assert_true(f->cfg.tls_allow_12);
    while (f->argc > 1) {
        free(f->argv[--f->argc]);
    }
    test_cfg_node1(f, NULL);
    test_cfg_args(f, "--metrics", "0.0.0.0:9100", "--insecure", NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_true(f->cfg.insecure);
    assert_string_equal(f->cfg.tls_cert, "");
}

static void test_cfg_bad_peers(void **state)
{
    static const struct bad_flag cases[] = {
        {NULL, {"--peer", "4"}, "--peer 4: expected ID=CLIENT_HOST:PORT/RAFT_HOST:PORT"},
        {NULL, {"--peer", "4=127.0.0.1:7004"}, "--peer 4=127.0.0.1:7004: missing /RAFT_HOST:PORT"},
        {NULL, {"--peer", "0=127.0.0.1:7004/127.0.0.1:7104"}, "peer id '0' is not a positive"},
        {NULL, {"--peer", "x=127.0.0.1:7004/127.0.0.1:7104"}, "peer id 'x' is not a positive"},
        {NULL, {"--peer", "4=host:7004/127.0.0.1:7104"}, "client address 'host:7004' is not"},
        {NULL, {"--peer", "4=127.0.0.1:7004/127.0.0.1"}, "raft address '127.0.0.1' is not"},
        {NULL, {"--peer", "2=127.0.0.1:7009/127.0.0.1:7109"}, "duplicate peer id 2"},
        {NULL, {"--peer", "4=127.0.0.1:7002/127.0.0.1:7104"},
         "duplicate peer address 127.0.0.1:7002 (peers 2 and 4)"},
        {NULL, {"--peer", "4=127.0.0.1:7004/127.0.0.1:7001"},
         "duplicate peer address 127.0.0.1:7001 (peers 1 and 4)"},
        {NULL, {"--peer", "4=127.0.0.1:7004/127.0.0.1:7004"},
         "peer 4: client and raft address are both 127.0.0.1:7004"},
        {"--id", {"--id", "5"}, "--id 5 is not in the --peer list"},
        {"--listen", {"--listen", "127.0.0.1:7002"},
         "--listen 127.0.0.1:7002 does not match --peer 1's client address 127.0.0.1:7001"},
        {"--raft", {"--raft", "127.0.0.1:7109"},
         "--raft 127.0.0.1:7109 does not match --peer 1's raft address 127.0.0.1:7101"},
    };
    test_cfg_run_bad_flags(*state, cases, sizeof cases / sizeof cases[0]);
}

/* The Kafka listener's flags: good values land in the config, and each
 * bad one is refused with a message naming it. */
static void test_cfg_kafka(void **state)
{
    struct fixture *f = *state;
    test_cfg_node1(f, NULL);
    test_cfg_args(f, "--kafka", "127.0.0.1:9092", "--kafka-advertise", "kafka1.example:19092",
                  "--kafka-peer", "2=10.0.0.2:9092", "--kafka-peer", "3=kafka3:9092",
                  "--kafka-peer", "3=kafka3b:9093", "--set", "kafka_auto_create_topics=true",
                  NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_string_equal(f->cfg.kafka_addr, "127.0.0.1:9092");
    assert_string_equal(f->cfg.kafka_advertise, "kafka1.example:19092");
    assert_int_equal(f->cfg.n_kafka_peers, 2);
    assert_string_equal(f->cfg.kafka_peers[1].addr, "kafka3b:9093"); /* the later one */
    assert_true(f->cfg.kafka_auto_create_topics);
    static const struct bad_flag cases[] = {
        {NULL, {"--kafka", "kafka:9092"}, "--kafka kafka:9092: not an IPv4"},
        {NULL, {"--kafka", "127.0.0.1:7001"}, "--kafka 127.0.0.1:7001: already used"},
        {NULL, {"--kafka-advertise", "nohost"}, "expected HOST:PORT"},
        {NULL, {"--kafka-advertise", ":9092"}, "expected HOST:PORT"},
        {NULL, {"--kafka-advertise", "h:99999"}, "expected HOST:PORT"},
        {NULL, {"--kafka-peer", "2"}, "expected ID=HOST:PORT"},
        {NULL, {"--kafka-peer", "0=h:1"}, "peer id '0' is not a positive"},
        {NULL, {"--kafka-peer", "2=h"}, "expected HOST:PORT"},
        {NULL, {"--set", "kafka_auto_create_topics=perhaps"}, "expected true or false"},
    };
    test_cfg_run_bad_flags(f, cases, sizeof cases / sizeof cases[0]);
}

static void test_cfg_too_many_peers(void **state)
{
    struct fixture *f = *state;
    char peer[80];
    test_cfg_node1(f, NULL);
    for (int i = 4; i <= CFG_MAX_PEERS + 1; i++) {
        snprintf(peer, sizeof peer, "%d=127.0.0.1:%d/127.0.0.1:%d", i, 7000 + i, 7100 + i);
        test_cfg_args(f, "--peer", peer, NULL);
    }
    test_cfg_expect_error(f, "too many peers (at most 16)");
}

/* A file that is good except for one line; the message names file:line. */
static void test_cfg_bad_file_line(struct fixture *f, const char *line, const char *want)
{
    char text[1024];
    char full[512];
    const char *path;
    while (f->argc > 1) {
        free(f->argv[--f->argc]);
    }
    snprintf(text, sizeof text, "[tallyd]\nid = 1\n%s\n", line);
    path = test_cfg_file(f, text);
    snprintf(full, sizeof full, "%s:3: %s", path, want);
    test_cfg_node1(f, "--id");
    test_cfg_args(f, "--config", path, NULL);
    test_cfg_expect_error(f, full);
}

static void test_cfg_bad_file(void **state)
{
    struct fixture *f = *state;
    test_cfg_bad_file_line(f, "colour = blue", "unknown key 'colour'");
    test_cfg_bad_file_line(f, "config = other.conf", "unknown key 'config'");
    test_cfg_bad_file_line(f, "just words", "expected 'key = value', got 'just words'");
    test_cfg_bad_file_line(f, "= 5", "missing key before '='");
    test_cfg_bad_file_line(f, "[kafka]", "unknown section [kafka] (only [tallyd])");
    test_cfg_bad_file_line(f, "[tallyd", "malformed section header '[tallyd'");
    test_cfg_bad_file_line(f, "id = 0", "id = 0: not a positive integer");
    test_cfg_bad_file_line(f, "bootstrap = perhaps", "bootstrap = perhaps: expected true or");
    test_cfg_bad_file_line(f, "listen = 127.0.0.1:http", "listen = 127.0.0.1:http: not an IPv4");
    test_cfg_bad_file_line(f, "peer = 4=127.0.0.1:7004",
                           "peer = 4=127.0.0.1:7004: missing /RAFT_HOST:PORT");
    test_cfg_bad_file_line(f, "election_timeout_ms = 5",
                           "election_timeout_ms = 5: out of range 10..3600000");
}

static void test_cfg_bad_data_dir(void **state)
{
    struct fixture *f = *state;
    char file[160];
    char under[200];
    FILE *fp;
    /* A regular file where the data dir should be. */
    snprintf(file, sizeof file, "%s/plainfile", f->dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    test_cfg_node1(f, "--data");
    test_cfg_args(f, "--data", file, NULL);
    test_cfg_expect_error(f, "not a directory");

    /* A data dir below that file cannot be created. */
    snprintf(under, sizeof under, "%s/sub", file);
    free(f->argv[f->argc - 1]);
    f->argv[f->argc - 1] = strdup(under);
    test_cfg_expect_error(f, "cannot create");

    /* A directory that takes no new files; /proc/self refuses even root. */
    free(f->argv[f->argc - 1]);
    f->argv[f->argc - 1] = strdup("/proc/self");
    test_cfg_expect_error(f, "data dir /proc/self: not writable");
}

/* cfg_load runs more than once in one process (getopt state is reset). */
static void test_cfg_reload(void **state)
{
    struct fixture *f = *state;
    test_cfg_node1(f, NULL);
    assert_int_equal(test_cfg_load(f), 0);
    assert_int_equal(test_cfg_load(f), 0);
    assert_int_equal(f->cfg.n_peers, 3);
}

/* The example configs shipped in deploy/ load, with --data redirected to a
 * scratch dir. `make check` says where the sources are. */
static void test_cfg_deploy_examples(void **state)
{
    struct fixture *f = *state;
    const char *src = getenv("TALLY_SRC_DIR");
    char path[512];
    char addr[32];
    if (src == NULL) {
        skip();
    }
    for (unsigned n = 1; n <= 3; n++) {
        while (f->argc > 1) {
            free(f->argv[--f->argc]);
        }
        snprintf(path, sizeof path, "%s/deploy/node%u.conf", src, n);
        test_cfg_args(f, "--config", path, "--data", f->data, NULL);
        if (test_cfg_load(f) != 0) {
            fail_msg("%s: %s", path, f->errmsg);
        }
        assert_int_equal(f->cfg.id, n);
        assert_int_equal(f->cfg.n_peers, 3);
        assert_true(f->cfg.bootstrap);
        snprintf(addr, sizeof addr, "10.0.0.%u:7001", n);
        assert_string_equal(f->cfg.listen_addr, addr);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, test_cfg_setup, test_cfg_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cfg_flags_happy),      T(test_cfg_defaults_off),     T(test_cfg_nested_data_dir),
        T(test_cfg_file_only),        T(test_cfg_flags_override_file),
        T(test_cfg_help_version),     T(test_cfg_usage_text),       T(test_cfg_parse_addr),
        T(test_cfg_missing_required), T(test_cfg_bad_flags),        T(test_cfg_bad_peers),
        T(test_cfg_too_many_peers),   T(test_cfg_bad_file),         T(test_cfg_bad_data_dir),
        T(test_cfg_reload),           T(test_cfg_deploy_examples),  T(test_cfg_kafka),
        T(test_cfg_reload),           T(test_cfg_deploy_examples),  T(test_cfg_bad_tls),
        T(test_cfg_tls_happy),
    };
    /* The default log level comes from the environment; pin it. */
    setenv("TALLY_LOG_LEVEL", "info", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
