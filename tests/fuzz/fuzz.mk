# libFuzzer harnesses (tests/fuzz/README.md): included from the Makefile.
#
#   make fuzz          every harness for FUZZ_SECONDS on a copy of its corpus
#   make fuzz-smoke    every harness a few seconds on its committed corpus
#                      and regressions; fails on any crash (part of make test)

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all
# a 1 MiB arena per zarr_mtree costs an mmap per input under ASan (and
# a 2 MiB file chunk the same); any tree and tsv listing is split across
# threads
FUZZ_CFLAGS  = -std=c99 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude \
               -Itests/fuzz -g -O1 $(FUZZ_SAN) -DZARR_ARENA_CHUNK=1024 \
               -DZARR_MTREE_FILES_SHIFT=3 -DZARR_MTREE_MIN_THREADED=1 \
               -DZARR_MTREE_MIN_SPLIT=1


FUZZ_AUTH    = auth
FUZZ_CORE    = $(sort $(CORE) $(FUZZ_AUTH))
FUZZ_CORE_OBJS = $(FUZZ_CORE:%=$(BUILD)/fuzz/core/zarr_%.o)

FUZZ_NAMES   = s3xml s3xml_error s3list s3op access_key copy_source path \
               digest listing $(FUZZ_AUTH)
FUZZ_BINS    = $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

FUZZ_RUN_OPTS = -rss_limit_mb=2048 -timeout=10 -print_final_stats=1

# ASan's 256 MiB quarantine of freed memory makes every allocation touch
# fresh pages (2-3 times slower); 16 MiB still holds many inputs' worth
export ASAN_OPTIONS ?= quarantine_size_mb=16

.PHONY: fuzz fuzz-build fuzz-smoke
.SECONDARY: $(FUZZ_CORE_OBJS)

fuzz-build: $(FUZZ_BINS)

$(BUILD)/fuzz/core/%.o: ngx_zarr_module/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_CORE_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_CORE_OBJS) \
	    $(LIBS) -o $@

# the committed corpus and regressions are read, never written: new
# inputs go to a scratch directory under build/
fuzz-smoke: $(FUZZ_BINS)
	@set -e; for n in $(FUZZ_NAMES); do \
	    echo "== fuzz-smoke $$n"; \
	    w=$(BUILD)/fuzz/smoke/$$n; rm -rf $$w; mkdir -p $$w/new $$w/crash; \
	    $(BUILD)/fuzz/fuzz_$$n $(FUZZ_RUN_OPTS) \
	        -max_total_time=$(FUZZ_SMOKE_SECONDS) \
	        -artifact_prefix=$$w/crash/ $$w/new tests/fuzz/corpus/$$n \
	        $$(test -d tests/fuzz/regressions/$$n \
	           && echo tests/fuzz/regressions/$$n) \
	        > $$w/log 2>&1 \
	    || { tail -40 $$w/log; echo "fuzz-smoke: $$n failed, see $$w"; \
	         exit 1; }; \
	    grep -h "stat::number_of_executed_units" $$w/log; \
	done

fuzz: $(FUZZ_BINS)
	@set -e; for n in $(FUZZ_NAMES); do \
	    echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	    w=$(BUILD)/fuzz/run/$$n; mkdir -p $$w/corpus $$w/crash; \
	    cp -n tests/fuzz/corpus/$$n/* $$w/corpus/ 2>/dev/null || true; \
	    $(BUILD)/fuzz/fuzz_$$n $(FUZZ_RUN_OPTS) \
	        -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=$$w/crash/ $$w/corpus \
	        $$(test -d tests/fuzz/regressions/$$n \
	           && echo tests/fuzz/regressions/$$n) \
	        > $$w/log 2>&1 \
	    || { tail -40 $$w/log; echo "fuzz: $$n crashed, see $$w/crash"; \
	         exit 1; }; \
	    grep -h "stat::number_of_executed_units\|stat::peak_rss" $$w/log; \
	done
