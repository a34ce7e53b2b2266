/*
 * The stage table and the loops over its hooks (see stage.h).
 */
#include "stage.h"

static const struct stage_ops *const *table;
static size_t ntable;

int stages_install(const struct stage_ops *const *t, size_t n)
{
	if (n > STAGE_MAX)
		return -1;
	table = t;
	ntable = n;
	return 0;
}

size_t stages_count(void)
{
	return ntable;
}

const struct stage_ops *stages_at(size_t i)
{
	return table[i];
}

int stages_index(const struct stage_ops *st)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i] == st)
			return (int)i;
	return -1;
}

int stages_configure(const struct agent_config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i]->configure && table[i]->configure(cfg, err, errlen) < 0)
			return -1;
	return 0;
}

int stages_worker_start(struct worker *w, void **wctx)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i]->start_worker && table[i]->start_worker(w, &wctx[i]) < 0)
			return -1;
	return 0;
}

int stages_start(struct agent *a)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i]->start && table[i]->start(a) < 0)
			return -1;
	return 0;
}

void stages_reload(void)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i]->reload)
			table[i]->reload();
}

void stages_metrics(struct agent *a, struct dynbuf *b)
{
	size_t i;

	for (i = 0; i < ntable; i++)
		if (table[i]->metrics)
			table[i]->metrics(a, b);
}

void stages_worker_stop(struct worker *w, void **wctx)
{
	size_t i = ntable;

	while (i-- > 0)
		if (wctx[i] && table[i]->stop_worker) {
			table[i]->stop_worker(w, wctx[i]);
			wctx[i] = NULL;
		}
}

void stages_stop(struct agent *a)
{
	size_t i = ntable;

	while (i-- > 0)
		if (table[i]->stop)
			table[i]->stop(a);
}
