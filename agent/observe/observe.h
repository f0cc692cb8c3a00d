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
#include <stdint.h>

#define OBS_PIN_DIR_DEFAULT "/sys/fs/bpf/homeostat"
#define OBS_MAX_COLLECTORS  16

struct obs;
struct bpf_map;
struct bpf_program;

/* What the running kernel offers, found by probes at start. */
struct obs_features {
	bool btf;	    /* /sys/kernel/btf/vmlinux: CO-RE relocations can be resolved */
	bool raw_tp;	    /* BPF_PROG_TYPE_RAW_TRACEPOINT */
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
};

/* Host-wide process lifecycle over the last tick. */
struct obs_lifecycle {
	uint64_t execs, exits, forks; /* totals since the collector started */
	uint64_t fatal_total;
	double exec_rate, exit_rate, fork_rate, fatal_rate; /* per second over the last tick */
	uint64_t fatal_by_sig[64];
};

struct obs_snapshot {
	uint64_t at_ms; /* CLOCK_MONOTONIC of the sample */
	uint64_t tick;	/* how many snapshots before this one */
	bool lifecycle_valid;
	struct obs_lifecycle lifecycle;
};

int obs_open(const char *pin_dir, struct obs **out);
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

/* Pin helpers for collectors: DIR/name, recorded so that obs_close() unpins it. */
int obs_pin_map(struct obs *obs, struct bpf_map *map, const char *name);
int obs_pin_prog(struct obs *obs, struct bpf_program *prog, const char *name);

extern const struct obs_collector_ops obs_lifecycle_ops;

#endif
