/* libFuzzer target: arbitrary bytes through the YAML loader, and, when
 * they parse, through the gateway schema and the registry schema (the same
 * bytes used as both files), linking and rendering. Nothing may crash or
 * leak, whatever the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"
#include "gy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct gen_diags d;
	struct gy_node *root = NULL;
	struct gen_opts o = { 0 };
	struct gen_output out;
	FILE *f;

	gen_diags_init(&d);
	if (gy_parse("fuzz.yaml", (const char *)data, size, &d, &root) == 0)
		gy_free(root);
	gen_diags_free(&d);

	/* The schema layer reads files; one temp file per process is enough. */
	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/fuzz_gen_yaml.%ld.yaml", (long)getpid());
	f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	o.gateway_file = path;
	o.registry_file = path;
	o.base_dir = "/etc/spogate";
	o.haproxy_dir = "/etc/haproxy";
	gen_diags_init(&d);
	if (gen_run(&o, 0, &d, &out) == 0)
		gen_output_free(&out);
	gen_diags_free(&d);
	return 0;
}
