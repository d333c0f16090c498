/* SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the salted
 * credentials a server keeps instead of a password, and both sides of the
 * exchange. Transport-neutral (the messages are strings), so the native
 * protocol and a Kafka SASL listener can both use it. OpenSSL 3 does the
 * cryptography (PKCS5_PBKDF2_HMAC, HMAC, the digests, RAND_bytes,
 * CRYPTO_memcmp); nothing is written by hand here but the message syntax.
 *
 * Supported: the gs2 header "n,," or "y,," (no channel binding), no
 * authzid, user names without '=' escapes other than =2C and =3D,
 * iteration counts from SCRAM_MIN_ITERATIONS up. */
#ifndef TALLY_LIB_SCRAM_H_
#define TALLY_LIB_SCRAM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum scram_mech { SCRAM_SHA_256 = 1, SCRAM_SHA_512 = 2 };

#define SCRAM_KEY_MAX 64           /* SHA-512's digest size */
#define SCRAM_SALT_MAX 64
#define SCRAM_MIN_ITERATIONS 4096  /* RFC 7677's minimum */
#define SCRAM_USER_MAX 128
#define SCRAM_MSG_MAX 1024         /* longest message either side accepts */

/* What a server stores per user: never the password. */
struct scram_credentials {
    enum scram_mech mech;
    uint8_t salt[SCRAM_SALT_MAX];
    size_t salt_len;
    uint32_t iterations;
    uint8_t stored_key[SCRAM_KEY_MAX]; /* H(ClientKey) */
    uint8_t server_key[SCRAM_KEY_MAX]; /* HMAC(SaltedPassword, "Server Key") */
};

/* The mechanism's name ("SCRAM-SHA-256") and key size (32 or 64). */
const char *scram_mech_name(enum scram_mech mech);
size_t scram_key_size(enum scram_mech mech);
/* "SCRAM-SHA-256" -> SCRAM_SHA_256; 0 if unknown. */
enum scram_mech scram_mech_parse(const char *name);

/* Derive @out from @password with @salt (NULL: SCRAM_SALT_MAX/2 random
 * bytes) and @iterations. 0, or -1 with @errmsg (ERR_MSG_SIZE). */
int scram_make_credentials(enum scram_mech mech, const char *password, const uint8_t *salt,
                           size_t salt_len, uint32_t iterations,
                           struct scram_credentials *out, char *errmsg);

/* Is @password (@len bytes) the one @cred was made from? Derives
 * SaltedPassword with @cred's salt and iteration count (PBKDF2: slow on
 * purpose), then ClientKey and StoredKey, and compares StoredKey in
 * constant time. For a transport that carries the password itself (the
 * console's HTTP Basic, server/ui_auth.h); SCRAM exchanges never need it. */
bool scram_check_password(const struct scram_credentials *cred, const char *password,
                          size_t len);

/* HMAC-SHA-256 of @password (@len bytes) under @key (32 bytes) into @out
 * (32 bytes): names a password without keeping it (a cache of logins
 * already checked). 0 or -1. */
int scram_password_tag(const uint8_t *key, const char *password, size_t len, uint8_t *out);

/* @n random bytes (0 or -1), and a constant-time comparison of @n bytes. */
int scram_random(uint8_t *out, size_t n);
bool scram_equal(const void *a, const void *b, size_t n);

/* ---- Server side --------------------------------------------------------
 * 1. scram_server_start(client-first) -> the user name, to look up;
 * 2. scram_server_first(credentials) -> server-first, to send;
 * 3. scram_server_final(client-final) -> server-final, to send; 0 when the
 *    proof is right (the user is authenticated), -1 when it is not (the
 *    answer is then "e=invalid-proof"). */
struct scram_server {
    enum scram_mech mech;
    int step;                                /* 0, 1 (started), 2 (first sent), 3 (done) */
    char user[SCRAM_USER_MAX];
    char gs2[8];                             /* "n,," or "y,," */
    char client_first_bare[SCRAM_MSG_MAX];
    char server_first[SCRAM_MSG_MAX];
    char nonce[SCRAM_MSG_MAX / 2];           /* client nonce + server nonce */
    size_t client_nonce_len;                 /* the client's part of nonce */
    struct scram_credentials cred;
    bool known;                              /* the user exists */
};

/* Parse client-first-message (@len bytes). 0 with s->user set, or -1 with
 * the reason in @errmsg. */
int scram_server_start(struct scram_server *s, enum scram_mech mech, const char *msg, size_t len,
                       char *errmsg);

/* Write server-first-message into @out (NUL-terminated). @cred: the
 * user's credentials, or NULL for an unknown user (a made-up salt is
 * sent, so that the answer does not say whether the user exists; the
 * exchange then fails at the proof). @server_nonce: NULL for a random
 * one (tests pass theirs). 0 or -1. */
int scram_server_first(struct scram_server *s, const struct scram_credentials *cred,
                       const char *server_nonce, char *out, size_t cap, char *errmsg);

/* Check client-final-message; write server-final-message into @out. */
int scram_server_final(struct scram_server *s, const char *msg, size_t len, char *out,
                       size_t cap, char *errmsg);

/* ---- Client side --------------------------------------------------------
 * 1. scram_client_first -> client-first, to send;
 * 2. scram_client_final(server-first, password) -> client-final, to send;
 * 3. scram_client_check(server-final): 0 if the server proved it knows the
 *    credentials, -1 otherwise (and the server's "e=" error, if any). */
struct scram_client {
    enum scram_mech mech;
    int step;
    char client_first_bare[SCRAM_MSG_MAX];
    char nonce[SCRAM_MSG_MAX / 2];
    uint8_t server_signature[SCRAM_KEY_MAX];
};

int scram_client_first(struct scram_client *c, enum scram_mech mech, const char *user,
                       const char *client_nonce, char *out, size_t cap, char *errmsg);
int scram_client_final(struct scram_client *c, const char *password, const char *msg,
                       size_t len, char *out, size_t cap, char *errmsg);
int scram_client_check(struct scram_client *c, const char *msg, size_t len, char *errmsg);

/* Wipe secrets (keys, salted password copies) from @p. */
void scram_wipe(void *p, size_t n);

#endif
