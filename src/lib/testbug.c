/* The doctored-bug switches (testbug.h): all off outside test/sim. */
#include "lib/testbug.h"

unsigned testbug_switches;
