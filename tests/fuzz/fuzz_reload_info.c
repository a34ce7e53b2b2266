/*
 * libFuzzer target: the "show info" answer spogate-gen --reload reads off
 * HAProxy's stats socket to find the worker's pid (gen_reload_info_pid).
 * Any bytes, not NUL-terminated: the parser must stay within them and
 * return -1 or a positive pid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	long pid;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	pid = gen_reload_info_pid(copy, size);
	if (pid == 0 || pid < -1)
		abort();
	free(copy);
	return 0;
}
