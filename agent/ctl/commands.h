/* commands.h - the daemon's side of every control request: status, history, approve,
 * reject, rollback, pause, resume. */
#ifndef HS_CTL_COMMANDS_H
#define HS_CTL_COMMANDS_H

#include "ctl/proto.h"

/* The ctl server's handler; ud is the struct hs_daemon. Fills resp; returns resp's status. */
int ctl_commands_handle(void *ud, const struct ctl_request *req, struct ctl_response *resp);

#endif
