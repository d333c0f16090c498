/* The users of the cluster (users.h). A sorted array: lookups happen once
 * per connection, changes are rare, a few hundred users at most. */
#include "store/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

void users_init(struct users *u)
{
    memset(u, 0, sizeof *u);
}

void users_free(struct users *u)
{
    if (u->v != NULL) {
        scram_wipe(u->v, u->cap * sizeof *u->v);
    }
    free(u->v);
    users_init(u);
}

void users_move(struct users *dst, struct users *src)
{
    users_free(dst);
    *dst = *src;
    users_init(src);
}

static unsigned users__pos(const struct users *u, const char *name, int *found)
{
    unsigned lo = 0, hi = u->n;
    *found = 0;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        int c = strcmp(u->v[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const struct users_entry *users_find(const struct users *u, const char *name)
{
    int found;
    unsigned i = users__pos(u, name, &found);
    return found ? &u->v[i] : NULL;
}

const struct scram_credentials *users_cred(const struct users_entry *e, enum scram_mech mech)
{
    const struct scram_credentials *c = &e->cred[mech == SCRAM_SHA_512 ? 1 : 0];
    return c->mech == mech ? c : NULL;
}

void users_encode_entry(const struct users_entry *e, struct buf *b)
{
    uint8_t n = 0;
    buf_put_str(b, e->name);
    for (int i = 0; i < 2; i++) {
        n += e->cred[i].mech != 0;
    }
    buf_put_u8(b, n);
    for (int i = 0; i < 2; i++) {
        const struct scram_credentials *c = &e->cred[i];
        size_t ks = scram_key_size(c->mech);
        if (c->mech == 0) {
            continue;
        }
        buf_put_u8(b, (uint8_t)c->mech);
        buf_put_blob(b, c->salt, (uint32_t)c->salt_len);
        buf_put_u32(b, c->iterations);
        buf_put_blob(b, c->stored_key, (uint32_t)ks);
        buf_put_blob(b, c->server_key, (uint32_t)ks);
    }
}

void users_encode(const struct users *u, struct buf *b)
{
    buf_put_u32(b, u->n);
    for (unsigned i = 0; i < u->n; i++) {
        users_encode_entry(&u->v[i], b);
    }
}

/* Decode one entry; 0 or -1 with a reason. */
static int users__decode_entry(struct rd *r, struct users_entry *e, char *why, size_t cap)
{
    uint8_t n;
    memset(e, 0, sizeof *e);
    rd_str(r, e->name, sizeof e->name);
    n = rd_u8(r);
    if (!rd_ok(r) || e->name[0] == '\0' || n > 2) {
        snprintf(why, cap, "malformed user");
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        uint8_t mech = rd_u8(r);
        const uint8_t *salt, *sk, *vk;
        uint32_t salt_len, sk_len, vk_len, iterations;
        struct scram_credentials *c;
        salt = rd_blob(r, &salt_len);
        iterations = rd_u32(r);
        sk = rd_blob(r, &sk_len);
        vk = rd_blob(r, &vk_len);
        if (!rd_ok(r) || (mech != SCRAM_SHA_256 && mech != SCRAM_SHA_512)) {
            snprintf(why, cap, "malformed credentials of user %s", e->name);
            return -1;
        }
        c = &e->cred[mech == SCRAM_SHA_512 ? 1 : 0];
        if (c->mech != 0 || salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
            iterations < SCRAM_MIN_ITERATIONS || sk_len != scram_key_size(mech) ||
            vk_len != sk_len) {
            snprintf(why, cap, "invalid credentials of user %s", e->name);
            return -1;
        }
        c->mech = mech;
        memcpy(c->salt, salt, salt_len);
        c->salt_len = salt_len;
        c->iterations = iterations;
        memcpy(c->stored_key, sk, sk_len);
        memcpy(c->server_key, vk, vk_len);
    }
    if (n == 0) {
        snprintf(why, cap, "user %s has no credentials", e->name);
        return -1;
    }
    return 0;
}

/* Insert or replace @e. 0 or TALLY_NOMEM / TALLY_INVAL (full). */
static int users__put(struct users *u, const struct users_entry *e)
{
    int found;
    unsigned i = users__pos(u, e->name, &found);
    if (found) {
        u->v[i] = *e;
        return 0;
    }
    if (u->n == USERS_MAX) {
        return TALLY_INVAL;
    }
    if (u->n == u->cap) {
        unsigned cap = u->cap ? u->cap * 2 : 8;
        struct users_entry *v = calloc(cap, sizeof *v);
        if (v == NULL) {
            return TALLY_NOMEM;
        }
        if (u->n > 0) {
            memcpy(v, u->v, u->n * sizeof *v);
            scram_wipe(u->v, u->cap * sizeof *u->v);
        }
        free(u->v);
        u->v = v;
        u->cap = cap;
    }
    memmove(&u->v[i + 1], &u->v[i], (u->n - i) * sizeof *u->v);
    u->v[i] = *e;
    u->n++;
    return 0;
}

int users_decode(struct rd *r, struct users *u)
{
    char why[160];
    uint32_t n = rd_u32(r);
    if (!rd_ok(r) || n > USERS_MAX) {
        r->bad = true;
        return TALLY_CORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct users_entry e;
        int rv;
        if (users__decode_entry(r, &e, why, sizeof why) != 0) {
            r->bad = true;
            return TALLY_CORRUPT;
        }
        rv = users__put(u, &e);
        scram_wipe(&e, sizeof e);
        if (rv != 0) {
            r->bad = true;
            return rv == TALLY_NOMEM ? TALLY_NOMEM : TALLY_CORRUPT;
        }
    }
    return 0;
}

int users_apply(struct users *u, struct rd *body, char *why, size_t cap)
{
    uint8_t op = rd_u8(body);
    if (op == USERS_OP_SET) {
        struct users_entry e;
        int rv;
        if (users__decode_entry(body, &e, why, cap) != 0) {
            return TALLY_INVAL;
        }
        rv = users__put(u, &e);
        scram_wipe(&e, sizeof e);
        if (rv == TALLY_INVAL) {
            snprintf(why, cap, "too many users (at most %d)", USERS_MAX);
        } else if (rv == TALLY_NOMEM) {
            snprintf(why, cap, "out of memory");
        }
        return rv;
    }
    if (op == USERS_OP_REMOVE) {
        char name[USERS_NAME_MAX];
        int found;
        unsigned i;
        rd_str(body, name, sizeof name);
        if (!rd_ok(body)) {
            snprintf(why, cap, "malformed user removal");
            return TALLY_INVAL;
        }
        i = users__pos(u, name, &found);
        if (!found) {
            snprintf(why, cap, "user %s not found", name);
            return TALLY_NOTFOUND;
        }
        scram_wipe(&u->v[i], sizeof u->v[i]);
        memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof *u->v);
        u->n--;
        return 0;
    }
    snprintf(why, cap, "unknown user operation %u", op);
    return TALLY_INVAL;
}
