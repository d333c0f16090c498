/* Key filters (issue 18, category subscriptions): a small glob over bytes.
 *
 *   *   any run of bytes (also none)
 *   ?   any one byte
 *   \x  the byte x itself (\*, \?, \\)
 *   any other byte matches itself.
 *
 * So `order-123` is an exact key, `order-*` a prefix (a category), and
 * `order-*-eu` or `acct-??` small globs. A pattern is 1..GLOB_MAX bytes,
 * holds at most GLOB_MAX_STARS stars and does not end in a lone '\'.
 * Matching costs at most (pattern length x key length) steps. Shared by
 * the server (which filters) and libtally (which refuses a bad pattern
 * before sending it). */
#ifndef TALLY_LIB_GLOB_H_
#define TALLY_LIB_GLOB_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GLOB_MAX 256
#define GLOB_MAX_STARS 8

/* true if @p (@n bytes) is a valid pattern; else false and a reason in
 * @why (@cap bytes, may be NULL). */
bool glob_check(const uint8_t *p, size_t n, char *why, size_t cap);

/* Does @key (@klen bytes) match the valid pattern @p (@n bytes)? */
bool glob_match(const uint8_t *p, size_t n, const uint8_t *key, size_t klen);

#endif
