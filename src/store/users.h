/* The users of the cluster: SCRAM credentials (lib/scram.h) per user
 * name, never a password. Replicated state: changed only by the
 * USER command (store command 16, command.h), saved in the catalog and in
 * every Raft snapshot (catalog version 3, store.c and docs/disk-format.md).
 *
 * ENCODING of one user (the USER command's body after its op byte, and
 * each user of the catalog):
 *   str name, u8 n_creds, then per credential:
 *     u8 mechanism (1 SCRAM-SHA-256, 2 SCRAM-SHA-512), blob salt,
 *     u32 iterations, blob stored_key, blob server_key
 *   (blob lengths: salt 1..64, keys the mechanism's digest size). */
#ifndef TALLY_STORE_USERS_H_
#define TALLY_STORE_USERS_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"
#include "lib/scram.h"

#define USERS_MAX 1024
#define USERS_NAME_MAX SCRAM_USER_MAX
#define USERS_OP_SET 1
#define USERS_OP_REMOVE 2

struct users_entry {
    char name[USERS_NAME_MAX];
    struct scram_credentials cred[2]; /* [0] SCRAM-SHA-256, [1] SCRAM-SHA-512; mech 0: none */
};

struct users {
    struct users_entry *v; /* owned, sorted by name */
    unsigned n, cap;
};

void users_init(struct users *u);
void users_free(struct users *u);

/* Replace @dst's users by @src's (which is left empty). */
void users_move(struct users *dst, struct users *src);

/* The user @name, or NULL. Borrowed until the next change. */
const struct users_entry *users_find(const struct users *u, const char *name);

/* Its credentials for @mech, or NULL. */
const struct scram_credentials *users_cred(const struct users_entry *e, enum scram_mech mech);

/* Encode one user as above. */
void users_encode_entry(const struct users_entry *e, struct buf *b);

/* All users: u32 count, then each entry. */
void users_encode(const struct users *u, struct buf *b);

/* Decode what users_encode wrote into @u (empty). 0, TALLY_NOMEM, or
 * TALLY_CORRUPT (@r is marked bad). */
int users_decode(struct rd *r, struct users *u);

/* Apply a USER command body (u8 op, then a user for SET, or str name for
 * REMOVE). 0, or TALLY_INVAL / TALLY_NOTFOUND / TALLY_NOMEM with the
 * reason in @why (a refusal: the state is unchanged). */
int users_apply(struct users *u, struct rd *body, char *why, size_t cap);

#endif
