# fed - build everything into bin/, `make check` runs every test.
#
# Layout: src/<component>/ is a room.  A component's main() lives in
# src/<component>/main.c; its other files become build/lib<component>.a, so
# unit tests link the same code the binaries run.  src/common/ is shared.
#
#   make            all binaries into bin/
#   make check      build, then run unit (Criterion) and end-to-end tests;
#                   ends with one line "N passed, N failed"
#   make unit       unit tests only
#   make asan       AddressSanitizer + UBSan build of everything, all tests
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make cppcheck   static analysis, warnings are errors
#   make bench      benchmarks in bench/ (figures against a baseline)
#   make install    binaries, man pages, units, scripts under $(DESTDIR)$(PREFIX),
#                   example configuration in $(DESTDIR)/etc/fed/
#   make uninstall  remove exactly what install put
#   make man        remake man/ from the programs' --help
#   make clean

CC       ?= cc
BUILD    ?= build
BINDIR   ?= bin
PKGS     := fuse3 libgcrypt libmicrohttpd zlib libcurl jansson sqlite3 libpq libseccomp
CPPFLAGS += -Isrc -D_GNU_SOURCE -DFUSE_USE_VERSION=314
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -fno-strict-aliasing -pthread \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   += -pthread
ALL_LIBS := $(shell pkg-config --libs $(PKGS))
TEST_LDLIBS := $(shell pkg-config --libs criterion)

ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# component -> binary name
BIN_cli       := fed
BIN_fedfs     := fedfs
BIN_authority := fed-authority
BIN_vmrunner  := fed-vmrunner
BIN_netmap    := fed-netmap
COMPONENTS    := common cli client fedfs authority vmrunner netmap machine

# The rooms: each binary links only its own component, the components it
# may use, and the packages those need.  A call across a wall (fedfs into
# the authority, say) is an undefined reference at link time.
PKGS_common    := libgcrypt zlib libcurl jansson
USES_cli       := cli client machine
PKGS_cli       := libseccomp
USES_fedfs     := fedfs
PKGS_fedfs     := fuse3 libmicrohttpd
USES_authority := authority
PKGS_authority := libmicrohttpd sqlite3 libpq
USES_vmrunner  := vmrunner machine netmap
PKGS_vmrunner  := libseccomp
USES_netmap    := netmap
PKGS_netmap    :=

srcs = $(wildcard src/$(1)/*.c)
objs = $(patsubst src/%.c,$(BUILD)/%.o,$(filter-out src/$(1)/main.c,$(call srcs,$(1))))
# components that have code (a library) and a main (a binary)
LIB_COMPONENTS := $(foreach c,$(COMPONENTS),$(if $(call objs,$(c)),$(c)))
BIN_COMPONENTS := $(foreach c,$(COMPONENTS),$(if $(wildcard src/$(c)/main.c),$(c)))
LIBS := $(foreach c,$(filter-out common,$(LIB_COMPONENTS)),$(BUILD)/lib$(c).a) \
        $(BUILD)/libcommon.a
BINS := $(foreach c,$(BIN_COMPONENTS),$(BINDIR)/$(BIN_$(c)))

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TEST_HELPERS := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(wildcard tests/lib/*.c))
# small programs the end-to-end tests run (tests/tools/, not installed)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(wildcard tests/tools/*.c))

# keep test objects: they are not temporaries
.SECONDARY:

.PHONY: all check unit e2e asan fuzz cppcheck bench demo clean install uninstall man
all: $(BINS)

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

define component_rules
$(BUILD)/lib$(1).a: $(call objs,$(1))
	@mkdir -p $$(dir $$@)
	$$(AR) rcs $$@ $$^
endef
$(foreach c,$(LIB_COMPONENTS),$(eval $(call component_rules,$(c))))

bin_libs = $(foreach u,$(USES_$(1)),$(if $(call objs,$(u)),$(BUILD)/lib$(u).a)) $(BUILD)/libcommon.a
define binary_rules
$(BINDIR)/$(BIN_$(1)): $(BUILD)/$(1)/main.o $(call bin_libs,$(1))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -Wl,--as-needed -o $$@ $$< $(call bin_libs,$(1)) \
		$$(shell pkg-config --libs $(PKGS_common) $(PKGS_$(1))) $$(LDLIBS)
endef
$(foreach c,$(BIN_COMPONENTS),$(eval $(call binary_rules,$(c))))

# pages built in as one C string each: the authority's dashboard and a
# peer's own page (src/<component>/<name>.html -> const char <name>_page[])
$(BUILD)/%_page.c: src/%.html
	@mkdir -p $(dir $@)
	{ echo '/* generated from $< by the Makefile: do not edit */'; \
	  echo 'extern const char $(notdir $*)_page[];'; \
	  echo 'const char $(notdir $*)_page[] ='; \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$$/\\n"/' $<; echo ';'; } >$@
$(BUILD)/%_page.o: $(BUILD)/%_page.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/libauthority.a: $(BUILD)/authority/dashboard_page.o
$(BUILD)/libfedfs.a: $(BUILD)/fedfs/peer_page.o

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(TEST_HELPERS) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPERS) $(LIBS) $(ALL_LIBS) $(LDLIBS) $(TEST_LDLIBS)

$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(ALL_LIBS) $(LDLIBS)

# Unit tests and end-to-end tests both report to tests/run.sh, which prints
# the one summary line.
check: all $(UNIT_BINS) $(TOOL_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run.sh all

unit: all $(UNIT_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run.sh unit

e2e: all $(UNIT_BINS) $(TOOL_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run.sh e2e

# Every test, unit and end-to-end, on the sanitized build; each process's
# report goes to build-asan/reports/, and tests/run.sh fails on any error
# in them (the daemons' logs are gone with their tests' directories).
SAN_REPORTS := $(CURDIR)/build-asan/reports
asan:
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	SAN_REPORTS=$(SAN_REPORTS) \
	ASAN_OPTIONS=log_path=$(SAN_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_REPORTS)/ubsan \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(MAKE) BUILD=build-asan BINDIR=build-asan/bin SAN=1 check

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CFLAGS  := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
                $(shell pkg-config --cflags $(PKGS))
fuzz:
	@mkdir -p $(BUILD)/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		clang $(CPPFLAGS) $(FUZZ_CFLAGS) -o $(BUILD)/fuzz/$$t fuzz/$$t.c \
			$(wildcard src/common/*.c) $(ALL_LIBS) $(LDLIBS); \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		$(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-max_len=65536 fuzz/corpus/$$t fuzz/seeds/$$t 2>&1 | tail -n 12; \
	done

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --std=c11 -D_GNU_SOURCE -Isrc \
		--suppress=missingIncludeSystem src tests/lib

# The README's first command: dependencies, build, then the story of
# scripts/demo.sh on a cluster of namespaced hosts, torn down at the end.
demo:
	bash scripts/deps.sh
	$(MAKE) all
	bash scripts/demo.sh

bench: all $(TOOL_BINS)
	@for b in bench/*.sh; do [ $$b = bench/lib.sh ] && continue; \
		echo "== $$b"; bash $$b || exit 1; done

# Installation (FHS).  /usr/local/lib/fed/ holds the kernels scripts/deps.sh
# builds; install and uninstall never touch it: scripts and the kernel
# build inputs go to $(PREFIX)/share/fed/.  Every installed path is listed
# here, and uninstall removes exactly these, then only directories it
# created and left empty.
PREFIX   ?= /usr/local
DESTDIR  ?=
SYSCONFDIR ?= /etc/fed
UNITDIR  ?= $(PREFIX)/lib/systemd/system
I_BIN    := $(DESTDIR)$(PREFIX)/bin
I_MAN    := $(DESTDIR)$(PREFIX)/share/man
I_SHARE  := $(DESTDIR)$(PREFIX)/share/fed
I_ETC    := $(DESTDIR)$(SYSCONFDIR)
I_UNIT   := $(DESTDIR)$(UNITDIR)
MAN_PAGES := $(wildcard man/*.[1-8])
CONF_EXAMPLES := $(wildcard etc/*.conf)
UNITS    := $(wildcard systemd/*.service)
I_SCRIPTS := deps.sh lib.sh mkbase.sh mkumlkernel.sh mkqemukernel.sh
I_KERNEL := $(shell git ls-files kernel 2>/dev/null || find kernel -type f)

# man/ is made from the programs' --help (scripts/mkman.sh) and committed;
# tests/e2e/install.sh fails when it is not what the binaries say
man: all
	rm -f man/*.[1-8]
	bash scripts/mkman.sh $(BINDIR) man

install: all
	install -d $(I_BIN) $(I_SHARE)/scripts $(I_ETC)
	install -m 0755 $(BINS) $(I_BIN)/
	install -m 0755 $(addprefix scripts/,$(I_SCRIPTS)) $(I_SHARE)/scripts/
	@set -e; for f in $(I_KERNEL); do \
		install -D -m 0644 $$f $(I_SHARE)/$$f; done
	@set -e; for m in $(MAN_PAGES); do s=$${m##*.}; \
		install -D -m 0644 $$m $(I_MAN)/man$$s/$$(basename $$m); done
	@set -e; for c in $(CONF_EXAMPLES); do \
		install -m 0644 $$c $(I_ETC)/$$(basename $$c).example; done
	install -d $(I_UNIT)
	@set -e; for u in $(UNITS); do \
		sed 's|@bindir@|$(PREFIX)/bin|g' $$u >$(I_UNIT)/$$(basename $$u); \
		chmod 0644 $(I_UNIT)/$$(basename $$u); done

uninstall:
	rm -f $(addprefix $(I_BIN)/,$(notdir $(BINS)))
	rm -f $(addprefix $(I_SHARE)/scripts/,$(I_SCRIPTS))
	rm -f $(addprefix $(I_SHARE)/,$(I_KERNEL))
	rm -f $(foreach m,$(MAN_PAGES),$(I_MAN)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -f $(foreach c,$(CONF_EXAMPLES),$(I_ETC)/$(notdir $(c)).example)
	rm -f $(addprefix $(I_UNIT)/,$(notdir $(UNITS)))
	@for d in $(sort $(dir $(addprefix $(I_SHARE)/,$(I_KERNEL)))) $(I_SHARE)/scripts \
		$(I_SHARE) $(I_ETC) $(I_UNIT); do \
		[ -d $$d ] && find $$d -depth -type d -empty -delete; true; done

clean:
	rm -rf build build-asan bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
