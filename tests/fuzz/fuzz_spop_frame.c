/*
 * libFuzzer target: the agent's view of one frame from HAProxy. Decodes
 * the frame metadata, then the payload as HELLO, DISCONNECT, NOTIFY
 * (gw-check) and ACK actions, whatever the type says, so every decoder
 * sees every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gwmsg.h"
#include "spop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spop_frame f;
	struct spop_hello h;
	struct spop_disconnect d;
	struct gw_request req;
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	uint8_t act, scope;
	uint8_t *copy;

	if (size > SPOP_MAX_FRAME_SIZE)
		return 0;
	/* an exactly-sized copy so ASan sees any read past the end */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (spop_frame_decode(copy, size, &f) == 0) {
		spop_hello_decode(f.payload, f.payload_len, &h);
		spop_disconnect_decode(f.payload, f.payload_len, &d);
		if (gw_request_parse(f.payload, f.payload_len, &req) == 1) {
			struct spop_str tok;

			gw_bearer_token(req.token, &tok);
		}
		spop_rd_init(&rd, f.payload, f.payload_len);
		while (spop_action_next(&rd, &act, &scope, &name, &val) == 1)
			;
	}
	free(copy);
	return 0;
}
