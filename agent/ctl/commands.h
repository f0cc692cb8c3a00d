/* commands.h - the daemon's side of every control request: status, history, explain, approve,
 * reject, rollback, pause, resume, profile. */
#ifndef HS_CTL_COMMANDS_H
#define HS_CTL_COMMANDS_H

#include "ctl/proto.h"

/* The ctl server's handler; ud is the struct hs_daemon. Fills resp and returns its status, or
 * returns CTL_DEFERRED (server.h) when the answer comes later (profile). */
int ctl_commands_handle(void *ud, const struct ctl_request *req, struct ctl_response *resp);

#endif
