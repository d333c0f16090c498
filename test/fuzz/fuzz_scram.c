/* libFuzzer target: the SCRAM message parsers (src/lib/scram.c), both
 * sides, for both mechanisms.
 *
 * Input: a mode byte, then two messages separated by the first NUL byte.
 * Mode bit 0 clear: the server side: message 1 is a client-first-message
 * (scram_server_start), and if it is accepted, the server answers with
 * known credentials (bit 2 set) or as for an unknown user, and message 2
 * goes to scram_server_final. Bit 0 set: the client side: after a real
 * client-first, message 1 is a server-first-message
 * (scram_client_final) and message 2 a server-final-message
 * (scram_client_check). Bit 1 picks SCRAM-SHA-512.
 *
 * Beyond ASan/UBSan, it checks: a final message the server accepts can
 * only come from someone who knows the password, so with fuzzed input
 * scram_server_final must never succeed; a server answer is always an
 * "e=" or a "v=" attribute, NUL-terminated.
 *
 * The client derives its key with the iteration count the server-first
 * names (up to 10,000,000, as a real server may ask), so an input naming
 * millions takes seconds by design and libFuzzer would report it as a
 * slow unit. Inputs whose "i=" value has more than five digits are
 * skipped: the parser's range check is covered by the unit tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/scram.h"

#define FUZZ_EXPORT __attribute__((visibility("default")))

/* Whether a server-first-message names an iteration count of over five
 * digits (see the top of this file). */
static int names_slow_iteration_count(const char *m, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (m[i] == 'i' && m[i + 1] == '=' && (i == 0 || m[i - 1] == ',')) {
            size_t digits = 0;
            for (size_t j = i + 2; j < len && m[j] >= '0' && m[j] <= '9'; j++) {
                digits++;
            }
            if (digits > 5) {
                return 1;
            }
        }
    }
    return 0;
}

static struct scram_credentials cred256, cred512;
static int ready;

static void fuzz_setup(void)
{
    char errmsg[ERR_MSG_SIZE];
    static const uint8_t salt[16] = "fuzz-salt-16byte";
    if (ready) {
        return;
    }
    if (scram_make_credentials(SCRAM_SHA_256, "pencil", salt, sizeof salt, 4096, &cred256,
                               errmsg) != 0 ||
        scram_make_credentials(SCRAM_SHA_512, "pencil", salt, sizeof salt, 4096, &cred512,
                               errmsg) != 0) {
        fprintf(stderr, "fuzz-scram: setup: %s\n", errmsg);
        abort();
    }
    ready = 1;
}

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[ERR_MSG_SIZE], out[SCRAM_MSG_MAX];
    const char *m1, *m2;
    size_t l1, l2;
    const uint8_t *nul;
    uint8_t mode;
    enum scram_mech mech;
    fuzz_setup();
    if (size < 1) {
        return 0;
    }
    mode = data[0];
    mech = (mode & 2) ? SCRAM_SHA_512 : SCRAM_SHA_256;
    m1 = (const char *)data + 1;
    nul = memchr(data + 1, 0, size - 1);
    l1 = nul != NULL ? (size_t)(nul - (data + 1)) : size - 1;
    m2 = nul != NULL ? (const char *)nul + 1 : "";
    l2 = nul != NULL ? size - 1 - l1 - 1 : 0;
    if ((mode & 1) == 0) {
        struct scram_server s;
        if (scram_server_start(&s, mech, m1, l1, errmsg) != 0) {
            return 0;
        }
        const struct scram_credentials *c =
            (mode & 4) ? (mech == SCRAM_SHA_512 ? &cred512 : &cred256) : NULL;
        if (scram_server_first(&s, c, NULL, out, sizeof out, errmsg) != 0) {
            return 0;
        }
        /* The server nonce is random: fuzzed input cannot know it, nor the
         * proof. */
        if (scram_server_final(&s, m2, l2, out, sizeof out, errmsg) == 0) {
            fprintf(stderr, "fuzz-scram: a fuzzed client-final was accepted\n");
            abort();
        }
        if (memchr(out, '\0', sizeof out) == NULL || (out[0] != 'e' && out[0] != 'v')) {
            fprintf(stderr, "fuzz-scram: bad server answer\n");
            abort();
        }
    } else {
        struct scram_client c;
        if (names_slow_iteration_count(m1, l1)) {
            return 0;
        }
        if (scram_client_first(&c, mech, "user", "fuzznonce", out, sizeof out, errmsg) != 0) {
            abort();
        }
        if (scram_client_final(&c, "pencil", m1, l1, out, sizeof out, errmsg) != 0) {
            return 0;
        }
        (void)scram_client_check(&c, m2, l2, errmsg);
    }
    return 0;
}
