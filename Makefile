# homeostat - one entry point: all, run, test, bench, deps, vmlinux, install, format.
#
#   make              build build/homeostatd and build/homeostat (BPF objects, skeletons, agent)
#   make SANITIZE=1   the same with AddressSanitizer and UBSan, under build/asan/
#   sudo make run     install missing packages, build, run the daemon in the foreground on the
#                     repo's policies and runbooks with the database in var/
#   sudo make test    install missing packages, build (plain and sanitized), run every test
#   make bench        benchmarks that print figures
#   make vmlinux      regenerate vmlinux/<arch>/vmlinux.h from the running kernel's BTF
#   V=1               show every command

ARCH ?= $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
PREFIX ?= /usr/local

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

ifeq ($(SANITIZE),1)
OUT := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
OUT := build
SANFLAGS :=
endif

# Debian 12 packages the build, the tests and the benchmarks need.
DEPS := clang llvm clang-format gcc make pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev \
	libsqlite3-dev sqlite3 libyaml-dev libcmocka-dev libcapstone-dev iproute2 procps \
	util-linux python3
# ... and those only the benchmarks need (bench/overhead.sh compares with syscount).
BENCH_DEPS := libbpf-tools

CFLAGS ?= -g -O2
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wformat=2 -Wshadow \
	-D_GNU_SOURCE -Iagent -Iagent/lib -Ibpf -I$(OUT)/skel $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS := -lbpf -lelf -lz -lsqlite3 -lyaml -lcapstone -lm

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Ivmlinux/$(ARCH) -Ibpf -Wall -Werror

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(OUT)/skel/%.skel.h,$(BPF_SRCS))

# Every agent/**/*.c goes into one static library except the two entry points, so that the
# daemon, the CLI, the unit tests and the benchmarks link exactly the same code.
AGENT_SRCS := $(wildcard agent/*/*.c)
ENTRY_SRCS := agent/main.c agent/ctl/cli.c
LIB_SRCS := $(filter-out $(ENTRY_SRCS),$(AGENT_SRCS))
LIB_OBJS := $(patsubst %.c,$(OUT)/obj/%.o,$(LIB_SRCS))
LIB := $(OUT)/libhomeostat.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(OUT)/tests/%,$(TOOL_SRCS))
WORKLOAD_SRCS := $(wildcard tests/workloads/*.c)
WORKLOAD_BINS := $(patsubst tests/workloads/%.c,$(OUT)/workloads/%,$(WORKLOAD_SRCS))
# Shared libraries of the workloads (tests/workloads/lib/NAME.c -> libNAME.so): patch libraries.
WORKLOAD_LIBS := $(patsubst tests/workloads/lib/%.c,$(OUT)/workloads/lib%.so,$(wildcard tests/workloads/lib/*.c))
BENCH_SRCS := $(filter-out %.bpf.c,$(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(OUT)/bench/%,$(BENCH_SRCS))

.PHONY: all run test bench deps vmlinux install format format-check clean perms check-tests
.DELETE_ON_ERROR:
.SECONDARY:

all: $(OUT)/homeostatd $(OUT)/homeostat

$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) vmlinux/$(ARCH)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(OUT)/skel/%.skel.h: $(OUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(OUT)/obj/%.o: %.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/homeostatd: $(OUT)/obj/agent/main.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/homeostat: $(OUT)/obj/agent/ctl/cli.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/tests/test_%: $(OUT)/obj/tests/unit/test_%.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(OUT)/tests/%: $(OUT)/obj/tests/tools/%.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Workloads are the faulty programs of the integration tests: plain, no sanitizer.
$(OUT)/workloads/%: tests/workloads/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -g -O2 -Wall -Wextra -Werror -D_GNU_SOURCE $< -o $@ -lpthread -lm

$(OUT)/workloads/lib%.so: tests/workloads/lib/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -g -O2 -Wall -Wextra -Werror -shared -fPIC $< -o $@

$(OUT)/bench/%: $(OUT)/obj/bench/%.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

check-tests: all $(UNIT_BINS) $(TOOL_BINS) $(WORKLOAD_BINS) $(WORKLOAD_LIBS)

# The daemon refuses configuration that is not owned by root or that group or others can
# write (it acts as root on what it says). git checks files out with the cloner's owner and
# umask, so before run and test the repo's own configuration is made root-owned and 0644.
CONFIG_DIRS := policies remediations tests/config
perms:
	$(Q)chmod -R go-w $(CONFIG_DIRS)
	$(Q)if [ "$$(id -u)" = 0 ] && [ -n "$$(find $(CONFIG_DIRS) ! -user root | head -n 1)" ]; then \
		echo "chown root:root $(CONFIG_DIRS) (homeostatd accepts only root-owned configuration)"; \
		chown -R root:root $(CONFIG_DIRS); \
	fi

deps:
	$(Q)missing=$$(for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing missing packages:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (sudo make deps)" >&2; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: deps
	$(Q)$(MAKE) --no-print-directory all perms
	$(Q)mkdir -p var
	$(OUT)/homeostatd --foreground --policy policies/default.yaml --runbooks remediations \
		--db var/memory.db --socket var/control.sock $(RUN_ARGS)

test: deps
	$(Q)$(MAKE) --no-print-directory format-check check-tests perms
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 check-tests
	$(Q)tests/run.sh

bench: DEPS += $(BENCH_DEPS)
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BINS) $(WORKLOAD_BINS) perms
	$(Q)bench/run.sh

# bench/floor.bpf.c: empty sys_enter/sys_exit programs, the floor of bench/overhead.sh.
$(OUT)/obj/bench/floor.bpf.o: bench/floor.bpf.c vmlinux/$(ARCH)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp
$(OUT)/skel/floor.skel.h: $(OUT)/obj/bench/floor.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name floor_bpf > $@
$(OUT)/obj/bench/floor.o: $(OUT)/skel/floor.skel.h

vmlinux:
	$(call msg,GEN,vmlinux/$(ARCH)/vmlinux.h)
	$(Q)mkdir -p vmlinux/$(ARCH)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/$(ARCH)/vmlinux.h.tmp
	$(Q)mv vmlinux/$(ARCH)/vmlinux.h.tmp vmlinux/$(ARCH)/vmlinux.h

install: all
	install -D -m 0755 $(OUT)/homeostatd $(DESTDIR)$(PREFIX)/sbin/homeostatd
	install -D -m 0755 $(OUT)/homeostat $(DESTDIR)$(PREFIX)/bin/homeostat
	install -d -m 0755 $(DESTDIR)/etc/homeostat/remediations
	[ -e $(DESTDIR)/etc/homeostat/policy.yaml ] || \
		install -m 0644 policies/default.yaml $(DESTDIR)/etc/homeostat/policy.yaml
	install -m 0644 remediations/*.yaml $(DESTDIR)/etc/homeostat/remediations/
	install -d -m 0700 $(DESTDIR)/var/lib/homeostat

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' | grep -v '^vmlinux/')
format:
	clang-format -i $(FORMAT_SRCS)

format-check:
	$(call msg,FORMAT,check)
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRCS)

clean:
	rm -rf build

-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
