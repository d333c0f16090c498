/* tally backup / tally restore (cmd_backup.c). */
#ifndef TALLY_TOOL_CMD_BACKUP_H_
#define TALLY_TOOL_CMD_BACKUP_H_

int cmd_backup_main(int argc, char **argv);
int cmd_restore_main(int argc, char **argv);

#endif
