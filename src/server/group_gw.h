/* tally's shared consumer groups on the wire (docs/groups.md): GROUP_JOIN,
 * GROUP_HEARTBEAT, GROUP_LEAVE and GROUP_MEMBERS, and the member check of
 * a shared GROUP_COMMIT. Membership is the group coordinator's (kgroup.h,
 * the same one Kafka's consumer groups use, so one group name is one
 * group name): a native member joins the group's coordination on its
 * topic (NAME<0x1f>TOPIC, kgroup.h) with protocol type "tally", and its
 * protocol name says what it reads (topic, share count, filter), so
 * members that disagree are refused as the coordinator refuses any
 * protocol mismatch. The shares are assigned here (group_gw_assign),
 * round robin over the members sorted by id. Leader only; loop thread. */
#ifndef TALLY_SERVER_GROUP_GW_H_
#define TALLY_SERVER_GROUP_GW_H_

#include <stdbool.h>
#include <stdint.h>

#include "kafka/msg.h"
#include "lib/byte.h"
#include "server/kgroup.h"
#include "server/req.h"
#include "store/store.h"

#define GROUP_GW_PROTOCOL_TYPE "tally"

struct gw;

/* The assignor kgroups_set_assignor takes for GROUP_GW_PROTOCOL_TYPE. */
bool group_gw_assign(const char *protocol, const struct kafka_join_member *members, unsigned n,
                     struct kgroup_assignment *out);

/* The kgroup_had_members of GROUP_GW_PROTOCOL_TYPE (@arg: the store): a
 * shared group (coordinator id @id) had members if a member ever
 * committed share positions on its topic. */
bool group_gw_had_members(void *arg, const char *id);

/* Handle GROUP_JOIN, GROUP_HEARTBEAT, GROUP_LEAVE or GROUP_MEMBERS (@r's
 * type) whose body is @rd; the caller checked that this node leads. */
void group_gw_handle(struct gw *gw, struct kgroups *gs, struct store *s, struct req *r,
                     struct rd *rd);

/* May @member_id of @generation commit share positions for @group on
 * @topic? 0, or
 * TALLY_CONDITION_FAILED with @why filled. */
int group_gw_commit_check(struct kgroups *gs, const char *group, const char *topic,
                          uint32_t generation, const char *member_id, char *why, size_t why_len);

#endif
