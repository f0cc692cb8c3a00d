/* hist.c - quantiles of log2 histograms and sliding windows of them (see hist.h). */
#include <string.h>

#include "observe/hist.h"

double obs_hist_quantile(const struct obs_hist *h, double q)
{
	uint64_t total = 0, seen = 0;
	double rank;

	for (int i = 0; i < OBS_HIST_SLOTS; i++)
		total += h->slots[i];
	if (!total)
		return 0.0;
	rank = q * (double)total;
	for (int i = 0; i < OBS_HIST_SLOTS; i++) {
		uint64_t n = h->slots[i];
		double lo = i ? (double)(1ull << i) : 0.0, hi = (double)(2ull << i);

		if (n && (double)(seen + n) >= rank) {
			double frac = (rank - (double)seen) / (double)n;

			return lo + (hi - lo) * (frac < 0 ? 0 : frac);
		}
		seen += n;
	}
	return (double)(2ull << (OBS_HIST_SLOTS - 1));
}

double obs_hist_mean(const struct obs_hist *h)
{
	return h->count ? (double)h->sum_ns / (double)h->count : 0.0;
}

void obs_hist_add(struct obs_hist *to, const struct obs_hist *h)
{
	for (int i = 0; i < OBS_HIST_SLOTS; i++)
		to->slots[i] += h->slots[i];
	to->count += h->count;
	to->sum_ns += h->sum_ns;
}

void obs_hist_delta(struct obs_hist *to, const struct obs_hist *a, const struct obs_hist *b)
{
	for (int i = 0; i < OBS_HIST_SLOTS; i++)
		to->slots[i] = a->slots[i] >= b->slots[i] ? a->slots[i] - b->slots[i] : 0;
	to->count = a->count >= b->count ? a->count - b->count : 0;
	to->sum_ns = a->sum_ns >= b->sum_ns ? a->sum_ns - b->sum_ns : 0;
}

void obs_window_push(struct obs_window *w, const struct obs_hist *tick)
{
	struct obs_hist *old = &w->ring[w->next];

	if (w->filled == OBS_WINDOW_TICKS)
		obs_hist_delta(&w->sum, &w->sum, old);
	else
		w->filled++;
	*old = *tick;
	obs_hist_add(&w->sum, tick);
	w->next = (w->next + 1) % OBS_WINDOW_TICKS;
}
