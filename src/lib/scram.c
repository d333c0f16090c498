/* SCRAM-SHA-256/512 (scram.h).
 *
 * The computation (RFC 5802, section 3), with H the mechanism's digest:
 *   SaltedPassword  = PBKDF2-HMAC-H(password, salt, i)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key")
 *   StoredKey       = H(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage     = client-first-bare "," server-first ","
 *                     client-final-without-proof
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientProof     = ClientKey XOR ClientSignature
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 * The server keeps salt, i, StoredKey and ServerKey; it checks a proof by
 * recovering ClientKey = ClientProof XOR ClientSignature and comparing
 * H(ClientKey) with StoredKey in constant time (CRYPTO_memcmp). Messages
 * from the peer are bytes off the network: every field is checked for
 * syntax and length, nothing is asserted. */
#include "lib/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

#define SCRAM__NONCE_BYTES 18 /* 24 base64 characters */

const char *scram_mech_name(enum scram_mech mech)
{
    return mech == SCRAM_SHA_512 ? "SCRAM-SHA-512" : "SCRAM-SHA-256";
}

size_t scram_key_size(enum scram_mech mech)
{
    return mech == SCRAM_SHA_512 ? 64 : 32;
}

enum scram_mech scram_mech_parse(const char *name)
{
    if (strcmp(name, "SCRAM-SHA-256") == 0) {
        return SCRAM_SHA_256;
    }
    if (strcmp(name, "SCRAM-SHA-512") == 0) {
        return SCRAM_SHA_512;
    }
    return 0;
}

static const EVP_MD *scram__md(enum scram_mech mech)
{
    return mech == SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

void scram_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

static int scram__hmac(enum scram_mech mech, const uint8_t *key, size_t klen, const void *data,
                       size_t dlen, uint8_t *out)
{
    unsigned int n = 0;
    if (HMAC(scram__md(mech), key, (int)klen, data, dlen, out, &n) == NULL ||
        n != scram_key_size(mech)) {
        return -1;
    }
    return 0;
}

static int scram__hash(enum scram_mech mech, const uint8_t *in, size_t n, uint8_t *out)
{
    unsigned int len = 0;
    if (EVP_Digest(in, n, out, &len, scram__md(mech), NULL) != 1 || len != scram_key_size(mech)) {
        return -1;
    }
    return 0;
}

/* Base64 of @n bytes into @out (NUL-terminated). -1 if it does not fit. */
static int scram__b64(const uint8_t *in, size_t n, char *out, size_t cap)
{
    if ((n + 2) / 3 * 4 + 1 > cap) {
        return -1;
    }
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return 0;
}

/* Decode base64 (@len characters, padded) into @out; the byte count goes
 * to *@outlen. -1 if malformed or too long. */
static int scram__unb64(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t tmp[SCRAM_MSG_MAX];
    size_t pad = 0;
    int n;
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof tmp) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
                  (ch == '=' && i >= len - 2);
        if (!ok) {
            return -1;
        }
    }
    pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    if (pad == 1 && in[len - 2] == '=') {
        return -1;
    }
    n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad || (size_t)n - pad > cap) {
        return -1;
    }
    memcpy(out, tmp, (size_t)n - pad);
    *outlen = (size_t)n - pad;
    scram_wipe(tmp, sizeof tmp);
    return 0;
}

/* A fresh nonce: printable, without ','. */
static int scram__nonce(char *out, size_t cap)
{
    uint8_t raw[SCRAM__NONCE_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        return -1;
    }
    return scram__b64(raw, sizeof raw, out, cap);
}

static bool scram__nonce_ok(const char *s, size_t n)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') {
            return false;
        }
    }
    return true;
}

/* The next "k=value" attribute of @msg from *@pos: its value (not
 * NUL-terminated) in @val/@vlen. -1 if the attribute there is not @key. */
static int scram__attr(const char *msg, size_t len, size_t *pos, char key, const char **val,
                       size_t *vlen)
{
    size_t p = *pos, end;
    if (p + 2 > len || msg[p] != key || msg[p + 1] != '=') {
        return -1;
    }
    for (end = p + 2; end < len && msg[end] != ','; end++) {
        if (msg[end] == '\0') {
            return -1;
        }
    }
    *val = msg + p + 2;
    *vlen = end - p - 2;
    *pos = end < len ? end + 1 : end;
    return 0;
}

int scram_make_credentials(enum scram_mech mech, const char *password, const uint8_t *salt,
                           size_t salt_len, uint32_t iterations,
                           struct scram_credentials *out, char *errmsg)
{
    uint8_t salted[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX];
    size_t ks = scram_key_size(mech);
    int rv = -1;
    memset(out, 0, sizeof *out);
    if (iterations < SCRAM_MIN_ITERATIONS) {
        err_printf(errmsg, "SCRAM: %u iterations is below the minimum of %u", iterations,
                   SCRAM_MIN_ITERATIONS);
        return -1;
    }
    if (salt == NULL) {
        salt_len = SCRAM_SALT_MAX / 2;
        if (RAND_bytes(out->salt, (int)salt_len) != 1) {
            err_printf(errmsg, "SCRAM: no random bytes for the salt");
            return -1;
        }
    } else {
        if (salt_len == 0 || salt_len > SCRAM_SALT_MAX) {
            err_printf(errmsg, "SCRAM: salt of %zu bytes (want 1..%d)", salt_len, SCRAM_SALT_MAX);
            return -1;
        }
        memcpy(out->salt, salt, salt_len);
    }
    out->mech = mech;
    out->salt_len = salt_len;
    out->iterations = iterations;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), out->salt, (int)salt_len,
                          (int)iterations, scram__md(mech), (int)ks, salted) != 1 ||
        scram__hmac(mech, salted, ks, "Client Key", 10, client_key) != 0 ||
        scram__hash(mech, client_key, ks, out->stored_key) != 0 ||
        scram__hmac(mech, salted, ks, "Server Key", 10, out->server_key) != 0) {
        err_printf(errmsg, "SCRAM: key derivation failed");
        goto out;
    }
    rv = 0;
out:
    scram_wipe(salted, sizeof salted);
    scram_wipe(client_key, sizeof client_key);
    return rv;
}

/* ---- server ------------------------------------------------------------ */

bool scram_check_password(const struct scram_credentials *cred, const char *password,
                          size_t len)
{
    uint8_t salted[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX], stored[SCRAM_KEY_MAX];
    size_t ks = scram_key_size(cred->mech);
    bool ok = false;
    if ((cred->mech != SCRAM_SHA_256 && cred->mech != SCRAM_SHA_512) || cred->salt_len == 0 || cred->salt_len > SCRAM_SALT_MAX ||
        cred->iterations < SCRAM_MIN_ITERATIONS || len > INT32_MAX) {
        return false;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)len, cred->salt, (int)cred->salt_len,
                          (int)cred->iterations, scram__md(cred->mech), (int)ks, salted) == 1 &&
        scram__hmac(cred->mech, salted, ks, "Client Key", 10, client_key) == 0 &&
        scram__hash(cred->mech, client_key, ks, stored) == 0) {
        ok = CRYPTO_memcmp(stored, cred->stored_key, ks) == 0;
    }
    scram_wipe(salted, sizeof salted);
    scram_wipe(client_key, sizeof client_key);
    scram_wipe(stored, sizeof stored);
    return ok;
}

int scram_password_tag(const uint8_t *key, const char *password, size_t len, uint8_t *out)
{
    return scram__hmac(SCRAM_SHA_256, key, 32, password, len, out);
}

int scram_random(uint8_t *out, size_t n)
{
    return n <= INT32_MAX && RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}

bool scram_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int scram_server_start(struct scram_server *s, enum scram_mech mech, const char *msg, size_t len,
                       char *errmsg)
{
    size_t pos, vlen, u = 0;
    const char *val;
    memset(s, 0, sizeof *s);
    s->mech = mech;
    if (len >= SCRAM_MSG_MAX || len < 3) {
        err_printf(errmsg, "SCRAM: client-first-message of %zu bytes", len);
        return -1;
    }
    /* gs2-header: "n,," or "y,,"; "p=" (channel binding) and an authzid
     * are not offered. */
    if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',' || msg[2] != ',') {
        err_printf(errmsg, "SCRAM: unsupported gs2 header (channel binding and authzid are "
                           "not supported)");
        return -1;
    }
    memcpy(s->gs2, msg, 3);
    s->gs2[3] = '\0';
    pos = 3;
    memcpy(s->client_first_bare, msg + 3, len - 3);
    s->client_first_bare[len - 3] = '\0';
    if (scram__attr(msg, len, &pos, 'n', &val, &vlen) != 0) {
        err_printf(errmsg, "SCRAM: client-first-message has no n=user");
        return -1;
    }
    for (size_t i = 0; i < vlen; i++) {
        char ch = val[i];
        if (ch == '=') {
            if (i + 2 < vlen && val[i + 1] == '2' && val[i + 2] == 'C') {
                ch = ',';
            } else if (i + 2 < vlen && val[i + 1] == '3' && val[i + 2] == 'D') {
                ch = '=';
            } else {
                err_printf(errmsg, "SCRAM: bad escape in the user name");
                return -1;
            }
            i += 2;
        }
        if (ch == '\0' || u + 1 >= sizeof s->user) {
            err_printf(errmsg, "SCRAM: user name too long or not text");
            return -1;
        }
        s->user[u++] = ch;
    }
    s->user[u] = '\0';
    if (u == 0 || scram__attr(msg, len, &pos, 'r', &val, &vlen) != 0 ||
        !scram__nonce_ok(val, vlen) || vlen + SCRAM__NONCE_BYTES * 2 >= sizeof s->nonce) {
        err_printf(errmsg, "SCRAM: client-first-message has no valid user and nonce");
        return -1;
    }
    if (pos < len && msg[pos] == 'm') {
        err_printf(errmsg, "SCRAM: mandatory extension not supported");
        return -1;
    }
    memcpy(s->nonce, val, vlen);
    s->nonce[vlen] = '\0';
    s->client_nonce_len = vlen;
    s->step = 1;
    return 0;
}

int scram_server_first(struct scram_server *s, const struct scram_credentials *cred,
                       const char *server_nonce, char *out, size_t cap, char *errmsg)
{
    char snonce[64], salt64[SCRAM_SALT_MAX * 2];
    int n;
    if (s->step != 1) {
        err_printf(errmsg, "SCRAM: out of order");
        return -1;
    }
    if (server_nonce != NULL) {
        snprintf(snonce, sizeof snonce, "%s", server_nonce);
    } else if (scram__nonce(snonce, sizeof snonce) != 0) {
        err_printf(errmsg, "SCRAM: no random bytes for the nonce");
        return -1;
    }
    if (cred != NULL && cred->mech == s->mech) {
        s->cred = *cred;
        s->known = true;
    } else {
        /* Unknown user (or no credentials of this mechanism): a made-up
         * salt and keys, so that the answer looks like any other. */
        s->cred.mech = s->mech;
        s->cred.salt_len = SCRAM_SALT_MAX / 2;
        s->cred.iterations = SCRAM_MIN_ITERATIONS;
        if (RAND_bytes(s->cred.salt, (int)s->cred.salt_len) != 1 ||
            RAND_bytes(s->cred.stored_key, SCRAM_KEY_MAX) != 1) {
            err_printf(errmsg, "SCRAM: no random bytes");
            return -1;
        }
        s->known = false;
    }
    if (strlen(s->nonce) + strlen(snonce) + 1 > sizeof s->nonce) {
        err_printf(errmsg, "SCRAM: nonce too long");
        return -1;
    }
    strcat(s->nonce, snonce);
    if (scram__b64(s->cred.salt, s->cred.salt_len, salt64, sizeof salt64) != 0) {
        return -1;
    }
    n = snprintf(s->server_first, sizeof s->server_first, "r=%s,s=%s,i=%u", s->nonce, salt64,
                 s->cred.iterations);
    if (n < 0 || (size_t)n >= sizeof s->server_first || (size_t)n >= cap) {
        err_printf(errmsg, "SCRAM: server-first-message too long");
        return -1;
    }
    memcpy(out, s->server_first, (size_t)n + 1);
    s->step = 2;
    return 0;
}

/* The nonce of client-final-message: the one server-first-message sent
 * (RFC 5802), or, as librdkafka (2.0) sends it, the client's own nonce
 * again followed by that one. Kafka accepts both (it checks that the nonce
 * ends with the server's), and so must tally for librdkafka's clients to
 * log in; the proof still covers the message as sent. */
static bool scram__final_nonce_ok(const struct scram_server *s, const char *val, size_t vlen)
{
    size_t n = strlen(s->nonce), c = s->client_nonce_len;
    if (vlen == n) {
        return memcmp(val, s->nonce, n) == 0;
    }
    return vlen == c + n && memcmp(val, s->nonce, c) == 0 && memcmp(val + c, s->nonce, n) == 0;
}

int scram_server_final(struct scram_server *s, const char *msg, size_t len, char *out,
                       size_t cap, char *errmsg)
{
    size_t ks = scram_key_size(s->mech), pos = 0, vlen, plen = 0, cblen = 0;
    const char *val;
    char auth[SCRAM_MSG_MAX * 3], gs2_64[16];
    uint8_t proof[SCRAM_KEY_MAX], sig[SCRAM_KEY_MAX], key[SCRAM_KEY_MAX], stored[SCRAM_KEY_MAX];
    uint8_t cb[16];
    size_t without_proof;
    char in[SCRAM_MSG_MAX];
    const char *fail = "e=invalid-proof";
    int n, rv = -1;
    if (s->step != 2 || len >= SCRAM_MSG_MAX || cap < 32) {
        /* The answer is still an e= attribute (RFC 5802's other-error),
         * never what @out held before (the server-first-message). */
        if (cap > 0) {
            snprintf(out, cap, "e=other-error");
        }
        err_printf(errmsg, "SCRAM: out of order or too long");
        return -1;
    }
    s->step = 3;
    /* @out may be @msg's buffer: work on a copy. */
    memcpy(in, msg, len);
    in[len] = '\0';
    msg = in;
    if (scram__attr(msg, len, &pos, 'c', &val, &vlen) != 0 ||
        scram__unb64(val, vlen, cb, sizeof cb, &cblen) != 0 ||
        scram__b64((const uint8_t *)s->gs2, 3, gs2_64, sizeof gs2_64) != 0 || cblen != 3 ||
        memcmp(cb, s->gs2, 3) != 0) {
        fail = "e=channel-bindings-dont-match";
        err_printf(errmsg, "SCRAM: channel binding does not match the gs2 header");
        goto out;
    }
    if (scram__attr(msg, len, &pos, 'r', &val, &vlen) != 0 ||
        !scram__final_nonce_ok(s, val, vlen)) {
        err_printf(errmsg, "SCRAM: the nonce does not match");
        goto out;
    }
    /* Skip extensions up to ",p=". */
    while (pos < len && msg[pos] != 'p') {
        while (pos < len && msg[pos] != ',') {
            pos++;
        }
        pos = pos < len ? pos + 1 : pos;
    }
    without_proof = pos > 0 ? pos - 1 : 0;
    if (scram__attr(msg, len, &pos, 'p', &val, &vlen) != 0 || pos != len ||
        scram__unb64(val, vlen, proof, sizeof proof, &plen) != 0 || plen != ks) {
        err_printf(errmsg, "SCRAM: client-final-message has no valid proof");
        goto out;
    }
    n = snprintf(auth, sizeof auth, "%s,%s,%.*s", s->client_first_bare, s->server_first,
                 (int)without_proof, msg);
    if (n < 0 || (size_t)n >= sizeof auth) {
        err_printf(errmsg, "SCRAM: messages too long");
        goto out;
    }
    if (scram__hmac(s->mech, s->cred.stored_key, ks, auth, (size_t)n, sig) != 0) {
        err_printf(errmsg, "SCRAM: HMAC failed");
        goto out;
    }
    for (size_t i = 0; i < ks; i++) {
        key[i] = proof[i] ^ sig[i];
    }
    if (scram__hash(s->mech, key, ks, stored) != 0 || !s->known ||
        CRYPTO_memcmp(stored, s->cred.stored_key, ks) != 0) {
        err_printf(errmsg, "SCRAM: wrong user name or password");
        goto out;
    }
    if (scram__hmac(s->mech, s->cred.server_key, ks, auth, (size_t)n, sig) != 0 ||
        cap < 3 + (ks + 2) / 3 * 4 + 1) {
        err_printf(errmsg, "SCRAM: HMAC failed");
        goto out;
    }
    memcpy(out, "v=", 2);
    scram__b64(sig, ks, out + 2, cap - 2);
    rv = 0;
out:
    if (rv != 0) {
        snprintf(out, cap, "%s", fail);
    }
    scram_wipe(key, sizeof key);
    scram_wipe(&s->cred, sizeof s->cred);
    return rv;
}

/* ---- client ------------------------------------------------------------ */

int scram_client_first(struct scram_client *c, enum scram_mech mech, const char *user,
                       const char *client_nonce, char *out, size_t cap, char *errmsg)
{
    char name[SCRAM_USER_MAX * 3];
    size_t k = 0;
    int n;
    memset(c, 0, sizeof *c);
    c->mech = mech;
    if (user == NULL || user[0] == '\0' || strlen(user) >= SCRAM_USER_MAX) {
        err_printf(errmsg, "SCRAM: user name empty or too long");
        return -1;
    }
    for (const char *p = user; *p != '\0'; p++) {
        if (*p == ',' || *p == '=') {
            memcpy(name + k, *p == ',' ? "=2C" : "=3D", 3);
            k += 3;
        } else {
            name[k++] = *p;
        }
    }
    name[k] = '\0';
    if (client_nonce != NULL) {
        snprintf(c->nonce, sizeof c->nonce, "%s", client_nonce);
    } else if (scram__nonce(c->nonce, sizeof c->nonce) != 0) {
        err_printf(errmsg, "SCRAM: no random bytes for the nonce");
        return -1;
    }
    n = snprintf(c->client_first_bare, sizeof c->client_first_bare, "n=%s,r=%s", name, c->nonce);
    if (n < 0 || (size_t)n >= sizeof c->client_first_bare || (size_t)n + 4 > cap) {
        err_printf(errmsg, "SCRAM: client-first-message too long");
        return -1;
    }
    snprintf(out, cap, "n,,%s", c->client_first_bare);
    c->step = 1;
    return 0;
}

int scram_client_final(struct scram_client *c, const char *password, const char *msg,
                       size_t len, char *out, size_t cap, char *errmsg)
{
    size_t ks = scram_key_size(c->mech), pos = 0, vlen, salt_len = 0;
    const char *val;
    char nonce[SCRAM_MSG_MAX / 2], without[SCRAM_MSG_MAX], auth[SCRAM_MSG_MAX * 3];
    char proof64[SCRAM_KEY_MAX * 2];
    uint8_t salt[SCRAM_SALT_MAX * 2], salted[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX];
    uint8_t stored[SCRAM_KEY_MAX], sig[SCRAM_KEY_MAX], server_key[SCRAM_KEY_MAX];
    unsigned long iterations = 0;
    char in[SCRAM_MSG_MAX];
    int n, rv = -1;
    if (c->step != 1 || len >= SCRAM_MSG_MAX) {
        err_printf(errmsg, "SCRAM: out of order or too long");
        return -1;
    }
    c->step = 2;
    /* @out may be @msg's buffer: work on a copy. */
    memcpy(in, msg, len);
    in[len] = '\0';
    msg = in;
    if (len >= 2 && msg[0] == 'e' && msg[1] == '=') {
        err_printf(errmsg, "SCRAM: the server refused: %.*s", (int)(len - 2), msg + 2);
        return -1;
    }
    if (scram__attr(msg, len, &pos, 'r', &val, &vlen) != 0 || vlen >= sizeof nonce ||
        vlen <= strlen(c->nonce) || memcmp(val, c->nonce, strlen(c->nonce)) != 0 ||
        !scram__nonce_ok(val, vlen)) {
        err_printf(errmsg, "SCRAM: the server's nonce does not extend ours");
        return -1;
    }
    memcpy(nonce, val, vlen);
    nonce[vlen] = '\0';
    if (scram__attr(msg, len, &pos, 's', &val, &vlen) != 0 ||
        scram__unb64(val, vlen, salt, sizeof salt, &salt_len) != 0 || salt_len == 0) {
        err_printf(errmsg, "SCRAM: server-first-message has no valid salt");
        return -1;
    }
    if (scram__attr(msg, len, &pos, 'i', &val, &vlen) != 0 || vlen == 0 || vlen > 9) {
        err_printf(errmsg, "SCRAM: server-first-message has no iteration count");
        return -1;
    }
    for (size_t i = 0; i < vlen; i++) {
        if (val[i] < '0' || val[i] > '9') {
            err_printf(errmsg, "SCRAM: bad iteration count");
            return -1;
        }
        iterations = iterations * 10 + (unsigned long)(val[i] - '0');
    }
    if (iterations < SCRAM_MIN_ITERATIONS || iterations > 10000000) {
        err_printf(errmsg, "SCRAM: iteration count %lu out of range", iterations);
        return -1;
    }
    n = snprintf(without, sizeof without, "c=biws,r=%s", nonce);
    if (n < 0 || (size_t)n >= sizeof without) {
        return -1;
    }
    n = snprintf(auth, sizeof auth, "%s,%.*s,%s", c->client_first_bare, (int)len, msg, without);
    if (n < 0 || (size_t)n >= sizeof auth) {
        err_printf(errmsg, "SCRAM: messages too long");
        return -1;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, (int)iterations,
                          scram__md(c->mech), (int)ks, salted) != 1 ||
        scram__hmac(c->mech, salted, ks, "Client Key", 10, client_key) != 0 ||
        scram__hash(c->mech, client_key, ks, stored) != 0 ||
        scram__hmac(c->mech, stored, ks, auth, (size_t)n, sig) != 0 ||
        scram__hmac(c->mech, salted, ks, "Server Key", 10, server_key) != 0 ||
        scram__hmac(c->mech, server_key, ks, auth, (size_t)n, c->server_signature) != 0) {
        err_printf(errmsg, "SCRAM: key derivation failed");
        goto out;
    }
    for (size_t i = 0; i < ks; i++) {
        client_key[i] ^= sig[i]; /* now the proof */
    }
    if (scram__b64(client_key, ks, proof64, sizeof proof64) != 0 ||
        snprintf(out, cap, "%s,p=%s", without, proof64) >= (int)cap) {
        err_printf(errmsg, "SCRAM: client-final-message too long");
        goto out;
    }
    rv = 0;
out:
    scram_wipe(salted, sizeof salted);
    scram_wipe(client_key, sizeof client_key);
    scram_wipe(server_key, sizeof server_key);
    return rv;
}

int scram_client_check(struct scram_client *c, const char *msg, size_t len, char *errmsg)
{
    size_t ks = scram_key_size(c->mech), pos = 0, vlen, slen = 0;
    const char *val;
    uint8_t sig[SCRAM_KEY_MAX];
    if (c->step != 2) {
        err_printf(errmsg, "SCRAM: out of order");
        return -1;
    }
    c->step = 3;
    if (len >= 2 && msg[0] == 'e' && msg[1] == '=') {
        err_printf(errmsg, "SCRAM: the server refused: %.*s", (int)(len - 2 < 100 ? len - 2 : 100),
                   msg + 2);
        return -1;
    }
    if (scram__attr(msg, len, &pos, 'v', &val, &vlen) != 0 ||
        scram__unb64(val, vlen, sig, sizeof sig, &slen) != 0 || slen != ks ||
        CRYPTO_memcmp(sig, c->server_signature, ks) != 0) {
        err_printf(errmsg, "SCRAM: the server's signature is wrong (not the real server?)");
        return -1;
    }
    return 0;
}
