/* TLS with OpenSSL 3: contexts, peer checks and blocking use over a
 * non-blocking socket (tls.h).
 *
 * Choices, and why:
 * - TLS 1.3 only unless allow_tls12: 1.3 has no renegotiation, no static
 *   RSA and fewer round trips; 1.2 is there for old clients by option.
 * - The server sends no session tickets (SSL_CTX_set_num_tickets 0):
 *   clients reconnect rarely, and a ticket arriving on an idle connection
 *   would look like unexpected bytes to the clients' "is this connection
 *   still alive" check. tls_fd_idle_ok copes with them anyway.
 * - Client certificates are checked against the CA whenever one is sent;
 *   whether one is required is the caller's choice (Raft links: always). */
#include "lib/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"

int64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reason of OpenSSL's most recent error, and clear the queue. */
static void tls__last_error(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(out, cap, "unknown OpenSSL error");
    } else {
        const char *reason = ERR_reason_error_string(e);
        snprintf(out, cap, "%s", reason != NULL ? reason : "unknown OpenSSL error");
    }
    ERR_clear_error();
}

static int tls__load(SSL_CTX *ctx, const struct tls_files *f, bool need_cert, bool need_ca,
                     char *errmsg)
{
    char why[256];
    bool has_cert = f->cert != NULL && f->cert[0] != '\0';
    bool has_key = f->key != NULL && f->key[0] != '\0';
    bool has_ca = f->ca != NULL && f->ca[0] != '\0';

    if (SSL_CTX_set_min_proto_version(ctx, f->allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) !=
        1) {
        tls__last_error(why, sizeof why);
        err_printf(errmsg, "TLS: minimum version: %s", why);
        return -1;
    }
    if (has_cert != has_key) {
        err_printf(errmsg, "TLS: %s given without %s", has_cert ? "--tls-cert" : "--tls-key",
                   has_cert ? "--tls-key" : "--tls-cert");
        return -1;
    }
    if (need_cert && !has_cert) {
        err_printf(errmsg, "TLS: --tls-cert and --tls-key are required");
        return -1;
    }
    if (need_ca && !has_ca) {
        err_printf(errmsg, "TLS: --tls-ca is required (the CA that signed the peers' "
                           "certificates)");
        return -1;
    }
    if (has_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1) {
            tls__last_error(why, sizeof why);
            err_printf(errmsg, "TLS: certificate %s: %s", f->cert, why);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                err_printf(errmsg, "TLS: private key %s does not match certificate %s", f->key,
                           f->cert);
                return -1;
            }
            tls__last_error(why, sizeof why);
            err_printf(errmsg, "TLS: private key %s: %s", f->key, why);
            return -1;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            err_printf(errmsg, "TLS: private key %s does not match certificate %s", f->key,
                       f->cert);
            return -1;
        }
    }
    if (has_ca && SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1) {
        tls__last_error(why, sizeof why);
        err_printf(errmsg, "TLS: CA file %s: %s", f->ca, why);
        return -1;
    }
    return 0;
}

SSL_CTX *tls_server_ctx(const struct tls_files *f, bool require_peer_cert, char *errmsg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    bool has_ca = f->ca != NULL && f->ca[0] != '\0';
    if (ctx == NULL) {
        err_printf(errmsg, "TLS: out of memory");
        return NULL;
    }
    if (tls__load(ctx, f, true, require_peer_cert, errmsg) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (require_peer_cert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else if (has_ca) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

SSL_CTX *tls_client_ctx(const struct tls_files *f, char *errmsg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        err_printf(errmsg, "TLS: out of memory");
        return NULL;
    }
    if (tls__load(ctx, f, false, true, errmsg) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

int tls_set_load(struct tls_set *s, const struct tls_files *f, bool clients_need_cert,
                 char *errmsg)
{
    struct tls_set n;
    n.clients = tls_server_ctx(f, clients_need_cert, errmsg);
    n.peers_in = n.clients != NULL ? tls_server_ctx(f, true, errmsg) : NULL;
    n.peers_out = n.peers_in != NULL ? tls_client_ctx(f, errmsg) : NULL;
    if (n.peers_out == NULL) {
        tls_set_free(&n);
        return -1;
    }
    /* A node dials its peers with its own certificate, which must say who
     * it is: refuse one that has none to give. */
    if (f->cert == NULL || f->cert[0] == '\0') {
        tls_set_free(&n);
        err_printf(errmsg, "TLS: a node needs --tls-cert");
        return -1;
    }
    *s = n;
    return 0;
}

void tls_set_free(struct tls_set *s)
{
    SSL_CTX_free(s->clients);
    SSL_CTX_free(s->peers_in);
    SSL_CTX_free(s->peers_out);
    s->clients = s->peers_in = s->peers_out = NULL;
}

int tls_expect_host(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    }
    if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        return -1;
    }
    return 0;
}

int tls_peer_name(SSL *ssl, char *out, size_t cap)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    GENERAL_NAMES *sans;
    int n;
    if (cert == NULL || cap == 0) {
        return -1;
    }
    n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)cap);
    if (n > 0 && (size_t)n < cap) {
        return 0;
    }
    sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    n = -1;
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
            int len = ASN1_STRING_length(g->d.dNSName);
            if (len > 0 && (size_t)len < cap && memchr(s, '\0', (size_t)len) == NULL) {
                memcpy(out, s, (size_t)len);
                out[len] = '\0';
                n = 0;
                break;
            }
        }
    }
    GENERAL_NAMES_free(sans);
    return n;
}

int tls_check_node(SSL *ssl, uint64_t id, const char *ip, char *why, size_t cap)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    char cn[128], want[64];
    if (cert == NULL) {
        snprintf(why, cap, "no certificate");
        return -1;
    }
    snprintf(want, sizeof want, TLS_NODE_CN_PREFIX "%llu", (unsigned long long)id);
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                  (int)sizeof cn) <= 0) {
        snprintf(why, cap, "certificate has no common name (want CN=%s)", want);
        return -1;
    }
    if (strcmp(cn, want) != 0) {
        snprintf(why, cap, "certificate is for CN=%s, not CN=%s", cn, want);
        return -1;
    }
    if (ip != NULL && X509_check_ip_asc(cert, ip, 0) != 1) {
        snprintf(why, cap, "certificate CN=%s has no IP address %s in its subjectAltName", cn,
                 ip);
        return -1;
    }
    return 0;
}

void tls_explain(SSL *ssl, int ret, char *out, size_t cap)
{
    int e = SSL_get_error(ssl, ret);
    long verify = SSL_get_verify_result(ssl);
    char why[256];
    if (e == SSL_ERROR_SSL && verify != X509_V_OK) {
        snprintf(out, cap, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return;
    }
    if (e == SSL_ERROR_SSL) {
        unsigned long code = ERR_peek_last_error();
        tls__last_error(why, sizeof why);
        if (ERR_GET_REASON(code) == SSL_R_WRONG_VERSION_NUMBER ||
            ERR_GET_REASON(code) == SSL_R_PACKET_LENGTH_TOO_LONG ||
            ERR_GET_REASON(code) == SSL_R_RECORD_LENGTH_MISMATCH) {
            snprintf(out, cap, "TLS: the peer does not speak TLS (%s): is TLS enabled on it?",
                     why);
        } else {
            snprintf(out, cap, "TLS: %s", why);
        }
        return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(out, cap, "TLS: the peer closed the connection");
        return;
    }
    if (e == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        if (errno != 0 && ret < 0) {
            snprintf(out, cap, "TLS: %s", strerror(errno));
        } else {
            snprintf(out, cap, "TLS: the peer closed the connection (it may not speak TLS, "
                               "or refused our certificate)");
        }
        return;
    }
    ERR_clear_error();
    snprintf(out, cap, "TLS: error %d", e);
}

/* Wait for what SSL_get_error asked for. */
static int tls__wait(SSL *ssl, int ssl_err, int64_t deadline_ms, bool *timed_out, char *errmsg,
                     size_t cap)
{
    int fd = SSL_get_fd(ssl);
    struct pollfd p = {.fd = fd, .events = ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
    for (int i = 0; i < 100000; i++) {
        int64_t left = deadline_ms - tls_now_ms();
        int rv;
        if (left <= 0) {
            if (timed_out != NULL) {
                *timed_out = true;
            }
            snprintf(errmsg, cap, "TLS: timed out");
            return -1;
        }
        rv = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rv > 0) {
            return 0;
        }
        if (rv < 0 && errno != EINTR) {
            snprintf(errmsg, cap, "TLS: poll: %s", strerror(errno));
            return -1;
        }
    }
    snprintf(errmsg, cap, "TLS: poll kept failing");
    return -1;
}

/* Handle a TLS call's result: 1 = call again after waiting, -1 = failed. */
static int tls__retry(SSL *ssl, int ret, int64_t deadline_ms, bool *timed_out, char *errmsg,
                      size_t cap)
{
    int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return tls__wait(ssl, e, deadline_ms, timed_out, errmsg, cap) == 0 ? 1 : -1;
    }
    if (e == SSL_ERROR_SYSCALL && errno == EINTR) {
        return 1;
    }
    tls_explain(ssl, ret, errmsg, cap);
    return -1;
}

int tls_fd_handshake(SSL *ssl, int64_t deadline_ms, bool *timed_out, char *errmsg, size_t cap)
{
    for (;;) {
        int ret;
        errno = 0;
        ret = SSL_do_handshake(ssl);
        if (ret == 1) {
            return 0;
        }
        if (tls__retry(ssl, ret, deadline_ms, timed_out, errmsg, cap) != 1) {
            return -1;
        }
    }
}

int tls_fd_send(SSL *ssl, const void *p, size_t n, int64_t deadline_ms, bool *timed_out,
                char *errmsg, size_t cap)
{
    size_t done = 0;
    while (done < n) {
        size_t k = 0;
        int ret;
        errno = 0;
        ret = SSL_write_ex(ssl, (const char *)p + done, n - done, &k);
        if (ret == 1) {
            done += k;
            continue;
        }
        if (tls__retry(ssl, ret, deadline_ms, timed_out, errmsg, cap) != 1) {
            return -1;
        }
    }
    return 0;
}

ssize_t tls_fd_recv(SSL *ssl, void *p, size_t n, int64_t deadline_ms, bool *timed_out,
                    char *errmsg, size_t cap)
{
    for (;;) {
        size_t k = 0;
        int ret;
        errno = 0;
        ret = SSL_read_ex(ssl, p, n, &k);
        if (ret == 1) {
            return (ssize_t)k;
        }
        if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN) {
            return 0;
        }
        if (tls__retry(ssl, ret, deadline_ms, timed_out, errmsg, cap) != 1) {
            return -1;
        }
    }
}

bool tls_fd_idle_ok(SSL *ssl)
{
    struct pollfd p = {.fd = SSL_get_fd(ssl), .events = POLLIN};
    unsigned char b;
    size_t k = 0;
    int ret;
    if (SSL_pending(ssl) > 0) {
        return false; /* data nobody asked for */
    }
    if (poll(&p, 1, 0) == 0) {
        return true;
    }
    ret = SSL_peek_ex(ssl, &b, 1, &k);
    if (ret == 1) {
        return false;
    }
    if (SSL_get_error(ssl, ret) == SSL_ERROR_WANT_READ) {
        return true; /* only records without data (a ticket, a key update) */
    }
    ERR_clear_error();
    return false;
}
