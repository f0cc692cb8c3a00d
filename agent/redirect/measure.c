/* measure.c - function latency of the original and the alternative during a redirect's canary.
 * See measure.h for what and why. Function names are symbols ([A-Za-z0-9_.$@], checked by the
 * policy), so they go into the JSON as they are.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/funclat.h"
#include "observe/profile.h"
#include "redirect/measure.h"

static const char *const role[RD_MEASURE_N] = {"original", "alternative"};

static void start_one(struct rd_measure *m, int k, pid_t pid, const char *binary, const char *func,
		      const char *no_pid_why)
{
	struct obs_funclat_opts o = {.pid = pid, .binary = binary, .func = func};
	int r;

	hs_strlcpy(m->func[k], func, sizeof(m->func[k]));
	m->pid[k] = pid;
	if (pid <= 0) {
		hs_strlcpy(m->why[k], no_pid_why, sizeof(m->why[k]));
		return;
	}
	r = obs_funclat_start(&o, &m->fl[k]);
	if (r) {
		m->fl[k] = NULL;
		snprintf(m->why[k], sizeof(m->why[k]), "cannot probe %s in process %d: %s", func,
			 (int)pid, strerror(-r));
		log_info("redirect: the %s's latency is not measured: %s", role[k], m->why[k]);
	}
}

void rd_measure_start(struct rd_measure *m, pid_t orig_pid, const char *orig_binary, const char *fn,
		      pid_t alt_pid, const char *alt_binary, const char *alt,
		      const char *no_pid_why)
{
	memset(m, 0, sizeof(*m));
	start_one(m, RD_MEASURE_ORIG, orig_pid, orig_binary, fn, no_pid_why);
	start_one(m, RD_MEASURE_ALT, alt_pid, alt_binary, alt, no_pid_why);
}

void rd_measure_poll(struct rd_measure *m, uint64_t mono_ms)
{
	for (int k = 0; k < RD_MEASURE_N; k++)
		if (m->fl[k] && obs_funclat_poll(m->fl[k], mono_ms) < 0)
			log_debug("redirect: polling the %s's latency failed", role[k]);
}

void rd_measure_stop(struct rd_measure *m)
{
	for (int k = 0; k < RD_MEASURE_N; k++) {
		obs_funclat_stop(m->fl[k]);
		m->fl[k] = NULL;
	}
}

static int us(uint64_t ns)
{
	return (int)((ns + 500) / 1000);
}

void rd_measure_end(struct rd_measure *m, char *json, size_t jsize, char *summary, size_t ssize)
{
	char part[RD_MEASURE_N][256], obj[RD_MEASURE_N][384];
	struct obs_profile p[RD_MEASURE_N];
	bool have[RD_MEASURE_N] = {false, false};
	size_t len;

	for (int k = 0; k < RD_MEASURE_N; k++) {
		obs_profile_init(&p[k], OBS_PROFILE_FUNC);
		if (m->fl[k] && obs_funclat_collect(m->fl[k], &p[k]) == 0 && p[k].total)
			have[k] = true;
		else if (m->fl[k])
			snprintf(m->why[k], sizeof(m->why[k]), "no call of %s in process %d",
				 m->func[k], (int)m->pid[k]);
		if (have[k]) {
			uint64_t mean = p[k].sum_ns / p[k].total;

			snprintf(part[k], sizeof(part[k]),
				 "%s p50 %d us, p99 %d us (%" PRIu64
				 " calls in %.1f s, process %d%s)",
				 m->func[k], us(p[k].p50_ns), us(p[k].p99_ns), p[k].total,
				 p[k].duration_ms / 1000.0, (int)m->pid[k],
				 p[k].stopped_early ? ", stopped at the probe budget" : "");
			snprintf(obj[k], sizeof(obj[k]),
				 "{\"function\":\"%s\",\"pid\":%d,\"calls\":%" PRIu64
				 ",\"p50_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64
				 ",\"p99_ns\":%" PRIu64 ",\"mean_ns\":%" PRIu64
				 ",\"duration_ms\":%" PRIu64 ",\"stopped_early\":%s}",
				 m->func[k], (int)m->pid[k], p[k].total, p[k].p50_ns, p[k].p90_ns,
				 p[k].p99_ns, mean, p[k].duration_ms,
				 p[k].stopped_early ? "true" : "false");
		} else {
			snprintf(part[k], sizeof(part[k]), "%.80s not measured: %.160s", m->func[k],
				 m->why[k]);
			snprintf(obj[k], sizeof(obj[k]), "null");
		}
		obs_profile_reset(&p[k]);
	}
	rd_measure_stop(m);
	snprintf(summary, ssize, "%s; %s", part[RD_MEASURE_ORIG], part[RD_MEASURE_ALT]);
	if (!json || !(len = strlen(json)) || json[len - 1] != '}')
		return;
	/* the summary holds only symbols, numbers and fixed text: no escaping needed */
	snprintf(json + len - 1, jsize - (len - 1),
		 "%s\"function_latency\":{\"summary\":\"%s\",\"original\":%s,\"alternative\":%s}}",
		 len > 2 ? "," : "", summary, obj[RD_MEASURE_ORIG], obj[RD_MEASURE_ALT]);
	if (strlen(json) + 1 >= jsize) /* cut: put the verdict's JSON back as it was */
		snprintf(json + len - 1, jsize - (len - 1), "}");
}
