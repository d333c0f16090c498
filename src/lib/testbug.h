/* Doctored bugs for the deterministic simulation (test/sim), each behind a
 * switch that only the simulator sets: they prove that its checks can fail
 * (docs/testing.md, "Simulation"). Production code never sets them; with
 * all switches off (the default) every guarded line is the normal code. */
#ifndef TALLY_LIB_TESTBUG_H_
#define TALLY_LIB_TESTBUG_H_

#include <stdbool.h>

enum testbug {
    TESTBUG_PRODUCER_REPLAY = 1 << 0, /* store open: the producer table is not
                                       * brought forward from the log */
    TESTBUG_APPLY_TWICE = 1 << 1,     /* store apply: an entry the log holds
                                       * already is appended again on replay */
    TESTBUG_CKPT_UNSYNCED = 1 << 2,   /* snapshot: checkpoints are written
                                       * without syncing the logs first */
    TESTBUG_KEYS_LOST = 1 << 3,       /* store open: the key index checkpoint
                                       * is read as empty */
    TESTBUG_ACK_EARLY = 1 << 4,       /* (the simulator's gateway) a write is
                                       * acknowledged when proposed */
};

extern unsigned testbug_switches;

static inline bool testbug(enum testbug b)
{
    return (testbug_switches & (unsigned)b) != 0;
}

#endif
