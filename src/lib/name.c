/* The topic-name rule (name.h). */
#include "lib/name.h"

#include <stdio.h>
#include <string.h>

bool name_topic_check(const char *name, char *why, size_t cap)
{
    char dummy[8];
    size_t n = strlen(name);
    if (why == NULL) {
        why = dummy;
        cap = sizeof dummy;
    }
    if (n == 0) {
        snprintf(why, cap, "topic name is empty: give 1 to %d bytes of A-Z a-z 0-9 . _ -",
                 NAME_TOPIC_MAX);
        return false;
    }
    if (n > NAME_TOPIC_MAX) {
        snprintf(why, cap, "topic name is %zu bytes long: at most %d bytes", n, NAME_TOPIC_MAX);
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, cap, "'%s' cannot be a topic name: '.' and '..' name directories", name);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            if (c > ' ' && c < 0x7f) {
                snprintf(why, cap, "topic name has '%c' at byte %zu: use only A-Z a-z 0-9 . _ -",
                         c, i + 1);
            } else {
                snprintf(why, cap, "topic name has byte 0x%02x at byte %zu: use only "
                                   "A-Z a-z 0-9 . _ -",
                         c, i + 1);
            }
            return false;
        }
    }
    return true;
}
