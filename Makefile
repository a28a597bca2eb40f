# Tribune: a plain Makefile with pkg-config (see README.md).
#   make            build build/tribune and build/tribune-load
#   make test       install missing packages, build, run every test (also under ASan+UBSan)
#   make demo       install missing packages, build, run the demo space
#   make SAN=1 BUILD=build/asan   a sanitizer build
#   make fuzz       libFuzzer builds in build/fuzz/, each run FUZZ_SECONDS (docs/fuzzing.md)
BUILD ?= build
SAN ?= 0
CC ?= cc
PKGS := opus ogg inih libcjson sqlite3 libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT ?= -O2
ifeq ($(SAN),1)
OPT := -O1
endif
CFLAGS := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS := $(PKG_LIBS) -lhttp_parser -lwslay -lm
LDFLAGS :=
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/web_assets.o
# The web app (web/) is compiled in: a new, changed or removed file (a directory's time changes)
# regenerates $(BUILD)/gen/web_assets.c (scripts/embed_web.py, table in src/api/web.h). Of
# web/node_modules only hls.js's two files count, when `npm ci` in web/ (make deps) installed them.
WEB_DEPS := $(shell find web -path web/node_modules -prune -o -print 2>/dev/null | sort) \
	$(wildcard web/node_modules/hls.js/dist/hls.min.js web/node_modules/hls.js/LICENSE)
UNIT_SRC := $(shell find tests/unit -name '*_test.c' 2>/dev/null | sort)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
FUZZ_SRC := $(shell find tests/fuzz -name '*_fuzz.c' 2>/dev/null | sort)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)

.PHONY: all units test demo deps clean format format-check bench fuzz fuzz-build fuzz-bins

all: $(BUILD)/tribune $(BUILD)/tribune-load

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/web_assets.c: scripts/embed_web.py $(WEB_DEPS)
	@mkdir -p $(dir $@)
	python3 scripts/embed_web.py web $@

$(BUILD)/obj/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libtribune.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tribune: $(BUILD)/obj/src/main.o $(BUILD)/libtribune.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tribune-load: $(BUILD)/obj/tools/tribune-load.o \
		$(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tools/load/*.c))) $(BUILD)/libtribune.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests (Check): one binary per source module, tests/unit mirrors src/.
$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/harness.h $(BUILD)/libtribune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) $(LDFLAGS) -o $@ $< $(BUILD)/libtribune.a \
		$(LDLIBS) $(shell pkg-config --libs check)

# Unit tests of the load tool (tests/unit/tools mirrors tools/): linked with its modules.
LOAD_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tools/load/*.c)))
$(BUILD)/tests/unit/tools/%: tests/unit/tools/%.c tests/unit/harness.h $(LOAD_OBJ) $(BUILD)/libtribune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools $(shell pkg-config --cflags check) $(LDFLAGS) -o $@ $< $(LOAD_OBJ) \
		$(BUILD)/libtribune.a $(LDLIBS) $(shell pkg-config --libs check)

# Fuzz drivers, built as corpus replayers (tests/fuzz/replay.c supplies main).
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/replay.c $(BUILD)/libtribune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/libtribune.a $(LDLIBS)

units: $(UNIT_BIN) $(FUZZ_BIN)

# libFuzzer builds (docs/fuzzing.md): every driver, linked with clang's libFuzzer under ASan and
# UBSan, the library rebuilt with coverage instrumentation, all in $(FUZZ_DIR)/. `make fuzz` runs
# each for FUZZ_SECONDS from its committed corpus; new inputs go to $(FUZZ_DIR)/corpus/<name>/
# (the committed corpus is only read), a crash's reproducer to $(FUZZ_DIR)/artifacts/.
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SHORT ?= 30
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%_fuzz.c=%)
LIBFUZZER_BIN := $(FUZZ_NAMES:%=$(FUZZ_DIR)/%_fuzz)

fuzz-build:
	$(MAKE) CC=clang SAN=1 BUILD=$(FUZZ_DIR) EXTRA_CFLAGS=-fsanitize=fuzzer-no-link fuzz-bins

# Only meaningful inside the sub-make above (BUILD=$(FUZZ_DIR), CC=clang).
fuzz-bins: $(LIBFUZZER_BIN)

$(LIBFUZZER_BIN): $(FUZZ_DIR)/%: tests/fuzz/%.c $(FUZZ_DIR)/libtribune.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(FUZZ_DIR)/libtribune.a $(LDLIBS)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/artifacts
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$n; \
		echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
		$(FUZZ_DIR)/$${n}_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$n- $(FUZZ_DIR)/corpus/$$n \
			tests/fuzz/corpus/$$n || exit 1; \
	done

deps:
	@./scripts/deps.sh

# `make test` builds its three trees on every core (CI calls a plain `make test`).
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	$(MAKE) format-check
	$(MAKE) -j$(TEST_JOBS) all units
	$(MAKE) -j$(TEST_JOBS) SAN=1 BUILD=build/asan all units
	$(MAKE) -j$(TEST_JOBS) fuzz-build
	FUZZ_SHORT=$(FUZZ_SHORT) ./tests/run.sh

demo: deps
	$(MAKE) all
	./$(BUILD)/tribune demo $(DEMO_ARGS)

bench: deps all
	./bench/run.sh

format:
	clang-format -i $$(find src tools tests -name '*.[ch]')

format-check:
	@command -v clang-format >/dev/null || { echo "clang-format missing: run scripts/deps.sh"; exit 1; }
	clang-format --dry-run -Werror $$(find src tools tests -name '*.[ch]')

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/src/main.d $(BUILD)/obj/tools/tribune-load.d \
	$(patsubst %.c,$(BUILD)/obj/%.d,$(wildcard tools/load/*.c))
