/* The group coordinator: consumer-group membership on the Raft leader,
 * for Kafka's consumer groups (docs/kafka-users.md, Consumer groups) and
 * tally's own shared groups (docs/groups.md), one namespace for both.
 *
 * Kafka's classic group protocol: members JoinGroup, the coordinator waits
 * until every known member has (re)joined or the rebalance timeout passed,
 * starts a new generation and names a leader; the leader computes the
 * assignment with the clients' own assignor and hands it over in its
 * SyncGroup, which the coordinator passes to every member. Heartbeats keep
 * a member alive (its session timeout); one that stops is removed and the
 * others rebalance.
 *
 * Membership is in memory on the leader only, as in Kafka (where it is
 * rebuilt from the group's log on a new coordinator): after a failover the
 * clients find the new coordinator, rejoin as new members and continue from
 * the committed offsets, which are tally's replicated group positions
 * (kgw.c). Losing leadership drops every group here (kgroups_reset).
 *
 * Bounds (settings, docs/configuration.md): at most kafka_max_groups groups
 * with members and kafka_group_max_members members per group, counting the
 * members that were given an id but have not joined with it yet (they
 * expire after their session timeout); a member's metadata and assignment
 * are at most one Kafka frame. A JoinGroup or SyncGroup waits at most its
 * rebalance timeout (kafka_group_max_session_ms bounds it).
 *
 * tally's shared groups are coordinated per topic, under the id
 * NAME KGROUP_TOPIC_SEP TOPIC (group_gw.c), Kafka's under NAME: a join of
 * either kind is refused (INCONSISTENT_GROUP_PROTOCOL) while the other
 * kind has members under the same NAME, so one group name is used by one
 * kind of consumer at a time.
 *
 * A protocol type with an assignor (kgroups_set_assignor: tally's shared
 * groups) is assigned here instead: the generation starts with every
 * member's assignment made by the assignor, without SyncGroup, and
 * without the initial delay (a lone consumer starts at once; one that
 * comes later costs one rebalance). A group of another protocol type
 * with members refuses a join (INCONSISTENT_GROUP_PROTOCOL), so a Kafka
 * consumer and a native one cannot share a group at once.
 *
 * Not supported: static membership (group.instance.id is accepted and
 * treated as dynamic membership). */
#ifndef TALLY_SERVER_KGROUP_H_
#define TALLY_SERVER_KGROUP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kafka/msg.h"

struct kgroups;

/* Between a shared group's name and its topic in its coordinator id. */
#define KGROUP_TOPIC_SEP '\x1f'

struct kgroup_limits {
    unsigned max_groups;            /* groups with members at once */
    unsigned max_members;           /* per group, pending ids included */
    uint32_t min_session_ms, max_session_ms;
    uint32_t initial_delay_ms;      /* an empty group's first rebalance waits this
                                     * long for more members (Kafka's
                                     * group.initial.rebalance.delay.ms) */
};

/* A JoinGroup's answer, delivered once (possibly inside kgroups_join). */
typedef void (*kgroup_join_cb)(void *arg, const struct kafka_join_resp *resp);
/* A SyncGroup's answer, delivered once (possibly inside kgroups_sync). */
typedef void (*kgroup_sync_cb)(void *arg, int16_t error, const uint8_t *assignment, size_t len);

/* One member's assignment, made by an assignor (malloc'ed; taken over). */
struct kgroup_assignment {
    uint8_t *data;
    size_t len;
};
/* Assign @n members (their ids and chosen protocol's metadata) of a new
 * generation whose chosen protocol is @protocol: fill out[0..n-1].
 * False (out of memory): every member gets an empty assignment. */
typedef bool (*kgroup_assignor)(const char *protocol, const struct kafka_join_member *members,
                                unsigned n, struct kgroup_assignment *out);

int kgroups_create(uv_loop_t *loop, const struct kgroup_limits *limits, struct kgroups **out);
/* May @group_id have had members under another coordinator (a former
 * leader)? Then its first generation here waits until their sessions
 * have run out (they stop by then), so that no share has two members. */
typedef bool (*kgroup_had_members)(void *arg, const char *group_id);

/* Groups of @protocol_type (copied; at most one type) are assigned by
 * @fn (see the top of this file) and asked about with @had (@arg). */
void kgroups_set_assignor(struct kgroups *gs, const char *protocol_type, kgroup_assignor fn,
                          kgroup_had_members had, void *arg);
/* The assignment of @member_id in @group's current generation, if it is
 * a member: borrowed until the group next changes. */
bool kgroups_assignment(const struct kgroups *gs, struct kafka_str group,
                        struct kafka_str member_id, int32_t *generation, const uint8_t **data,
                        size_t *len);
/* Answer every waiting request NOT_COORDINATOR and free (the timer closes
 * on the loop). NULL: no-op. */
void kgroups_destroy(struct kgroups *gs);
/* This node stopped (or started) leading: drop every group, answering
 * waiting requests NOT_COORDINATOR. */
void kgroups_reset(struct kgroups *gs);

/* JoinGroup (@version: its API version; v4+ first joins get an id and
 * MEMBER_ID_REQUIRED). */
void kgroups_join(struct kgroups *gs, const struct kafka_join_req *req, int16_t version,
                  const char *client_id, const char *client_host, kgroup_join_cb cb, void *arg);
void kgroups_sync(struct kgroups *gs, const struct kafka_sync_req *req, kgroup_sync_cb cb,
                  void *arg);
int16_t kgroups_heartbeat(struct kgroups *gs, const struct kafka_heartbeat_req *req);
/* Fills each member's error; returns the top-level error (v0-v2 answer
 * the one member's error there). */
int16_t kgroups_leave(struct kgroups *gs, struct kafka_leave_req *req);
/* May @member_id of generation @generation commit offsets for @group? */
int16_t kgroups_commit_check(struct kgroups *gs, struct kafka_str group,
                             int32_t generation, struct kafka_str member_id);

/* Groups with members, in no particular order: @i-th's id and protocol
 * type; false past the end. */
bool kgroups_at(const struct kgroups *gs, unsigned i, const char **group_id,
                const char **protocol_type);
/* Describe @group into @out (strings and arrays borrowed from the
 * coordinator until it next changes, or from @a); false if the group has
 * no members (then the caller describes it from its offsets). */
bool kgroups_describe(const struct kgroups *gs, struct kafka_str group, struct kafka_arena *a,
                      struct kafka_dg_group *out);

/* Joined members of @group now. */
unsigned kgroups_members(const struct kgroups *gs, struct kafka_str group);
/* Members and groups now, for metrics and tests. */
unsigned kgroups_count(const struct kgroups *gs, unsigned *members);

#endif
