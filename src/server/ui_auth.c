/* The console's logins; see ui_auth.h. */
#include "server/ui_auth.h"

#include <string.h>
#include <strings.h>

int ui_auth_init(struct ui_auth *a)
{
    memset(a, 0, sizeof *a);
    return scram_random(a->key, sizeof a->key);
}

void ui_auth_wipe(struct ui_auth *a)
{
    scram_wipe(a->e, sizeof a->e);
    memset(a->e, 0, sizeof a->e);
}

static int ui_auth__b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode padded standard base64 (@len characters) into @out (@cap bytes).
 * The byte count, or -1. */
static long ui_auth__unb64(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        unsigned pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = ui_auth__b64_value(in[i + k])) < 0) {
                return -1; /* a character after '=', or not base64 */
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        if (n + 3 - pad > cap) {
            return -1;
        }
        memcpy(out + n, b, 3 - pad);
        n += 3 - pad;
    }
    return (long)n;
}

int ui_auth_parse_basic(const char *header, char user[USERS_NAME_MAX],
                        char password[UI_AUTH_PASSWORD_MAX + 1], size_t *pw_len)
{
    uint8_t raw[USERS_NAME_MAX + 1 + UI_AUTH_PASSWORD_MAX];
    const char *p = header;
    long n;
    if (strncasecmp(p, "Basic", 5) != 0 || p[5] != ' ') {
        return -1;
    }
    p += 5;
    while (*p == ' ') {
        p++;
    }
    size_t len = strlen(p);
    while (len > 0 && p[len - 1] == ' ') {
        len--; /* http-parser keeps trailing blanks of a header value */
    }
    if ((n = ui_auth__unb64(p, len, raw, sizeof raw)) < 0) {
        return -1;
    }
    const uint8_t *colon = memchr(raw, ':', (size_t)n);
    if (colon == NULL) {
        return -1;
    }
    size_t ulen = (size_t)(colon - raw), plen = (size_t)n - ulen - 1;
    if (ulen == 0 || ulen >= USERS_NAME_MAX || plen > UI_AUTH_PASSWORD_MAX) {
        return -1;
    }
    for (size_t i = 0; i < ulen; i++) {
        if (raw[i] < 0x20 || raw[i] == 0x7f) {
            return -1; /* no such user can exist, and it would reach the log */
        }
    }
    if (memchr(colon + 1, '\0', plen) != NULL) {
        return -1; /* PBKDF2 would take the bytes, but no CLI can set such a password */
    }
    memcpy(user, raw, ulen);
    user[ulen] = '\0';
    memcpy(password, colon + 1, plen);
    password[plen] = '\0';
    *pw_len = plen;
    scram_wipe(raw, sizeof raw);
    return 0;
}

static bool ui_auth__same_cred(const struct scram_credentials *x, const struct scram_credentials *y)
{
    return x->mech == y->mech && x->iterations == y->iterations && x->salt_len == y->salt_len &&
           memcmp(x->salt, y->salt, x->salt_len) == 0 &&
           memcmp(x->stored_key, y->stored_key, scram_key_size(x->mech)) == 0;
}

bool ui_auth_check(struct ui_auth *a, const struct users *users, const char *user,
                   const char *password, size_t len)
{
    const struct users_entry *u = users_find(users, user);
    const struct scram_credentials *cred;
    struct ui_auth_entry *slot = NULL;
    uint8_t tag[32];
    cred = u == NULL ? NULL : users_cred(u, SCRAM_SHA_256);
    if (u != NULL && cred == NULL) {
        cred = users_cred(u, SCRAM_SHA_512);
    }
    if (cred == NULL) {
        /* An unknown user costs the derivation a known one does, so that
         * the time of the answer does not say which names exist (as
         * SCRAM's made-up salt does on the client port). */
        struct scram_credentials none = {.mech = SCRAM_SHA_256, .salt_len = sizeof a->key,
                                         .iterations = SCRAM_MIN_ITERATIONS};
        memcpy(none.salt, a->key, sizeof a->key);
        a->derivations++;
        (void)scram_check_password(&none, password, len);
        return false;
    }
    if (scram_password_tag(a->key, password, len, tag) != 0) {
        return false;
    }
    a->clock++;
    for (unsigned i = 0; i < UI_AUTH_CACHE; i++) {
        struct ui_auth_entry *e = &a->e[i];
        if (e->used && strcmp(e->user, user) == 0 && scram_equal(e->tag, tag, sizeof tag) &&
            ui_auth__same_cred(&e->cred, cred)) {
            e->last = a->clock;
            return true;
        }
    }
    a->derivations++;
    if (!scram_check_password(cred, password, len)) {
        return false;
    }
    /* Remember it: in the slot of an older login of this user (its
     * credentials or password changed), else a free one, else the least
     * recently used. */
    for (unsigned i = 0; i < UI_AUTH_CACHE; i++) {
        struct ui_auth_entry *e = &a->e[i];
        if (e->used && strcmp(e->user, user) == 0) {
            slot = e;
            break;
        }
        if (slot == NULL || (slot->used && (!e->used || e->last < slot->last))) {
            slot = e;
        }
    }
    slot->used = true;
    memcpy(slot->user, user, strlen(user) + 1);
    memcpy(slot->tag, tag, sizeof tag);
    slot->cred = *cred;
    slot->last = a->clock;
    return true;
}
