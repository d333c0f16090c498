/* tallyd: one node of a tally cluster. argv -> cfg -> srv, nothing else. */
#include <stdio.h>

#include "lib/err.h"
#include "lib/logger.h"
#include "server/cfg.h"
#include "server/srv.h"

int main(int argc, char **argv)
{
    struct cfg cfg;
    char errmsg[ERR_MSG_SIZE] = "";
    int rv = cfg_load(&cfg, argc, argv, errmsg);
    if (rv == 1) {
        return 0; /* --help or --version */
    }
    if (rv != 0) {
        fprintf(stderr, "tallyd: %s\n", errmsg);
        fprintf(stderr, "Try 'tallyd --help'.\n");
        return 2;
    }
    logger_set_level(cfg.log_level);
    return srv_run(&cfg);
}
