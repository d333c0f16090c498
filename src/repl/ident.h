/* The identity of a data directory: which node it belongs to, which copy
 * of that node's disk it is, and which cluster it joined.
 *
 * IDENTITY FILE FORMAT, version 1 (DATA/identity, text, one field a line)
 *
 *   tally-identity 1
 *   node_id N            the --id that created the directory
 *   directory_id HEX16   random, made when the directory was first used: a
 *                        wiped and refilled directory gets a new one
 *   cluster_id HEX16     the cluster it belongs to; 0000000000000000 while
 *                        it knows none (a new node before it hears from its
 *                        cluster, a bootstrap before its first leader)
 *
 * Written atomically (identity.tmp, fsync, rename, fsync the directory).
 * Unknown lines are ignored, so a later version may add fields. A data
 * directory of an older tally has no identity file: it gets one, with the
 * node id it is started with, on its first start by this version. */
#ifndef TALLY_REPL_IDENT_H_
#define TALLY_REPL_IDENT_H_

#include <stdbool.h>
#include <stdint.h>

struct ident {
    uint64_t node_id;
    uint64_t directory_id;
    uint64_t cluster_id; /* 0: none known yet */
};

/* Read DATA/identity. TALLY_NOTFOUND (errmsg untouched) if there is none;
 * TALLY_CORRUPT with a message if it cannot be read. */
int ident_load(const char *data_dir, struct ident *out, char *errmsg);

/* Write DATA/identity atomically. */
int ident_save(const char *data_dir, const struct ident *id, char *errmsg);

/* A new random id, never 0. */
uint64_t ident_random(void);

#endif
