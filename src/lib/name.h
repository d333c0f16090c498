/* The topic-name rule, one for the client and the server, so that both
 * refuse the same names for the same reason. */
#ifndef TALLY_LIB_NAME_H_
#define TALLY_LIB_NAME_H_

#include <stdbool.h>
#include <stddef.h>

/* Longest topic name, in bytes: a topic is a directory DATA/topics/NAME,
 * and its files' names add up to 6 bytes to it within NAME_MAX (255). */
#define NAME_TOPIC_MAX 249

/* True if @name is a valid topic name: 1..NAME_TOPIC_MAX bytes of
 * [A-Za-z0-9._-], and not "." or ".." (which name directories). Else false,
 * with the reason in @why (@cap bytes; may be NULL), a phrase that fits a
 * one-line message: "topic name ...". */
bool name_topic_check(const char *name, char *why, size_t cap);

#endif
