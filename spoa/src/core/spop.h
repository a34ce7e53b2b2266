/*
 * SPOP 2.0 codec (HAProxy's doc/SPOE.txt): pure functions over bounded
 * buffers, no I/O and no allocation. Decoders never read outside
 * [p, p + len) and hand out pointers into the caller's buffer; encoders
 * never write past their capacity and report overflow instead.
 */
#ifndef SPOGATE_SPOP_H
#define SPOGATE_SPOP_H

#include <stddef.h>
#include <stdint.h>

#define SPOP_VERSION         "2.0"
#define SPOP_MIN_FRAME_SIZE  256
#define SPOP_MAX_FRAME_SIZE  65535
#define SPOP_DEF_FRAME_SIZE  16380
#define SPOP_LEN_BYTES       4     /* the big-endian length before each frame */
#define SPOP_VARINT_MAX      10

enum spop_frame_type {
	SPOP_FRM_UNSET              = 0,
	SPOP_FRM_HAPROXY_HELLO      = 1,
	SPOP_FRM_HAPROXY_DISCONNECT = 2,
	SPOP_FRM_NOTIFY             = 3,
	SPOP_FRM_AGENT_HELLO        = 101,
	SPOP_FRM_AGENT_DISCONNECT   = 102,
	SPOP_FRM_ACK                = 103,
};

#define SPOP_FLAG_FIN    0x00000001u
#define SPOP_FLAG_ABORT  0x00000002u

enum spop_data_type {
	SPOP_DATA_NULL   = 0,
	SPOP_DATA_BOOL   = 1,
	SPOP_DATA_INT32  = 2,
	SPOP_DATA_UINT32 = 3,
	SPOP_DATA_INT64  = 4,
	SPOP_DATA_UINT64 = 5,
	SPOP_DATA_IPV4   = 6,
	SPOP_DATA_IPV6   = 7,
	SPOP_DATA_STR    = 8,
	SPOP_DATA_BIN    = 9,
};

#define SPOP_DATA_TYPE_MASK  0x0f
#define SPOP_DATA_FL_TRUE    0x10

/* DISCONNECT status codes (SPOE.txt section 3.5). */
enum spop_status {
	SPOP_ST_NORMAL         = 0,
	SPOP_ST_IO             = 1,
	SPOP_ST_TIMEOUT        = 2,
	SPOP_ST_TOO_BIG        = 3,
	SPOP_ST_INVALID        = 4,
	SPOP_ST_NO_VSN         = 5,
	SPOP_ST_NO_FRAME_SIZE  = 6,
	SPOP_ST_NO_CAP         = 7,
	SPOP_ST_BAD_VSN        = 8,
	SPOP_ST_BAD_FRAME_SIZE = 9,
	SPOP_ST_FRAG_NOT_SUPP  = 10,
	SPOP_ST_INTERLACED     = 11,
	SPOP_ST_FRAMEID_NOTFND = 12,
	SPOP_ST_RES            = 13,
	SPOP_ST_UNKNOWN        = 99,
};

enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN  = 2,
	SPOP_SCOPE_REQ  = 3,
	SPOP_SCOPE_RES  = 4,
};

enum spop_action_type {
	SPOP_ACT_SET_VAR   = 1,
	SPOP_ACT_UNSET_VAR = 2,
};

struct spop_str {
	const char *ptr;
	size_t len;
};

struct spop_data {
	enum spop_data_type type;
	union {
		int boolean;
		int32_t sint32;
		uint32_t uint32;
		int64_t sint64;
		uint64_t uint64;
		uint8_t ipv4[4];
		uint8_t ipv6[16];
		struct spop_str str;      /* STR and BIN */
	} u;
};

/* A frame without its length prefix. payload points into the decoded buffer. */
struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t stream_id;
	uint64_t frame_id;
	const uint8_t *payload;
	size_t payload_len;
};

/* Read cursor over a bounded buffer. */
struct spop_rd {
	const uint8_t *p;
	const uint8_t *end;
};

/* Write cursor: err sticks once set, so callers check once at the end. */
struct spop_wr {
	uint8_t *buf;
	size_t cap;
	size_t len;
	size_t frame_start;
	int err;
};

struct spop_hello {
	struct spop_str versions;
	struct spop_str capabilities;
	struct spop_str engine_id;
	uint32_t max_frame_size;
	unsigned has_versions:1, has_max_frame_size:1, has_capabilities:1;
	unsigned healthcheck:1;
};

struct spop_disconnect {
	uint32_t status;
	struct spop_str message;
};

/* Varints (HAProxy's encoding, not LEB128). Encode returns bytes written or
 * -1 when room is short; decode returns bytes consumed or -1 on truncation or
 * a value above 2^64-1. */
int spop_varint_encode(uint64_t v, uint8_t *out, size_t room);
int spop_varint_decode(const uint8_t *p, size_t len, uint64_t *v);

/* Cursor helpers: each returns 0 or -1 and advances only on success. */
void spop_rd_init(struct spop_rd *rd, const uint8_t *p, size_t len);
int spop_rd_varint(struct spop_rd *rd, uint64_t *v);
int spop_rd_str(struct spop_rd *rd, struct spop_str *s);
int spop_rd_data(struct spop_rd *rd, struct spop_data *d);
int spop_rd_u8(struct spop_rd *rd, uint8_t *v);

/* Reads one KV-LIST entry: 1 = got one, 0 = clean end of list, -1 = bad. */
int spop_kv_next(struct spop_rd *rd, struct spop_str *name, struct spop_data *val);

/* Reads one NOTIFY message header: 1 = got one, 0 = end, -1 = bad. The
 * nargs KV entries that follow are read with spop_kv_next(). */
int spop_msg_next(struct spop_rd *rd, struct spop_str *name, unsigned *nargs);

/* Reads one ACK action: 1 = got one, 0 = end, -1 = bad. val->type is NULL
 * for unset-var. */
int spop_action_next(struct spop_rd *rd, uint8_t *action, uint8_t *scope,
                     struct spop_str *name, struct spop_data *val);

/* Big-endian length prefix of the frame starting at p (4 bytes needed). */
uint32_t spop_frame_len(const uint8_t *p);

/* Decodes a frame (without its length prefix) of exactly len bytes.
 * Returns 0, or SPOP_ST_INVALID when the metadata is truncated. */
int spop_frame_decode(const uint8_t *buf, size_t len, struct spop_frame *f);

/* Decodes the KV-LIST of a HAPROXY-HELLO. Returns 0 or SPOP_ST_INVALID;
 * missing mandatory items are reported through the has_* bits so the caller
 * picks the specific status (5, 6 or 7). */
int spop_hello_decode(const uint8_t *payload, size_t len, struct spop_hello *h);

/* Decodes a DISCONNECT payload. Returns 0 or SPOP_ST_INVALID. */
int spop_disconnect_decode(const uint8_t *payload, size_t len, struct spop_disconnect *d);

/* True when the comma-separated list (spaces ignored) holds item. */
int spop_list_has(struct spop_str list, const char *item);

/* The capabilities an agent answers to the ones HAProxy offered: those of
 * "pipelining,async" that the offer holds, in that order ("" for none).
 * HAProxy 2.6/3.0 offer both, 3.1+ offer "pipelining" alone, a health
 * check offers nothing. Returns a static string. */
const char *spop_caps_answer(struct spop_str offered);

/* Encoding. A frame is begun, filled and ended; end returns its total size
 * on the wire (length prefix included) or -1 when it did not fit. */
void spop_wr_init(struct spop_wr *w, uint8_t *buf, size_t cap);
void spop_wr_frame_begin(struct spop_wr *w, uint8_t type, uint32_t flags,
                         uint64_t stream_id, uint64_t frame_id);
long spop_wr_frame_end(struct spop_wr *w);
void spop_wr_u8(struct spop_wr *w, uint8_t v);
void spop_wr_varint(struct spop_wr *w, uint64_t v);
void spop_wr_str(struct spop_wr *w, const char *s, size_t len);
void spop_wr_data(struct spop_wr *w, const struct spop_data *d);
void spop_wr_kv(struct spop_wr *w, const char *name, const struct spop_data *d);
void spop_wr_set_var(struct spop_wr *w, uint8_t scope, const char *name,
                     const struct spop_data *d);
void spop_wr_unset_var(struct spop_wr *w, uint8_t scope, const char *name);

/* Whole frames the agent sends. Each returns the bytes written or -1. */
long spop_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
                      const char *capabilities);
long spop_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
                           const char *message);

/* A HAPROXY-HELLO as HAProxy sends it, for the tools that speak HAProxy's
 * side (spogate-bench, tests). A NULL string or a negative max_frame_size
 * leaves that item out, so incomplete handshakes can be built too. */
long spop_haproxy_hello(uint8_t *buf, size_t cap, uint32_t flags, const char *versions,
                        long max_frame_size, const char *capabilities, int healthcheck,
                        const char *engine_id);

/* Convenience constructors for typed data. */
struct spop_data spop_null(void);
struct spop_data spop_bool(int v);
struct spop_data spop_int32(int32_t v);
struct spop_data spop_uint32(uint32_t v);
struct spop_data spop_int64(int64_t v);
struct spop_data spop_uint64(uint64_t v);
struct spop_data spop_strn(const char *s, size_t len);
struct spop_data spop_cstr(const char *s);

/* The DISCONNECT message text for a status code. */
const char *spop_status_str(uint32_t status);

#endif
