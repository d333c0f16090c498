/* Query strings of the console's requests; see ui_query.h. */
#include "server/ui_query.h"

#include <stdio.h>
#include <string.h>

static int ui_query__hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode @s[0..n) into @out (cap bytes, NUL-terminated); '+' is a
 * space. false on a bad escape or an encoded NUL. */
static bool ui_query__decode(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? ui_query__hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? ui_query__hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return false;
            }
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (k + 1 >= cap) {
            return false;
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    *len = k;
    return true;
}

int ui_query_parse(const char *query, struct ui_query_param *params, unsigned n, char *why,
                           size_t cap)
{
    size_t qlen = strlen(query);
    if (qlen > UI_MAX_QUERY) {
        snprintf(why, cap, "query string too long: %zu bytes (at most %u)", qlen,
                 (unsigned)UI_MAX_QUERY);
        return 400;
    }
    const char *p = query;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        char name[64];
        size_t nlen;
        if (plen == 0) {
            snprintf(why, cap, "malformed query string: empty parameter");
            return 400;
        }
        if (eq == NULL || !ui_query__decode(p, (size_t)(eq - p), name, sizeof name, &nlen) ||
            nlen == 0) {
            snprintf(why, cap, "malformed query string: a parameter is not NAME=VALUE");
            return 400;
        }
        struct ui_query_param *prm = NULL;
        for (unsigned i = 0; i < n; i++) {
            prm = strcmp(params[i].name, name) == 0 ? &params[i] : prm;
        }
        if (prm == NULL) {
            snprintf(why, cap, "unknown parameter '%.40s'", name);
            return 400;
        }
        if (prm->set) {
            snprintf(why, cap, "parameter '%s' given twice", name);
            return 400;
        }
        if (!ui_query__decode(eq + 1, plen - (size_t)(eq + 1 - p), prm->value, sizeof prm->value,
                        &prm->len)) {
            snprintf(why, cap, "parameter '%s': malformed percent-encoding", name);
            return 400;
        }
        prm->set = true;
        p += plen;
        if (*p == '&') {
            p++;
            if (*p == '\0') {
                snprintf(why, cap, "malformed query string: ends with '&'");
                return 400;
            }
        }
    }
    return 0;
}

bool ui_query_number(const struct ui_query_param *p, uint64_t *out)
{
    uint64_t v = 0;
    if (p->len == 0 || p->len > 19) {
        return false;
    }
    for (size_t i = 0; i < p->len; i++) {
        if (p->value[i] < '0' || p->value[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(p->value[i] - '0');
    }
    *out = v;
    return true;
}
