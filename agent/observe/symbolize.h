/* symbolize.h - instruction addresses to "function+offset (module)", for user and kernel code.
 *
 * User addresses are resolved through the process's executable mappings (/proc/PID/maps) and
 * the symbol tables (.symtab, else .dynsym) of the ELF files behind them, read with libelf.
 * Kernel addresses are resolved through /proc/kallsyms, read once, lazily.
 *
 * Why a cache: a host-wide profile touches the same libc in a hundred processes. Parsed symbol
 * tables are shared by build-id (NT_GNU_BUILD_ID; files without one by device, inode and mtime)
 * and evicted least recently used beyond a byte budget; process maps are cached per pid until
 * obs_sym_forget_procs(). Memory stays bounded whatever the host runs.
 *
 * Invariants: the strings an obs_sym points to belong to the symbolizer and stay valid only
 * until the next call into it (an eviction may free them): copy what you keep.
 */
#ifndef HS_OBS_SYMBOLIZE_H
#define HS_OBS_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct obs_symbolizer;

struct obs_sym {
	const char *func;   /* NULL when no symbol covers the address */
	const char *module; /* basename of the ELF file, "[kernel]" or the kernel module name */
	uint64_t offset;    /* address - symbol start (valid when func is set) */
};

struct obs_sym_limits {
	size_t max_cache_bytes; /* parsed symbol tables kept; 0 = 64 MiB */
	unsigned max_procs;	/* process maps kept; 0 = 256 */
};

/* limits may be NULL for the defaults. Returns 0 or -errno. */
int obs_sym_new(const struct obs_sym_limits *limits, struct obs_symbolizer **out);
void obs_sym_free(struct obs_symbolizer *s);

/*
 * Resolves a user address of process pid. Returns 0 (out->func NULL when the address is in a
 * known module without a covering symbol), -ENOENT when no executable mapping holds it,
 * -ESRCH when the process is gone, or another -errno.
 */
int obs_sym_user(struct obs_symbolizer *s, int pid, uint64_t addr, struct obs_sym *out);
/* Resolves a kernel address. Returns 0, -ENOENT (no symbol) or -errno (no kallsyms). */
int obs_sym_kernel(struct obs_symbolizer *s, uint64_t addr, struct obs_sym *out);
/* Drops the cached process maps (processes map and unmap code over time); keeps ELF tables. */
void obs_sym_forget_procs(struct obs_symbolizer *s);
/* Reads the maps of pid and the symbol tables of every file it maps now, so that its
 * addresses can still be resolved after it exited (a crash loop's processes live for less
 * than a capture). Returns 0 or -errno (-ESRCH: already gone). */
int obs_sym_prime(struct obs_symbolizer *s, int pid);

/* ---- by name (for redirects: issue 6) ---- */

#define OBS_SYM_NAME_MAX 128 /* symbol names returned, NUL included (as ACT_NAME_MAX) */

struct obs_sym_addr {
	uint64_t addr;		       /* the function's entry in the process */
	uint64_t size;		       /* its ELF st_size (0: unknown) */
	char object[OBS_SYM_NAME_MAX]; /* basename of the file that defines it */
};

/*
 * The runtime address and size of the function (STT_FUNC) `name` in process pid, read from
 * the symbol table of a file it maps now (maps are read afresh: the cache may be older than
 * a dlopen). object: NULL for the main executable (/proc/PID/exe), else a mapped file's path
 * as /proc/PID/maps shows it or its basename ("libc.so.6"). PIE and shared libraries are
 * placed through their executable mapping and its file offset.
 * 0; -ENXIO (no such object mapped executable), -ENOENT (no such function), -ENOTUNIQ (two
 * local functions of that name), -EOPNOTSUPP (an IFUNC: its address is the resolver's),
 * -ESRCH (no process), -ENOEXEC (not an ELF file), or another -errno.
 */
int obs_sym_find(struct obs_symbolizer *s, int pid, const char *object, const char *name,
		 struct obs_sym_addr *out);
/*
 * The functions of the same object named FN__alt_NAME (issue 6's naming convention for the
 * alternatives of FN), sorted by name, at most max of them into names (longer names are
 * skipped). Returns how many were stored, or the errors of obs_sym_find().
 */
int obs_sym_alternatives(struct obs_symbolizer *s, int pid, const char *object, const char *fn,
			 char names[][OBS_SYM_NAME_MAX], int max);

/*
 * The same in an ELF file that no process need map (a patch library before it is loaded):
 * the function's file offset (where a mapping of the file at offset o and address a puts it at
 * a + offset - o) and ELF size, and the FN__alt_* functions of the file. Errors as above, and
 * -ENOENT for a file that does not exist.
 */
int obs_sym_file_find(struct obs_symbolizer *s, const char *path, const char *name,
		      uint64_t *offset, uint64_t *size);
int obs_sym_file_alternatives(struct obs_symbolizer *s, const char *path, const char *fn,
			      char names[][OBS_SYM_NAME_MAX], int max);

struct obs_sym_stats {
	unsigned elfs;	    /* parsed ELF files in the cache */
	size_t cache_bytes; /* their memory */
	uint64_t elf_hits;  /* lookups answered from the cache, by identity */
	uint64_t elf_loads; /* ELF files parsed */
	uint64_t evictions; /* ELF tables dropped to stay under the budget */
	unsigned procs;	    /* cached process maps */
	size_t kernel_syms; /* kallsyms entries, 0 until a kernel address was asked */
};
void obs_sym_stats(const struct obs_symbolizer *s, struct obs_sym_stats *out);

#endif
