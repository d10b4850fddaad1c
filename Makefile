# ngx_zarr: build, test, run.  See README.md.

BUILD    ?= build
PYTHON   ?= /usr/bin/python3
CC       ?= gcc
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
PYTEST_ARGS ?=

ZCFLAGS  = -std=c99 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(CFLAGS)
LIBS     = -llmdb -ljansson -lcurl -lexpat -lcrypto -pthread

CORE     = json digest path tree tree_read tree_apply snap gate recover outbox \
           mtree hash sigv4 s3 s3op \
           s3xml auth form listing job
CORE_OBJS = $(CORE:%=$(BUILD)/core/zarr_%.o)
HEADERS  = $(wildcard include/*.h) ngx_zarr_module/zarr_tree_int.h

UNIT     = test_json test_digest test_path test_store test_snap test_gate \
           test_recover test_outbox test_mtree test_job \
           test_sigv4 test_s3_xml test_s3op test_s3xml test_auth test_form test_listing
UNIT_BINS = $(UNIT:%=$(BUILD)/tests/%)

BENCH_BINS = $(BUILD)/bench/bench_store $(BUILD)/bench/gen_listing \
             $(BUILD)/bench/bench_put $(BUILD)/bench/fsync_cost \
             $(BUILD)/bench/bench_auth $(BUILD)/bench/listing_floor \
             $(BUILD)/bench/bench_gate $(BUILD)/bench/bench_snap \
             $(BUILD)/bench/bench_get
TOOL_BINS  = $(BUILD)/tools/store_apply

# Debian packages for building, testing and running (make deps)
DEPS_BUILD = gcc make nginx nginx-dev liblmdb-dev lmdb-utils libjansson-dev \
             libcurl4-openssl-dev libssl-dev libexpat1-dev libcmocka-dev
DEPS_RGW   = radosgw ceph-mon ceph-osd ceph-common
DEPS_TEST  = python3 python3-pytest python3-boto3 python3-requests \
             python3-zarr python3-fsspec python3-prometheus-client \
             python3-aiohttp python3-wrapt \
             awscli s3cmd rclone valgrind \
             procps curl clang libclang-rt-14-dev \
             python3-munch python3-isodate python3-lxml python3-dateutil \
             python3-tz python3-yaml python3-pytest-timeout \
             prometheus jq openssl
# make deb: debhelper with dh_nginx (nginx-dev), checked with lintian
DEPS_DEB   = debhelper dpkg-dev fakeroot lintian
DEPS      = $(DEPS_BUILD) $(DEPS_RGW) $(DEPS_TEST) $(DEPS_DEB)

.PHONY: all module zarrctl deps test unit integration valgrind bench deb \
        rules-test \
        bench-put bench-floor bench-api bench-listing bench-ingest \
        bench-snap run \
        s3-tests \
        clean

all: module zarrctl

module:
	scripts/build-module.sh $(BUILD)

zarrctl: $(BUILD)/zarrctl

$(BUILD)/core/%.o: ngx_zarr_module/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ZCFLAGS) -c $< -o $@

$(BUILD)/zarrctl: zarrctl/zarrctl.c $(CORE_OBJS) $(HEADERS)
	$(CC) $(ZCFLAGS) $< $(CORE_OBJS) $(LDFLAGS) $(LIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/zarr_test.h $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ZCFLAGS) -Itests/unit $< $(CORE_OBJS) $(LIBS) -lcmocka -o $@

$(BUILD)/bench/%: tests/bench/%.c tests/bench/bench_layout.h $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ZCFLAGS) -Itests/bench $< $(CORE_OBJS) $(LIBS) -o $@

$(BUILD)/tools/%: tests/tools/%.c $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ZCFLAGS) $< $(CORE_OBJS) $(LIBS) -o $@

deps:
	scripts/deps.sh $(DEPS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	    echo "== $$t"; \
	    ZARR_VECTORS=tests/zarr_checksum_vectors.json \
	    ZARR_AUTH_REQUESTS=tests/unit/auth_requests $$t; \
	done

integration: all $(TOOL_BINS)
	$(PYTHON) -m pytest -v tests/integration $(PYTEST_ARGS)

test: unit fuzz-smoke rules-test integration

# the Prometheus alert rules: syntax, then their unit tests
rules-test:
	promtool check rules conf/prometheus/zarr-alerts.yml
	promtool test rules conf/prometheus/zarr-alerts.test.yml

# the unit tests under valgrind (leaks too), then the gateway tests with
# every nginx process under memcheck (slow; the kill -9 test is left out:
# valgrind outlives its process there)
VALGRIND_DIR = $(abspath $(BUILD))/valgrind
valgrind: all $(TOOL_BINS) $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	    echo "== valgrind $$t"; \
	    ZARR_VECTORS=tests/zarr_checksum_vectors.json \
	    ZARR_AUTH_REQUESTS=tests/unit/auth_requests valgrind -q \
	        --leak-check=full --error-exitcode=99 $$t > /dev/null; \
	done
	rm -rf $(VALGRIND_DIR)
	ZARR_NGINX=$(abspath tests/integration/valgrind-nginx.sh) \
	ZARR_VALGRIND_DIR=$(VALGRIND_DIR) \
	    $(PYTHON) -m pytest -q tests/integration/test_gateway_boto3.py \
	    tests/integration/test_gateway_batches.py \
	    tests/integration/test_mirror.py tests/integration/test_api.py \
	    tests/integration/test_metrics.py \
	    tests/integration/test_gateway_post.py \
	    tests/integration/test_gateway_vhost.py \
	    -k "not kill and not outage"
	@n=$$(ls $(VALGRIND_DIR) | wc -l); \
	bad=$$(find $(VALGRIND_DIR) -name '*.log' -size +0 | wc -l); \
	echo "valgrind: $$n nginx processes, $$bad with errors"; \
	find $(VALGRIND_DIR) -name '*.log' -size +0 -exec cat {} +; \
	test "$$n" -gt 0 && test "$$bad" -eq 0

bench: $(BENCH_BINS) zarrctl
	tests/bench/run.sh $(BUILD)

# zarrctl checksum --listing against Python and DANDI's zarr_checksum
# (ZARR_CHECKSUM_SRC=dir of its zarr_checksum package; else estimated)
bench-listing: zarrctl $(BUILD)/bench/gen_listing $(BUILD)/bench/listing_floor
	tests/bench/listing_ratio.sh $(BUILD)

# PUT throughput through plain proxy_pass vs the gateway (RGW and a stub)
bench-put: all $(BENCH_BINS)
	tests/bench/put_ratio.sh $(BUILD)

# a 1,000,000-file zarr through the gateway to a stub at 256 connections:
# PUT/s and RSS over time, digest and .checksum latency after the burst
# (knobs FILES, MORE, DIRS, ORDER, CONNS...: see tests/bench/ingest.sh)
bench-ingest: all $(BUILD)/bench/bench_put
	tests/bench/ingest.sh $(BUILD)

# bench-put with the tree work taken out, then the commit, then the hand-off
# (tests/bench/floor.sh: floors sync, nosync, nohold): builds the committed
# HEAD with tests/bench/floor.patch
bench-floor:
	tests/bench/floor.sh

# snapshots: the store (1,000,000 files), the API's whole create call on
# 1,000,000 files, and reads and listings through the gateway
# (the latter against a running RGW: ZARR_RGW_ENV, ZARR_RGW_ENDPOINT)
bench-snap: all $(BUILD)/bench/bench_snap $(BUILD)/bench/bench_get
	rm -rf $(or $(BENCH_DIR),/var/tmp)/zarr-bench-snap-store
	$(BUILD)/bench/bench_snap $(or $(BENCH_DIR),/var/tmp)/zarr-bench-snap-store
	rm -rf $(or $(BENCH_DIR),/var/tmp)/zarr-bench-snap-store
	tests/bench/snap_ratio.py $(BUILD)

# does a heavy admin API read stall the worker's other connections?
bench-api: all $(TOOL_BINS)
	ZARR_BUILD_DIR=$(BUILD) tests/bench/api_stall.py \
	    $(BUILD)/nginx/ngx_http_zarr_module.so

run: all
	scripts/run.sh

# ceph/s3-tests direct to RGW and through the gateway, compared (not part
# of `make test`: needs a checkout, S3TESTS=/path/to/s3-tests; slow); see
# docs/s3-compat.md
S3TESTS ?=
s3-tests: all
	@test -n "$(S3TESTS)" || { echo "usage: make s3-tests" \
	    "S3TESTS=/path/to/ceph/s3-tests" >&2; exit 2; }
	ZARR_BUILD_DIR=$(abspath $(BUILD)) tests/s3tests/run.sh $(S3TESTS)

include tests/fuzz/fuzz.mk

# Debian packages libnginx-mod-http-zarr and zarrctl in $(BUILD)/deb/,
# built from a copy of the working tree (debian/ at the top), then lintian
DEB_DIR = $(BUILD)/deb
deb:
	scripts/build-deb.sh $(DEB_DIR)

clean:
	rm -rf $(BUILD)
