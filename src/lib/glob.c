/* Key filters: a small glob over bytes (glob.h). */
#include "lib/glob.h"

#include <stdio.h>

bool glob_check(const uint8_t *p, size_t n, char *why, size_t cap)
{
    unsigned stars = 0;
    const char *bad = NULL;
    if (n == 0) {
        bad = "the filter is empty";
    } else if (n > GLOB_MAX) {
        bad = "the filter is longer than 256 bytes";
    }
    for (size_t i = 0; bad == NULL && i < n; i++) {
        if (p[i] == '\\') {
            if (++i == n) {
                bad = "the filter ends with a lone '\\' (write '\\\\' for a backslash)";
            }
        } else if (p[i] == '*' && ++stars > GLOB_MAX_STARS) {
            bad = "the filter has more than 8 '*'";
        }
    }
    if (bad != NULL && why != NULL && cap > 0) {
        snprintf(why, cap, "%s", bad);
    }
    return bad == NULL;
}

/* The byte the pattern element at @i stands for (after a '\'), and where
 * the next element starts. */
static uint8_t glob__literal(const uint8_t *p, size_t *i)
{
    if (p[*i] == '\\') {
        (*i)++;
    }
    return p[(*i)++];
}

bool glob_match(const uint8_t *p, size_t n, const uint8_t *key, size_t klen)
{
    /* The classic two-pointer match: on a mismatch, go back to the last
     * '*' and let it eat one more byte. Only the last star needs to be
     * remembered, because any earlier one could only eat what it eats
     * now or more, which the last one can take over. */
    size_t pi = 0, ki = 0;
    size_t star_p = SIZE_MAX, star_k = 0;
    while (ki < klen) {
        if (pi < n && p[pi] == '*') {
            star_p = ++pi;
            star_k = ki;
            continue;
        }
        if (pi < n) {
            size_t next = pi;
            bool any = p[pi] == '?';
            uint8_t want = any ? 0 : glob__literal(p, &next);
            if (any) {
                next = pi + 1;
            }
            if (any || want == key[ki]) {
                pi = next;
                ki++;
                continue;
            }
        }
        if (star_p == SIZE_MAX) {
            return false;
        }
        pi = star_p;
        ki = ++star_k;
    }
    while (pi < n && p[pi] == '*') {
        pi++;
    }
    return pi == n;
}
