/*
 * libFuzzer target: agent.json, the way the agent reads it at start-up and
 * for --check: the bounded loader and the core keys (config.c), then every
 * stage's configure hook in table order (auth, authz, rate limiting, ...).
 * Key files named by the input are read like any others; nothing is
 * started, no socket is opened. Each configure must leave no pointer into
 * the previous input's tree (the loop frees it before the next one).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "stage.h"
#include "stages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct agent_config cfg;
	char err[1024];
	FILE *f;

	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/fuzz_agent_json.%ld.json", (long)getpid());
		if (stages_install(stage_table, stage_table_len) < 0)
			abort();
	}
	f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	config_defaults(&cfg);
	if (config_load(&cfg, path, err, sizeof(err)) == 0)
		stages_configure(&cfg, err, sizeof(err));
	config_free(&cfg);
	return 0;
}
