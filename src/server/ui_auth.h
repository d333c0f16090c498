/* The console's logins (docs/console.md, Authentication): HTTP Basic
 * credentials on /ui/api/ requests checked against the users' SCRAM credentials
 * in the replicated catalog (store/users.h), with a small cache of
 * logins already checked.
 *
 * Why a cache: Basic sends the password with every request, and checking
 * it means PBKDF2 with the user's iteration count (4096 or more) on the
 * loop thread, milliseconds each; a page polling every second would pay
 * that on every poll. An entry remembers (user, a keyed hash of the
 * password, the credentials it was checked against): it only answers for
 * the same user and password while the catalog still holds exactly those
 * credentials, so a user set again (a new salt and keys) or removed stops
 * matching at once, on every path the catalog changes by (apply, snapshot
 * install). Wrong passwords are never cached. The password itself is not
 * kept: the hash is HMAC-SHA-256 under a key drawn at start. */
#ifndef TALLY_SERVER_UI_AUTH_H_
#define TALLY_SERVER_UI_AUTH_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/scram.h"
#include "store/users.h"

#define UI_AUTH_CACHE 16          /* logins remembered (least recently used goes) */
#define UI_AUTH_PASSWORD_MAX 256  /* longest password a Basic header may carry */

struct ui_auth_entry {
    bool used;
    char user[USERS_NAME_MAX];
    uint8_t tag[32];                  /* scram_password_tag of the password */
    struct scram_credentials cred;    /* what it was checked against */
    uint64_t last;                    /* ui_auth.clock at its last use */
};

struct ui_auth {
    uint8_t key[32];                  /* of the tags; random */
    uint64_t clock;                   /* counts lookups, for least recently used */
    uint64_t derivations;             /* PBKDF2 runs so far (tests watch it) */
    struct ui_auth_entry e[UI_AUTH_CACHE];
};

/* Empty cache and a fresh key. 0, or -1 when no random bytes. */
int ui_auth_init(struct ui_auth *a);

/* Forget everything (and wipe it). */
void ui_auth_wipe(struct ui_auth *a);

/* Parse an Authorization header value "Basic base64(user:password)" (the
 * scheme in any case, one or more spaces, padded standard base64; the user
 * is everything before the first ':'). 0 with @user and @password set
 * (NUL-terminated, *@pw_len the password's bytes), or -1 when the header
 * is empty, another scheme, malformed, or a part does not fit (user:
 * 1..USERS_NAME_MAX-1 bytes, no control characters; password: at most
 * UI_AUTH_PASSWORD_MAX bytes). */
int ui_auth_parse_basic(const char *header, char user[USERS_NAME_MAX],
                        char password[UI_AUTH_PASSWORD_MAX + 1], size_t *pw_len);

/* Is @password (@len bytes) @user's, by @users? From the cache when it
 * holds this login against the user's current credentials; else by PBKDF2
 * (SCRAM-SHA-256's credentials if the user has them, else SCRAM-SHA-512's),
 * remembered when right. An unknown user is false after a derivation
 * against made-up credentials: it takes as long as a wrong password. */
bool ui_auth_check(struct ui_auth *a, const struct users *users, const char *user,
                   const char *password, size_t len);

#endif
