/* `tally log verify|dump`: offline check and dump of a node's data
 * directory, or of one topic folder, read-only (links liblog). */
#ifndef TALLY_TOOL_CMD_LOG_H_
#define TALLY_TOOL_CMD_LOG_H_

/* argv[0] is "log". Returns the process exit status: 0 healthy / printed,
 * 1 damage found or an error, 2 bad usage. */
int cmd_log_main(int argc, char **argv);

#endif
