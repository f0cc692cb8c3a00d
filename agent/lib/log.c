/* log.c - stderr or syslog, with a maximum level (-v raises it to DEBUG).
 *
 * Every message is formatted once into a buffer and passed as "%s": a message is never a
 * format string. Before log_open() messages go to stderr at INFO, so that early errors
 * (bad arguments, bad configuration) are always seen.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static bool log_foreground = true;
static bool log_syslog_open;
static int log_max_level = LOG_INFO;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",	[LOG_CRIT] = "crit", [LOG_ERR] = "error",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_open(const char *ident, bool foreground, int max_level)
{
	log_foreground = foreground;
	log_max_level = max_level;
	if (!foreground) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog_open = true;
	}
}

void log_set_max_level(int max_level)
{
	log_max_level = max_level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

void log_close(void)
{
	if (log_syslog_open)
		closelog();
	log_syslog_open = false;
	log_foreground = true;
}

static void log_emit(int level, const char *msg)
{
	if (level > log_max_level)
		return;
	if (!log_foreground && log_syslog_open) {
		syslog(level, "%s", msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %-7s %s\n", stamp, ts.tv_nsec / 1000000,
		level >= 0 && level <= LOG_DEBUG ? level_names[level] : "?", msg);
}

void log_msg(int level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(level, buf);
}

int log_errno_at(int level, int err, const char *fmt, ...)
{
	char buf[2048];
	size_t n;
	va_list ap;

	if (level > log_max_level)
		return err;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err < 0 ? -err : err));
	log_emit(level, buf);
	return err;
}
