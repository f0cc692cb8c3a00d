/* log.h - the one logging interface of homeostat.
 *
 * In the foreground messages go to stderr with their level; otherwise to syslog. Levels
 * follow STYLE.md: ERR (failure passed up), WARNING (survived, ", ignoring"), NOTICE (every
 * change, verdict and rollback), INFO (lifecycle), DEBUG (the rest, libbpf included).
 * Library-like code logs at DEBUG at most and returns -errno; its caller logs once.
 */
#ifndef HS_LOG_H
#define HS_LOG_H

#include <stdbool.h>
#include <syslog.h>

#include "util.h"

void log_open(const char *ident, bool foreground, int max_level);
void log_set_max_level(int max_level);
int log_get_max_level(void);
void log_close(void);

void log_msg(int level, const char *fmt, ...) HS_PRINTF(2, 3);
/* Logs "message: strerror(-err)" and returns err (which is negative). */
int log_errno_at(int level, int err, const char *fmt, ...) HS_PRINTF(3, 4);

#define log_err(...)		 log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)		 log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)		 log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)		 log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)		 log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_errno(err, ...)	 log_errno_at(LOG_ERR, (err), __VA_ARGS__)
#define log_warn_errno(err, ...) log_errno_at(LOG_WARNING, (err), __VA_ARGS__)

#endif
