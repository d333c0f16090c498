/* libFuzzer target: the TLS record path a tallyd port exposes to anyone
 * who connects: a server context built by src/lib/tls.c
 * (tls_server_ctx, TLS 1.2 allowed, client certificates checked when
 * sent) fed the input as the bytes a client sent, through memory BIOs as
 * repl/tlspipe.c does: SSL_do_handshake, then SSL_read until it wants
 * more, and tls_explain on every failure.
 *
 * The certificate and key are made once at start-up with OpenSSL (a
 * P-256 key, a self-signed certificate) and written to temporary files,
 * so that tls_server_ctx loads them as tallyd would. Checks: no crash, no
 * leak, no sanitizer report; tls_explain always writes a NUL-terminated
 * message that starts with "TLS: ". */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/tls.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

static SSL_CTX *ctx;

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz-tls: setup: %s\n", what);
    abort();
}

/* Write a fresh key and self-signed certificate; fill the two paths. */
static void fuzz_make_cert(char *cert_path, char *key_path)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;
    int fd;
    if (pkey == NULL || x == NULL) {
        fuzz_die("key");
    }
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"node1", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (X509_sign(x, pkey, EVP_sha256()) == 0) {
        fuzz_die("sign");
    }
    strcpy(cert_path, "/tmp/fuzz-tls-crt-XXXXXX");
    strcpy(key_path, "/tmp/fuzz-tls-key-XXXXXX");
    if ((fd = mkstemp(cert_path)) < 0 || (f = fdopen(fd, "w")) == NULL ||
        PEM_write_X509(f, x) != 1 || fclose(f) != 0) {
        fuzz_die("write certificate");
    }
    if ((fd = mkstemp(key_path)) < 0 || (f = fdopen(fd, "w")) == NULL ||
        PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0) {
        fuzz_die("write key");
    }
    X509_free(x);
    EVP_PKEY_free(pkey);
}

FUZZ_EXPORT int LLVMFuzzerInitialize(int *argc, char ***argv);
FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char cert[64], key[64], errmsg[ERR_MSG_SIZE];
    struct tls_files f;
    (void)argc;
    (void)argv;
    fuzz_make_cert(cert, key);
    f.cert = cert;
    f.key = key;
    f.ca = cert; /* client certificates, when sent, are checked against it */
    f.allow_tls12 = true;
    ctx = tls_server_ctx(&f, false, errmsg);
    unlink(cert);
    unlink(key);
    if (ctx == NULL) {
        fuzz_die(errmsg);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    char buf[4096], why[300];
    int ret;
    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        abort();
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    if (size > 0 && BIO_write(rbio, data, (int)size) != (int)size) {
        abort();
    }
    ret = SSL_do_handshake(ssl);
    if (ret == 1) {
        size_t k;
        for (int i = 0; i < 64 && SSL_read_ex(ssl, buf, sizeof buf, &k) == 1; i++) {
        }
    } else if (SSL_get_error(ssl, ret) != SSL_ERROR_WANT_READ) {
        why[0] = 'x';
        tls_explain(ssl, ret, why, sizeof why);
        if (memchr(why, '\0', sizeof why) == NULL || strncmp(why, "TLS: ", 5) != 0) {
            fprintf(stderr, "fuzz-tls: bad explanation\n");
            abort();
        }
    }
    /* What the server would send back (the alert, its flight). */
    while (BIO_read(wbio, buf, sizeof buf) > 0) {
    }
    SSL_free(ssl);
    return 0;
}
