/* hist.h - log2 histograms and their sliding windows, for latency signals.
 *
 * Slot k counts values in [2^k, 2^(k+1)) nanoseconds, as the BPF side fills them. A
 * quantile is interpolated linearly inside its slot, so its error is at most the slot's
 * width (a factor of two) and in practice much less. A window keeps the last N per-tick
 * histograms in a ring and their running sum, so that a window quantile costs one pass over
 * 32 slots whatever N is.
 */
#ifndef HS_OBS_HIST_H
#define HS_OBS_HIST_H

#include <stdint.h>

#define OBS_HIST_SLOTS	 32
#define OBS_WINDOW_TICKS 60

struct obs_hist {
	uint64_t slots[OBS_HIST_SLOTS];
	uint64_t count;
	uint64_t sum_ns;
};

struct obs_window {
	struct obs_hist ring[OBS_WINDOW_TICKS];
	struct obs_hist sum;
	unsigned next, filled;
};

/* The q-quantile (0 < q <= 1) in nanoseconds; 0 when the histogram is empty. */
double obs_hist_quantile(const struct obs_hist *h, double q);
double obs_hist_mean(const struct obs_hist *h);
void obs_hist_add(struct obs_hist *to, const struct obs_hist *h);
/* to = a - b, slot by slot (a cumulative histogram minus its previous reading). */
void obs_hist_delta(struct obs_hist *to, const struct obs_hist *a, const struct obs_hist *b);
/* Pushes this tick's histogram, dropping the oldest once the window is full. */
void obs_window_push(struct obs_window *w, const struct obs_hist *tick);

#endif
