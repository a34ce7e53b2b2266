/*
 * libFuzzer target: the registry on its own, in both of its forms (the
 * registry YAML and a Consul /v1/catalog/services JSON export), loaded,
 * linked against a fixed gateway that uses every kind of service the
 * registry can describe (HTTP backends, the Auth and Authz gRPC services)
 * and rendered. fuzz_gen_yaml feeds the same bytes to both inputs; here
 * the gateway stays sound so the fuzzer spends its time in registry.c and
 * the parts of link.c and the emitters that read it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char gateway[] =
	"gateway:\n"
	"  port: 8080\n"
	"  routes:\n"
	"    - {path: /api/v1/auth/**, service: auth-service, auth_required: false}\n"
	"    - {path: /api/v1/users/**, service: identity-service, auth_required: true,\n"
	"       permission: user.read}\n"
	"    - {path: /api/v1/blog/**, service: blog-service, auth_required: true}\n"
	"    - {path: /api/v1/grpc/**, service: echo-grpc, auth_required: false}\n"
	"  rate_limiting: {enabled: true, per_user: 100/minute, per_ip: 1000/minute}\n";

static char gw_path[64], reg_path[64];

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	fwrite(p, 1, n, f);
	return fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gen_opts o = { 0 };
	struct gen_diags d;
	struct gen_output out;
	int i;

	if (!gw_path[0]) {
		snprintf(gw_path, sizeof(gw_path), "/tmp/fuzz_registry.%ld.gw.yaml", (long)getpid());
		snprintf(reg_path, sizeof(reg_path), "/tmp/fuzz_registry.%ld.reg", (long)getpid());
		if (write_file(gw_path, gateway, sizeof(gateway) - 1) < 0)
			abort();
	}
	if (write_file(reg_path, data, size) < 0)
		return 0;
	o.gateway_file = gw_path;
	o.registry_file = reg_path;
	o.base_dir = "/etc/spogate";
	o.haproxy_dir = "/etc/haproxy";
	/* Odd inputs also try a Consul nameserver of their own choosing. */
	for (i = 0; i < 2; i++) {
		o.consul_dns = i ? "127.0.0.1:8600" : NULL;
		gen_diags_init(&d);
		if (gen_run(&o, 0, &d, &out) == 0) {
			/* Output is deterministic: the same input renders the same bytes. */
			struct gen_output again;
			struct gen_diags d2;

			gen_diags_init(&d2);
			if (gen_run(&o, 0, &d2, &again) != 0 || again.haproxy.len != out.haproxy.len ||
			    again.agent.len != out.agent.len ||
			    (out.haproxy.len && memcmp(again.haproxy.p, out.haproxy.p, out.haproxy.len)))
				abort();
			gen_output_free(&again);
			gen_diags_free(&d2);
			gen_output_free(&out);
		}
		gen_diags_free(&d);
		if (size == 0 || !(data[0] & 1))
			break;
	}
	return 0;
}
