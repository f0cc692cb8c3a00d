/* observe.h - the observation layer: collectors, their pins, and the per-tick snapshot.
 *
 * obs_open() probes what the kernel offers, loads every collector that can run and says in
 * the log why the others cannot; obs_sample() reads the in-kernel aggregates once per tick
 * into a snapshot that the rest of the agent reads; obs_close() detaches and unpins all.
 * Every object is pinned under the pin directory (default /sys/fs/bpf/homeostat) with a
 * meaningful name, so that `bpftool map dump pinned DIR/NAME` prints typed values.
 */
#ifndef HS_OBSERVE_H
#define HS_OBSERVE_H

#include <stdbool.h>
#include <linux/types.h>
#include <stdint.h>

#include "hs_targets.h"
#include "observe/hist.h"
#include "observe/targets.h"

#define OBS_PIN_DIR_DEFAULT "/sys/fs/bpf/homeostat"
#define OBS_MAX_COLLECTORS  16

struct obs;
struct bpf_map;
struct bpf_object;
struct bpf_object_skeleton;
struct bpf_program;
struct safe_policy;
struct safe_sc_latency;

/* What the running kernel offers, found by probes at start. */
struct obs_features {
	bool btf;	    /* /sys/kernel/btf/vmlinux: CO-RE relocations can be resolved */
	bool raw_tp;	    /* BPF_PROG_TYPE_RAW_TRACEPOINT */
	bool tp_btf;	    /* BTF-typed tracepoints (BPF_PROG_TYPE_TRACING) */
	bool task_storage;  /* BPF_MAP_TYPE_TASK_STORAGE: per-task target and timestamps */
	bool bpffs_mounted; /* homeostat mounted bpffs itself */
};

enum obs_collector_state {
	OBS_RUNNING,
	OBS_UNAVAILABLE, /* the kernel lacks what it needs: reason says what */
	OBS_FAILED,	 /* it should have worked: reason holds the error */
};

struct obs_collector_info {
	const char *name;
	const char *why; /* what the collector is for, in plain English */
	enum obs_collector_state state;
	char reason[160];
	/* Cost, from the last measurement window (bpf_enable_stats); measured false before
	 * the first one ends. cpu_pct is of one core. */
	bool measured;
	double runs_per_s, ns_per_run, cpu_pct;
};

/* The cost of BPF programs is measured with bpf_enable_stats() in a window of
 * OBS_COST_WINDOW_MS every OBS_COST_PERIOD_MS: stats cost two clock reads per program run,
 * so they are not left on. */
#define OBS_COST_PERIOD_MS 60000
#define OBS_COST_FIRST_MS  3000
#define OBS_COST_WINDOW_MS 1000

#define OBS_TOP_ERRNOS 4
/* Syscall latency: 1 in 16 syscalls is timed, in the policy's windows (observe.syscall_latency). */
#define OBS_SC_SAMPLE_RATE 16

/* TCP listen-queue overflows (netstat.c): the namespaces a target's processes live in. */
#define OBS_NETNS_MAX 8

struct obs_netns_seen {
	uint64_t ino;  /* of /proc/PID/ns/net */
	uint64_t last; /* TcpExt ListenOverflows at the last reading */
	uint32_t gen;  /* the tick it was last read */
};

struct obs_netns_watch {
	struct obs_netns_seen ns[OBS_NETNS_MAX];
	unsigned n;
	uint32_t gen;
};

struct obs_errno_count {
	int err;	/* positive errno */
	uint64_t count; /* in the last tick */
};

/* One target (or the rest of the host, or the whole host) over the last tick, with sliding
 * windows of OBS_WINDOW_TICKS ticks for latencies and RSS. Rates are per second. */
struct obs_target_snap {
	const char *name; /* valid until the next obs_sample() or reconfiguration */
	int index;	  /* 1..n for policy targets, 0 for the rest, -1 for the whole host */
	uint32_t nprocs;  /* members seen (policy targets only) */
	/* syscalls: exact counts; latency sampled 1 in OBS_SC_SAMPLE_RATE */
	uint64_t sc_count, sc_errors;
	double sc_rate, sc_error_rate, sc_error_ratio;
	struct obs_errno_count top_errnos[OBS_TOP_ERRNOS];
	int n_errnos;
	struct obs_hist sc_lat, sc_lat_window;
	/* run-queue latency: wakeup to running */
	struct obs_hist rq_lat, rq_lat_window;
	/* memory */
	uint64_t faults; /* user page faults in the tick */
	uint64_t rss_bytes;
	double rss_slope; /* bytes per second, least squares over the window */
	/* CPU used over the tick, as a fraction of one CPU (cputime.c); NAN at the first tick */
	double cpu_usage;
	/* network: TcpExt ListenOverflows of the namespaces of its processes, this tick (a
	 * target in the host's namespace sees every overflow there) */
	uint64_t listen_overflows;
	/* lifecycle */
	uint64_t execs, exits, forks, fatal;
	uint64_t fatal_by_sig[64];
};

struct obs_snapshot {
	uint64_t at_ms;	     /* CLOCK_MONOTONIC of the sample */
	uint64_t tick;	     /* how many snapshots before this one */
	uint64_t elapsed_ms; /* since the previous sample */
	int ntargets;	     /* entries of t[] in use: policy targets + 1 (index 0) */
	struct obs_target_snap t[HS_NTARGETS];
	struct obs_target_snap host; /* the sum of t[] */
	uint64_t overflows;	     /* events lost to full maps since start, all collectors */
	bool syscalls_valid, runq_valid, lifecycle_valid;
};

/* Opens the collectors and observes the policy's targets (NULL: the host only). */
int obs_open(const char *pin_dir, const struct safe_policy *policy, struct obs **out);
/* New target definitions after a reload; windows of targets that kept their name go on. */
int obs_reconfigure(struct obs *obs, const struct safe_policy *policy);
/* Looks a target up by name in the last snapshot; NULL if unknown. */
const struct obs_target_snap *obs_snapshot_target(const struct obs_snapshot *s, const char *name);
const struct obs_targets *obs_targets(const struct obs *obs);
void obs_close(struct obs *obs);
int obs_sample(struct obs *obs, struct obs_snapshot *snap);
const struct obs_features *obs_features(const struct obs *obs);
/* Fills up to max entries; returns the number of collectors. */
int obs_collectors(const struct obs *obs, struct obs_collector_info *out, int max);
const char *obs_collector_state_name(enum obs_collector_state s);

/* Internal to agent/observe/: one collector, as a table entry. */
struct obs_collector_ops {
	const char *name;
	const char *why;
	/* Loads, attaches and pins; returns 0, -EOPNOTSUPP with reason when unavailable. */
	int (*open)(struct obs *obs, void **state, char *reason, size_t reason_len);
	int (*sample)(void *state, struct obs_snapshot *snap, uint64_t elapsed_ms);
	void (*close)(void *state);
};

/* For collectors: before load, reuse the shared target maps (hs_tasks, hs_proc_target, ...)
 * that an earlier collector created; after load, adopt them if this object created them. */
int obs_share_maps(struct obs *obs, struct bpf_object *obj);
int obs_adopt_maps(struct obs *obs, struct bpf_object *obj);
/* hs_cpu, every CPU's entry, mapped read-only: NULL until a collector created it. *ncpus is
 * the number of entries. */
const struct hs_cpu *obs_cpus(const struct obs *obs, int *ncpus);
/* The policy's syscall latency windows (every_ms 0, none, without a policy). */
struct safe_sc_latency obs_sc_latency(const struct obs *obs);

/* A map or a program of an object, by its name there, and the name of its pin. */
struct obs_pin {
	const char *name;
	const char *pin;
};

/* The rest of a collector's start once its object is loaded, the same for every collector:
 * adopt the shared maps, attach every loaded program through the skeleton (NULL: the
 * collector attaches its programs itself), then pin each named map, and each named program
 * that was loaded. On error reason says which step failed. */
int obs_finish_object(struct obs *obs, struct bpf_object *obj, struct bpf_object_skeleton *skel,
		      const struct obs_pin *pins, size_t npins, char *reason, size_t reason_len);

/* Pin helpers for collectors: DIR/name, recorded so that obs_close() unpins it. */
int obs_pin_map(struct obs *obs, struct bpf_map *map, const char *name);
int obs_pin_prog(struct obs *obs, struct bpf_program *prog, const char *name);

/* cputime.c: cpu_usage of every target and of the host. */
struct obs_cputime;
int obs_cputime_open(struct obs_cputime **out);
void obs_cputime_close(struct obs_cputime *c);
struct obs_targets;
void obs_cputime_sample(struct obs_cputime *c, const struct obs_targets *t,
			struct obs_snapshot *snap);

/* netstat.c: listen_overflows of every target (watch: one per index, zeroed at start). */
struct obs_targets;
void obs_netstat_sample(struct obs_netns_watch *watch, const struct obs_targets *t,
			struct obs_snapshot *snap);

extern const struct obs_collector_ops obs_lifecycle_ops;
extern const struct obs_collector_ops obs_syscalls_ops;
extern const struct obs_collector_ops obs_runqlat_ops;
extern const struct obs_collector_ops obs_faults_ops;

#endif
