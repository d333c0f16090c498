/* Unit tests of the console's query strings (src/server/ui_query.c), its
 * JSON writer (src/server/ui_json.c) and its logins (src/server/ui_auth.c):
 * every rule that turns a request into 400, the escapes and base64 the
 * page decodes, the HTTP Basic headers taken and refused, and the cache
 * of checked logins (PBKDF2 once per login; a user set again or removed
 * stops matching). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/ui_auth.h"
#include "server/ui_json.h"
#include "server/ui_query.h"

/* Parse @q against the parameters "topic", "from" and "key". */
static int parse(const char *q, struct ui_query_param p[3], char *why)
{
    memset(p, 0, 3 * sizeof p[0]);
    p[0].name = "topic";
    p[1].name = "from";
    p[2].name = "key";
    why[0] = '\0';
    return ui_query_parse(q, p, 3, why, 256);
}

static void test_ui_query_good(void **state)
{
    struct ui_query_param p[3];
    char why[256];
    (void)state;
    assert_int_equal(parse("", p, why), 0);
    assert_false(p[0].set || p[1].set || p[2].set);
    assert_int_equal(parse("topic=orders&from=12", p, why), 0);
    assert_true(p[0].set && p[1].set && !p[2].set);
    assert_string_equal(p[0].value, "orders");
    assert_int_equal(p[0].len, 6);
    assert_string_equal(p[1].value, "12");
    /* percent-encoding, '+' as a space, bytes beyond ASCII, empty value */
    assert_int_equal(parse("key=a%2Fb+c%C3%A9%26&topic=", p, why), 0);
    assert_string_equal(p[2].value, "a/b c\xc3\xa9&");
    assert_int_equal(p[2].len, 8);
    assert_true(p[0].set);
    assert_int_equal(p[0].len, 0);
    assert_int_equal(parse("k%65y=x", p, why), 0); /* an encoded name */
    assert_string_equal(p[2].value, "x");
}

static void test_ui_query_bad(void **state)
{
    static const struct {
        const char *q, *why;
    } bad[] = {
        {"what=1", "unknown parameter 'what'"},
        {"topic=a&topic=b", "parameter 'topic' given twice"},
        {"topic", "not NAME=VALUE"},
        {"=x", "not NAME=VALUE"},
        {"topic=a&", "ends with '&'"},
        {"&topic=a", "empty parameter"},
        {"topic=a&&from=1", "empty parameter"},
        {"key=%zz", "malformed percent-encoding"},
        {"key=%4", "malformed percent-encoding"},
        {"key=%", "malformed percent-encoding"},
        {"key=%00", "malformed percent-encoding"},
        {"key=a%0", "malformed percent-encoding"},
    };
    struct ui_query_param p[3];
    char why[256];
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i].q, p, why), 400);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("%s: '%s' lacks '%s'", bad[i].q, why, bad[i].why);
        }
    }
    /* Longest accepted and shortest refused query. */
    char q[UI_MAX_QUERY + 2];
    memcpy(q, "key=", 4);
    memset(q + 4, 'a', UI_MAX_QUERY - 4);
    q[UI_MAX_QUERY] = '\0';
    assert_int_equal(parse(q, p, why), 0);
    assert_int_equal(p[2].len, UI_MAX_QUERY - 4);
    q[UI_MAX_QUERY] = 'a';
    q[UI_MAX_QUERY + 1] = '\0';
    assert_int_equal(parse(q, p, why), 400);
    assert_non_null(strstr(why, "too long"));
}

static void test_ui_query_number(void **state)
{
    struct ui_query_param p = {.name = "n"};
    uint64_t v = 7;
    (void)state;
    static const char *const good[] = {"0", "42", "9223372036854775807", "0000000000000000001"};
    static const uint64_t want[] = {0, 42, 9223372036854775807ull, 1};
    for (size_t i = 0; i < 4; i++) {
        p.len = strlen(good[i]);
        memcpy(p.value, good[i], p.len + 1);
        assert_true(ui_query_number(&p, &v));
        assert_int_equal(v, want[i]);
    }
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1e3", "0x10",
                                      "12345678901234567890"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.len = strlen(bad[i]);
        memcpy(p.value, bad[i], p.len + 1);
        if (ui_query_number(&p, &v)) {
            fail_msg("'%s' taken as a number", bad[i]);
        }
    }
}

static void test_ui_json(void **state)
{
    struct buf b;
    (void)state;
    /* RFC 4648 section 10 test vectors. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"\"\"", "\"Zg==\"", "\"Zm8=\"", "\"Zm9v\"", "\"Zm9vYg==\"",
                                      "\"Zm9vYmE=\"", "\"Zm9vYmFy\""};
    for (size_t i = 0; i < 7; i++) {
        buf_init(&b);
        ui_json_base64(&b, in[i], strlen(in[i]));
        buf_put_u8(&b, 0);
        assert_string_equal((char *)b.data, out[i]);
        buf_free(&b);
    }
    buf_init(&b);
    ui_json_str(&b, "a\"b\\c\n\x01\xff", 8);
    buf_put_u8(&b, 0);
    assert_string_equal((char *)b.data, "\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\"");
    buf_free(&b);
    buf_init(&b);
    ui_json_error(&b, "no topic \"x\"");
    buf_put_u8(&b, 0);
    assert_string_equal((char *)b.data, "{\"error\": \"no topic \\\"x\\\"\"}\n");
    buf_free(&b);
}

static int basic(const char *header, char *user, char *pw, size_t *len)
{
    return ui_auth_parse_basic(header, user, pw, len);
}

static void test_ui_auth_basic(void **state)
{
    char user[USERS_NAME_MAX], pw[UI_AUTH_PASSWORD_MAX + 1];
    size_t len = 0;
    (void)state;
    /* alice:secret, the scheme in any case, blanks around */
    assert_int_equal(basic("Basic YWxpY2U6c2VjcmV0", user, pw, &len), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pw, "secret");
    assert_int_equal(len, 6);
    assert_int_equal(basic("basic   YWxpY2U6c2VjcmV0  ", user, pw, &len), 0);
    assert_string_equal(user, "alice");
    /* the password may hold ':' (the user ends at the first), or be empty:
     * "bob:a:b" and "bob:" */
    assert_int_equal(basic("Basic Ym9iOmE6Yg==", user, pw, &len), 0);
    assert_string_equal(user, "bob");
    assert_string_equal(pw, "a:b");
    assert_int_equal(basic("Basic Ym9iOg==", user, pw, &len), 0);
    assert_string_equal(pw, "");
    assert_int_equal(len, 0);
    /* UTF-8 passes through: "j\xc3\xb6rg:p\xc3\xa4ss" */
    assert_int_equal(basic("Basic asO2cmc6cMOkc3M=", user, pw, &len), 0);
    assert_string_equal(user, "j\xc3\xb6rg");
    assert_string_equal(pw, "p\xc3\xa4ss");
    static const char *const bad[] = {
        "",                          /* none */
        "Basic",                     /* no credentials */
        "Basic ",
        "BasicYWxpY2U6c2VjcmV0",     /* no blank after the scheme */
        "Bearer YWxpY2U6c2VjcmV0",   /* another scheme */
        "Digest username=\"alice\"",
        "Basic YWxpY2U",             /* not padded */
        "Basic YWxpY2U6c2VjcmV0=",   /* length not a multiple of 4 */
        "Basic YWxp!2U6c2VjcmV0",     /* not base64 */
        "Basic YW=pY2U6c2VjcmV0",     /* '=' inside */
        "Basic YWxpY2U6c2VjcmV0 YQ==", /* two tokens */
        "Basic YWxpY2U=",            /* "alice": no ':' */
        "Basic OnNlY3JldA==",        /* ":secret": no user */
        "Basic YQliOmM=",            /* "a\tb:c": a control character in the name */
        "Basic YTpiAGM=",            /* "a:b\0c": NUL in the password */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (basic(bad[i], user, pw, &len) == 0) {
            fail_msg("'%s' taken", bad[i]);
        }
    }
    /* Longest user name and password taken, one byte more refused. */
    char raw[USERS_NAME_MAX + UI_AUTH_PASSWORD_MAX + 8], hdr[1024];
    struct buf b;
    for (int extra = 0; extra < 3; extra++) {
        size_t ul = USERS_NAME_MAX - 1 + (extra == 1), pl = UI_AUTH_PASSWORD_MAX + (extra == 2);
        memset(raw, 'u', ul);
        raw[ul] = ':';
        memset(raw + ul + 1, 'p', pl);
        buf_init(&b);
        ui_json_base64(&b, raw, ul + 1 + pl);
        snprintf(hdr, sizeof hdr, "Basic %.*s", (int)b.len - 2, (const char *)b.data + 1);
        buf_free(&b);
        assert_int_equal(basic(hdr, user, pw, &len), extra == 0 ? 0 : -1);
    }
    assert_int_equal(len, UI_AUTH_PASSWORD_MAX);
}

/* Set user @name with password @pw (SCRAM-SHA-256, 4096 iterations) as
 * the USER command does. */
static void set_user(struct users *u, const char *name, const char *pw)
{
    struct users_entry e;
    struct buf b;
    struct rd r;
    char why[256], err[256];
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "%s", name);
    assert_int_equal(scram_make_credentials(SCRAM_SHA_256, pw, NULL, 0, 4096, &e.cred[0], err), 0);
    buf_init(&b);
    buf_put_u8(&b, USERS_OP_SET);
    users_encode_entry(&e, &b);
    rd_init(&r, b.data, b.len);
    assert_int_equal(users_apply(u, &r, why, sizeof why), 0);
    buf_free(&b);
}

static void remove_user(struct users *u, const char *name)
{
    struct buf b;
    struct rd r;
    char why[256];
    buf_init(&b);
    buf_put_u8(&b, USERS_OP_REMOVE);
    buf_put_str(&b, name);
    rd_init(&r, b.data, b.len);
    assert_int_equal(users_apply(u, &r, why, sizeof why), 0);
    buf_free(&b);
}

static bool check(struct ui_auth *a, struct users *u, const char *user, const char *pw)
{
    return ui_auth_check(a, u, user, pw, strlen(pw));
}

static void test_ui_auth_cache(void **state)
{
    struct ui_auth a;
    struct users u;
    (void)state;
    users_init(&u);
    assert_int_equal(ui_auth_init(&a), 0);
    set_user(&u, "alice", "pw-a");
    set_user(&u, "bob", "pw-b");
    /* Right: PBKDF2 once, then from the cache. */
    assert_true(check(&a, &u, "alice", "pw-a"));
    assert_int_equal(a.derivations, 1);
    for (int i = 0; i < 5; i++) {
        assert_true(check(&a, &u, "alice", "pw-a"));
    }
    assert_int_equal(a.derivations, 1);
    /* Wrong passwords are checked every time and never remembered; an
     * unknown user costs a derivation too (the time does not tell). */
    assert_false(check(&a, &u, "alice", "pw-b"));
    assert_false(check(&a, &u, "alice", "pw-b"));
    assert_int_equal(a.derivations, 3);
    assert_false(check(&a, &u, "bob", "pw-a"));
    assert_false(check(&a, &u, "carol", "pw-a"));
    assert_int_equal(a.derivations, 5);
    assert_false(check(&a, &u, "alice", "pw-a-")); /* a longer password */
    assert_true(check(&a, &u, "bob", "pw-b"));
    assert_true(check(&a, &u, "alice", "pw-a"));
    assert_int_equal(a.derivations, 7);
    /* The cache keeps no password: only tags. */
    for (unsigned i = 0; i < UI_AUTH_CACHE; i++) {
        assert_null(memmem(&a.e[i], sizeof a.e[i], "pw-a", 4));
    }
    /* A new password (new salt and keys): the old one stops working at
     * once, the new one is checked once. */
    set_user(&u, "alice", "pw-a2");
    assert_false(check(&a, &u, "alice", "pw-a"));
    assert_true(check(&a, &u, "alice", "pw-a2"));
    assert_true(check(&a, &u, "alice", "pw-a2"));
    assert_int_equal(a.derivations, 9);
    /* Removed: refused, whatever the cache holds; set again with the same
     * password: a new salt, so checked again. */
    remove_user(&u, "alice");
    assert_false(check(&a, &u, "alice", "pw-a2"));
    set_user(&u, "alice", "pw-a2");
    assert_true(check(&a, &u, "alice", "pw-a2"));
    assert_int_equal(a.derivations, 11);
    /* Bounded: with more logins than slots, the least recently used goes
     * and bob, used all along, stays. */
    char name[16], pw[16];
    for (unsigned i = 0; i < UI_AUTH_CACHE; i++) {
        snprintf(name, sizeof name, "u%02u", i);
        snprintf(pw, sizeof pw, "p%02u", i);
        set_user(&u, name, pw);
        assert_true(check(&a, &u, name, pw));
        assert_true(check(&a, &u, "bob", "pw-b"));
    }
    uint64_t d = a.derivations;
    assert_true(check(&a, &u, "bob", "pw-b"));
    assert_true(check(&a, &u, "u15", "p15"));
    assert_int_equal(a.derivations, d);
    assert_true(check(&a, &u, "u00", "p00")); /* pushed out */
    assert_int_equal(a.derivations, d + 1);
    ui_auth_wipe(&a);
    assert_true(check(&a, &u, "bob", "pw-b"));
    assert_int_equal(a.derivations, d + 2);
    users_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_query_good),
        cmocka_unit_test(test_ui_query_bad),
        cmocka_unit_test(test_ui_query_number),
        cmocka_unit_test(test_ui_json),
        cmocka_unit_test(test_ui_auth_basic),
        cmocka_unit_test(test_ui_auth_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
