/* The console page's files, built into tallyd: src/server/ui/embed.sh
 * turns src/server/ui/<file> into the generated ui_assets.c at build time
 * (docs/console.md, How the page is built in). */
#ifndef TALLY_SERVER_UI_ASSETS_H_
#define TALLY_SERVER_UI_ASSETS_H_

#include <stddef.h>

struct ui_assets_file {
    const char *name;          /* file name under /ui/, e.g. "app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* Terminated by an entry whose name is NULL. */
extern const struct ui_assets_file ui_assets[];

#endif
