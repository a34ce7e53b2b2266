# spogate — one entry point: deps, all, run, test, bench, fuzz, clean.
#
# Sources are found by wildcard, so adding a module is adding a file:
#   spoa/common/*.c   code shared by the agent and the generator (libcommon.a)
#   spoa/src/*/*.c    the agent (libspoa.a + spoa/src/main.c -> spogate-agent):
#                     core/ the engine, stages/ the decision stages,
#                     clients/ the outbound protocol clients, jwt/ the verifier
#   config/src/*.c    the generator (libgen.a + main.c -> spogate-gen)
#   proto/*.proto     protobuf-c code generated into $(BUILD)/gen
#   tests/services    spogate-refsvc (refsvc*.c) and spogate-echo (echo.c)
#   tests/unit/test_*.c, tests/integration/test_*.c   one cmocka binary each
#   tests/fuzz/fuzz_*.c  libFuzzer targets (make fuzz); also linked with
#                        tests/fuzz/driver.c so the suite replays their seeds
#
# SANITIZE=address,undefined builds everything with the sanitizers.
# BUILD=dir puts the output elsewhere (parallel work trees, sanitizer runs).
# HAPROXY_VERSION=3.0|3.2: make haproxy fetches that HAProxy from Debian's
# binary packages into $(BUILD)/haproxy-<version>/haproxy, and make test and
# make bench run against it (2.6, the default, is the system's). SPOGATE_HAPROXY
# names any other build.

BUILD    ?= build
CC       ?= cc
SANITIZE ?=
OPT      ?= -O2

PKGS := libev-dev libprotobuf-c-dev protobuf-c-compiler libgrpc-dev \
        libhiredis-dev libjansson-dev libjwt-dev libyaml-dev libssl-dev \
        libcmocka-dev libcurl4-openssl-dev pkg-config make gcc clang \
        libclang-rt-14-dev haproxy redis-server redis-sentinel dnsmasq-base curl openssl \
        wrk nginx-light docker-compose procps iproute2 python3 patchelf

# Every folder of the agent is on the include path, so a header is named by
# its file name alone wherever it lives.
SPOA_INC := $(addprefix -I,$(sort $(patsubst %/,%,$(dir $(wildcard spoa/src/*/*.[ch])))))

WARN    := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Werror \
           -Wno-missing-field-initializers
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -pthread \
           -Ispoa/common $(SPOA_INC) -Iconfig/src -I$(BUILD)/gen $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(EXTRA_LDFLAGS)
LIBS    := -lev -lhiredis -ljansson -ljwt -lyaml -lprotobuf-c \
           -lgrpc -lgpr -lcurl -lssl -lcrypto -lm

ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H     := $(PROTO_C:.c=.h)

COMMON_SRC  := $(wildcard spoa/common/*.c)
SPOA_SRC    := $(wildcard spoa/src/*/*.c)
GEN_SRC     := $(filter-out config/src/main.c,$(wildcard config/src/*.c))
REFSVC_SRC  := $(wildcard tests/services/refsvc*.c)
HARNESS_SRC := $(wildcard tests/integration/harness*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
INTEG_SRC   := $(wildcard tests/integration/test_*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC   := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_A  := $(BUILD)/lib/libcommon.a
SPOA_A    := $(BUILD)/lib/libspoa.a
GEN_A     := $(BUILD)/lib/libgen.a
PROTO_A   := $(BUILD)/lib/libproto.a

AGENT   := $(BUILD)/bin/spogate-agent
GEN     := $(BUILD)/bin/spogate-gen
REFSVC  := $(BUILD)/bin/spogate-refsvc
ECHO    := $(BUILD)/bin/spogate-echo
BENCH   := $(BUILD)/bin/spogate-bench
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRC))
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRC))

BINS := $(AGENT) $(ECHO) $(if $(wildcard config/src/main.c),$(GEN)) \
        $(if $(BENCH_SRC),$(BENCH)) $(if $(REFSVC_SRC),$(REFSVC))

HAPROXY_VERSION ?= 2.6
ifneq ($(filter-out 2.6,$(HAPROXY_VERSION)),)
HAPROXY_BIN := $(abspath $(BUILD))/haproxy-$(HAPROXY_VERSION)/haproxy
export SPOGATE_HAPROXY := $(HAPROXY_BIN)
endif

.PHONY: all deps run test unit integration bench fuzz clean haproxy
.SECONDARY:

all: $(BINS) $(UNIT_BIN) $(INTEG_BIN) $(FUZZ_BIN)

# Installs every Debian package the project needs; idempotent, as root or via sudo.
deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# HAProxy 3.0 (Debian 13) or 3.2 (sid) beside the system's 2.6; cached.
haproxy: deps
ifneq ($(HAPROXY_BIN),)
	@tests/haproxy-debian.sh $(HAPROXY_VERSION) $(dir $(HAPROXY_BIN))
else
	@echo "haproxy: HAPROXY_VERSION=2.6 is the system's /usr/sbin/haproxy; make haproxy HAPROXY_VERSION=3.0|3.2 fetches another"
endif

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

# Generated protobuf-c code is not ours to hold to -Werror.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -Wno-unused-parameter -c $< -o $@

# Every object depends on the Makefile: a change of CFLAGS, include paths
# or source layout (a header moved between folders) would otherwise leave
# objects built against the old layout, which the .d lists do not catch.
$(BUILD)/obj/%.o: %.c Makefile | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(COMMON_A): $(call obj,$(COMMON_SRC))
$(SPOA_A):   $(call obj,$(SPOA_SRC))
$(GEN_A):    $(call obj,$(GEN_SRC))
$(PROTO_A):  $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

ALL_A := $(SPOA_A) $(GEN_A) $(PROTO_A) $(COMMON_A)

$(AGENT): $(call obj,spoa/src/main.c) $(SPOA_A) $(PROTO_A) $(COMMON_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(GEN): $(call obj,config/src/main.c) $(GEN_A) $(COMMON_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(REFSVC): $(call obj,$(REFSVC_SRC)) $(SPOA_A) $(PROTO_A) $(COMMON_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(ECHO): $(call obj,tests/services/echo.c) $(COMMON_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BENCH): $(call obj,$(BENCH_SRC)) $(SPOA_A) $(PROTO_A) $(COMMON_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/unit/%: $(call obj,tests/unit/%.c) $(ALL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tests/integration/%: $(call obj,tests/integration/%.c) $(call obj,$(HARNESS_SRC)) $(ALL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka -lcurl

# The fuzz targets without libFuzzer: the driver replays files through them.
$(BUILD)/tests/fuzz/%: $(call obj,tests/fuzz/%.c) $(call obj,tests/fuzz/driver.c) $(ALL_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

unit: all $(if $(HAPROXY_BIN),haproxy)
	@BUILD=$(BUILD) tests/run.sh unit

integration: all $(if $(HAPROXY_BIN),haproxy)
	@BUILD=$(BUILD) tests/run.sh integration

test: deps $(if $(HAPROXY_BIN),haproxy)
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh all

# Builds only what the stack runs. On a terminal the stack runs as a job of
# its own (bash -m), so Ctrl-C reaches it and not make: it stops every
# process and make exits 0 instead of reporting an interrupt.
RUN_BINS := $(AGENT) $(GEN) $(REFSVC) $(ECHO)
run: deps $(if $(HAPROXY_BIN),haproxy)
	@$(MAKE) --no-print-directory $(RUN_BINS)
	@if [ -t 0 ]; then BUILD=$(BUILD) bash -m -c 'tests/run-stack.sh; exit $$?'; \
	else BUILD=$(BUILD) tests/run-stack.sh; fi

bench: deps $(if $(HAPROXY_BIN),haproxy)
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) QUICK=$(QUICK) tests/bench/bench.sh

# libFuzzer targets, built with clang into their own tree; FUZZ_SECONDS each
# (CI: make fuzz FUZZ_SECONDS=10). FUZZ_TARGETS=fuzz_jwt picks some. A crash
# stops the loop with the fuzzer's report and a failing exit status.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz CC=clang \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" \
	  $(BUILD)/fuzz/lib/libspoa.a $(BUILD)/fuzz/lib/libgen.a \
	  $(BUILD)/fuzz/lib/libproto.a $(BUILD)/fuzz/lib/libcommon.a
	@set -e; for n in $(FUZZ_TARGETS); do \
	  f=tests/fuzz/$$n.c; mkdir -p $(BUILD)/fuzz/bin $(BUILD)/fuzz/corpus/$$n; \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -Ispoa/common $(SPOA_INC) -Iconfig/src \
	    -I$(BUILD)/fuzz/gen -fsanitize=fuzzer,address,undefined $$f \
	    $(BUILD)/fuzz/lib/libspoa.a $(BUILD)/fuzz/lib/libgen.a \
	    $(BUILD)/fuzz/lib/libproto.a $(BUILD)/fuzz/lib/libcommon.a \
	    $(LIBS) -o $(BUILD)/fuzz/bin/$$n; \
	  seeds=tests/fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  log=$(BUILD)/fuzz/$$n.log; \
	  if ! $(BUILD)/fuzz/bin/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	      -artifact_prefix=$(BUILD)/fuzz/$$n- $(BUILD)/fuzz/corpus/$$n $$seeds >$$log 2>&1; then \
	    tail -n 60 $$log; echo "fuzz: $$n FAILED (log: $$log)"; exit 1; fi; \
	  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' $$log | tail -n 2; grep '^Done' $$log; \
	done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
