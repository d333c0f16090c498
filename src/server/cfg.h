/* tallyd's configuration: an INI file and command-line flags -> one
 * validated struct. Flags override the file. */
#ifndef TALLY_SERVER_CFG_H_
#define TALLY_SERVER_CFG_H_

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_PEERS 16
#define CFG_ADDR_MAX 64
#define CFG_PATH_MAX 4096

struct cfg_peer {
    uint64_t id;
    char client_addr[CFG_ADDR_MAX]; /* "IPv4:PORT" clients connect to */
    char raft_addr[CFG_ADDR_MAX];   /* "IPv4:PORT" for Raft traffic */
};

/* A member's Kafka address as clients should reach it (kafka_peer). */
struct cfg_kafka_peer {
    uint64_t id;
    char addr[CFG_ADDR_MAX];         /* "HOST:PORT"; HOST may be a name */
};

struct cfg {
    uint64_t id;                     /* --id N (> 0), required */
    char data_dir[CFG_PATH_MAX];     /* --data DIR, required */
    char listen_addr[CFG_ADDR_MAX];  /* --listen HOST:PORT, required */
    char raft_addr[CFG_ADDR_MAX];    /* --raft HOST:PORT, required */
    struct cfg_peer peers[CFG_MAX_PEERS]; /* --peer ID=CLIENT/RAFT, repeatable */
    unsigned n_peers;
    bool bootstrap;                  /* --bootstrap */
    char metrics_addr[CFG_ADDR_MAX]; /* --metrics HOST:PORT, "" = off */
    int log_level;                   /* --log-level, enum logger_level */
    /* The Kafka listener (docs/kafka-users.md). */
    char kafka_addr[CFG_ADDR_MAX];   /* --kafka HOST:PORT, "" = off */
    char kafka_advertise[CFG_ADDR_MAX]; /* --kafka-advertise HOST:PORT, "" = kafka_addr */
    struct cfg_kafka_peer kafka_peers[CFG_MAX_PEERS]; /* --kafka-peer ID=HOST:PORT */
    unsigned n_kafka_peers;
    bool kafka_auto_create_topics;   /* kafka_auto_create_topics: Metadata creates an
                                      * unknown topic it is asked about; default false */
    /* Kafka consumer groups (server/kgroup.h): bounds of the coordinator. */
    unsigned metrics_topic_series;        /* topics with tally_topic_* series, default 1000 */
    unsigned kafka_max_groups;            /* groups with members at once, default 10000 */
    unsigned kafka_group_max_members;     /* members per group, default 1000 */
    unsigned kafka_group_min_session_ms;  /* accepted session timeouts, default 1000.. */
    unsigned kafka_group_max_session_ms;  /* ..1800000 (also bounds rebalance timeouts) */
    unsigned kafka_group_initial_delay_ms; /* an empty group's first rebalance waits for
                                            * more members, default 1000 */
    /* TLS (docs/security.md): PEM paths, "" = not set. With a certificate,
     * the client port and the Raft links (mutual TLS) speak TLS only. */
    char tls_cert[CFG_PATH_MAX];     /* --tls-cert FILE: this node's certificate chain */
    char tls_key[CFG_PATH_MAX];      /* --tls-key FILE: its private key */
    char tls_ca[CFG_PATH_MAX];       /* --tls-ca FILE: the cluster's CA */
    bool tls_allow_12;               /* tls_min_version = 1.2 (default 1.3) */
    bool tls_client_cert_required;   /* tls_client_auth = required: clients must present a
                                      * certificate of tls_ca (default: optional) */
    bool auth_required;              /* auth = required: clients must authenticate (SCRAM
                                      * or a client certificate) */
    bool authorize_acl;              /* authorize = acl: every request is checked against the
                                      * replicated ACLs (needs auth = required) */
    char super_users[1024];          /* super_users: principals ACLs do not apply to */
    bool metrics_tls;                /* metrics_tls: HTTPS on --metrics (needs tls_cert) */
    bool insecure;                   /* --insecure: plaintext on non-loopback addresses */

    /* Tunables (config file keys of the same name, and --set KEY=VALUE). */
    unsigned election_timeout_ms;    /* election_timeout_ms, default 1000 */
    unsigned heartbeat_timeout_ms;   /* heartbeat_timeout_ms, default 100 */
    uint64_t raft_segment_bytes;     /* raft_segment_bytes, default 64 MiB */
    unsigned snapshot_threshold;     /* snapshot_threshold (entries); default 0: this and
                                      * snapshot_trailing come from raft_log_budget_bytes */
    unsigned snapshot_trailing;      /* snapshot_trailing (entries), 4096 when fixed */
    uint64_t raft_log_budget_bytes;  /* raft_log_budget_bytes, default 256 MiB */
    uint64_t segment_bytes;          /* segment_bytes: default topic segment size, 64 MiB */
    uint32_t max_batch_bytes;        /* max_batch_bytes: largest produce batch, 1 MiB */
    unsigned group_commit_bytes;     /* group_commit_bytes: max Raft entry, 1 MiB */
    unsigned max_inflight_entries;   /* max_inflight_entries, default 4 */
    unsigned max_connections;        /* max_connections, default 1024 */
    unsigned segment_fd_cache;       /* segment_fd_cache: sealed segments' open files */
    uint64_t disk_reserve_bytes;     /* disk_reserve_bytes: refuse writes below this much
                                      * free space; 0 = 3 x raft_segment_bytes + 8 MiB */
    unsigned retention_interval_ms;  /* retention_interval_ms: apply retention this often,
                                      * default 30000 */
    unsigned compaction_interval_ms; /* compaction_interval_ms: look for compaction work
                                      * this often, default 15000; 0 = never compact */
    uint64_t min_compaction_lag_ms;  /* min_compaction_lag_ms: leave younger segments, 0 */
    uint64_t delete_retention_ms;    /* delete_retention_ms: keep tombstones, 1 day */
    uint64_t compaction_buffer_bytes; /* compaction_buffer_bytes: key map, 64 MiB */
    unsigned compaction_nice;        /* compaction_nice: the job thread's nice value, 19 */
    uint64_t compaction_io_rate;     /* compaction_io_rate: bytes/s a job reads + writes, 0: any */
    uint64_t max_clock_step_ms;      /* max_clock_step_ms: the leader stamps at most this
                                      * far ahead of the time it kept, 60000 */
    uint64_t clock_warn_ms;          /* clock_warn_ms: warn when this node's clock is
                                      * this far from the leader's, 1000 */
};

/* Fill defaults, then read --config FILE if given, then apply the other
 * flags; validate (ids, addresses as IPv4:PORT, this node present in the
 * peer list with matching addresses, data dir usable: created like mkdir -p
 * if missing). The first --peer flag replaces the file's peer list. Returns
 * 0 on success. On error returns TALLY_INVAL with a one-line message in
 * @errmsg (ERR_MSG_SIZE bytes) naming the problem (e.g. "--peer
 * 2=127.0.0.1:7002: missing /RAFT_HOST:PORT"). Returns 1 if --help or
 * --version was handled (text already printed to stdout). Permutes @argv
 * (getopt_long) and may be called again. docs/configuration.md has it all. */
int cfg_load(struct cfg *c, int argc, char **argv, char *errmsg);

/* Usage text of tallyd. */
void cfg_usage(FILE *out);

/* Parse "A.B.C.D:PORT" into @ip (NUL-terminated) and @port; 0 or -1. */
int cfg_parse_addr(const char *s, char *ip, unsigned ip_cap, unsigned *port);

/* The peer with @id, or NULL. */
const struct cfg_peer *cfg_peer_by_id(const struct cfg *c, uint64_t id);

#endif
