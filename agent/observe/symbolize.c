/* symbolize.c - ELF (libelf) and kallsyms symbolization with a bounded cache.
 *
 * A user address is first placed in an executable mapping of the process, then turned into a
 * file offset (addr - start + mapping offset) and from there into an ELF virtual address
 * through the PT_LOAD segment that holds that offset. That one formula covers fixed executables,
 * PIE executables and shared libraries alike. The symbol is the last function symbol at or
 * below that address (and, when the symbol has a size, covering it). Lookups by name (for
 * redirects) run the same formula backwards: symbol value, segment, file offset, the
 * executable mapping of that file holding the offset. Every alias is kept, so that any name
 * of a function can be looked up; by address the best ranked alias answers.
 *
 * The file behind a mapping is opened through /proc/PID/root (so that containers work); when
 * that is not the mapped inode any more (replaced on upgrade, deleted), through
 * /proc/PID/map_files/START-END, which always is.
 *
 * Invariants: an ELF table referenced by a cached process map is never evicted (the maps hold
 * a reference); the byte budget is enforced on the others after every load and after
 * obs_sym_forget_procs(). Nothing here logs above debug.
 */
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/symbolize.h"

#define SYM_DEFAULT_CACHE_BYTES (64u << 20)
#define SYM_DEFAULT_MAX_PROCS	256
#define SYM_MAX_ELF_SYMS	(4u << 20) /* functions in one file; more are ignored */
#define SYM_MAX_KERNEL_SYMS	(2u << 20)
#define SYM_MAX_MAPS		4096 /* executable mappings of one process */
#define SYM_MAX_SEGS		16
#define SYM_BUILD_ID_MAX	64

struct sym_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t name; /* offset into names */
	uint32_t rank; /* lower is preferred among aliases at one address; SYM_IFUNC set for
			* an STT_GNU_IFUNC (its address is the resolver's), SYM_OLDVER for a
			* symbol version that is not the default (memcpy@GLIBC_2.2.5) */
};

#define SYM_IFUNC  (1u << 31)
#define SYM_OLDVER (1u << 30)

struct sym_segment {
	uint64_t offset, vaddr, filesz;
};

struct elf_tab {
	struct elf_tab *next;
	uint8_t build_id[SYM_BUILD_ID_MAX];
	size_t build_id_len;
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	off_t fsize;
	struct sym_segment segs[SYM_MAX_SEGS];
	unsigned nsegs;
	struct sym_entry *syms;
	size_t nsyms;
	char *names;
	size_t bytes;
	uint64_t last_use;
	unsigned refs;
};

struct proc_map {
	uint64_t start, end, offset;
	dev_t dev;
	ino_t ino;
	char *path;	     /* as /proc/PID/maps shows it */
	const char *module;  /* basename within path */
	struct elf_tab *tab; /* NULL until first needed, or when the file cannot be read */
	bool tried;
};

struct proc {
	int pid;
	struct proc_map *maps;
	size_t nmaps;
	uint64_t last_use;
};

struct ksym {
	uint64_t addr;
	uint32_t name, module; /* offsets into knames; module 0 = "[kernel]" */
};

struct obs_symbolizer {
	size_t max_cache_bytes;
	unsigned max_procs;
	struct elf_tab *elfs;
	unsigned nelfs;
	size_t cache_bytes;
	struct proc *procs;
	unsigned nprocs;
	uint64_t clock;
	uint64_t elf_hits, elf_loads, evictions;
	struct ksym *ksyms;
	size_t nksyms;
	char *knames;
	bool kernel_tried;
};

int obs_sym_new(const struct obs_sym_limits *limits, struct obs_symbolizer **out)
{
	struct obs_symbolizer *s;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->max_cache_bytes =
	    limits && limits->max_cache_bytes ? limits->max_cache_bytes : SYM_DEFAULT_CACHE_BYTES;
	s->max_procs = limits && limits->max_procs ? limits->max_procs : SYM_DEFAULT_MAX_PROCS;
	s->procs = calloc(s->max_procs, sizeof(*s->procs));
	if (!s->procs) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

static void elf_tab_free(struct elf_tab *t)
{
	free(t->syms);
	free(t->names);
	free(t);
}

static void proc_clear(struct proc *p)
{
	for (size_t i = 0; i < p->nmaps; i++) {
		if (p->maps[i].tab)
			p->maps[i].tab->refs--;
		free(p->maps[i].path);
	}
	free(p->maps);
	memset(p, 0, sizeof(*p));
}

/* Drops unreferenced tables, least recently used first, until the cache fits its budget. */
static void evict(struct obs_symbolizer *s)
{
	while (s->cache_bytes > s->max_cache_bytes) {
		struct elf_tab **victim = NULL;

		for (struct elf_tab **pp = &s->elfs; *pp; pp = &(*pp)->next)
			if (!(*pp)->refs && (!victim || (*pp)->last_use < (*victim)->last_use))
				victim = pp;
		if (!victim)
			return;
		struct elf_tab *t = *victim;

		*victim = t->next;
		s->cache_bytes -= t->bytes;
		s->nelfs--;
		s->evictions++;
		elf_tab_free(t);
	}
}

void obs_sym_forget_procs(struct obs_symbolizer *s)
{
	for (unsigned i = 0; i < s->nprocs; i++)
		proc_clear(&s->procs[i]);
	s->nprocs = 0;
	evict(s);
}

void obs_sym_free(struct obs_symbolizer *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nprocs; i++)
		proc_clear(&s->procs[i]);
	free(s->procs);
	while (s->elfs) {
		struct elf_tab *t = s->elfs;

		s->elfs = t->next;
		elf_tab_free(t);
	}
	free(s->ksyms);
	free(s->knames);
	free(s);
}

void obs_sym_stats(const struct obs_symbolizer *s, struct obs_sym_stats *out)
{
	*out = (struct obs_sym_stats){
	    .elfs = s->nelfs,
	    .cache_bytes = s->cache_bytes,
	    .elf_hits = s->elf_hits,
	    .elf_loads = s->elf_loads,
	    .evictions = s->evictions,
	    .procs = s->nprocs,
	    .kernel_syms = s->nksyms,
	};
}

/* ---- ELF files ---- */

static void read_build_id(Elf *elf, struct elf_tab *t)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((char *)data->d_buf + name_off, "GNU", 4) != 0)
				continue;
			if (nh.n_descsz == 0 || nh.n_descsz > SYM_BUILD_ID_MAX)
				continue;
			memcpy(t->build_id, (char *)data->d_buf + desc_off, nh.n_descsz);
			t->build_id_len = nh.n_descsz;
			return;
		}
	}
}

static int read_segments(Elf *elf, struct elf_tab *t)
{
	size_t n;

	if (elf_getphdrnum(elf, &n) != 0)
		return -EINVAL;
	for (size_t i = 0; i < n && t->nsegs < SYM_MAX_SEGS; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		t->segs[t->nsegs++] = (struct sym_segment){ph.p_offset, ph.p_vaddr, ph.p_filesz};
	}
	return t->nsegs ? 0 : -ENOEXEC;
}

/* Global names first, then weak, then local; among them fewer leading '_', then shorter. */
static uint32_t sym_rank(const GElf_Sym *sym, const char *name)
{
	unsigned bind = GELF_ST_BIND(sym->st_info);
	uint32_t r = bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
	uint32_t us = 0;

	while (name[us] == '_' && us < 15)
		us++;
	return (r << 24) | (us << 16) | (uint32_t)(strlen(name) > 0xffff ? 0xffff : strlen(name));
}

static int sym_cmp(const void *a, const void *b)
{
	const struct sym_entry *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static Elf_Scn *find_symtab(Elf *elf, GElf_Shdr *out)
{
	Elf_Scn *scn = NULL, *dyn = NULL;
	GElf_Shdr dynsh = {0};

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB) {
			*out = sh;
			return scn;
		}
		if (sh.sh_type == SHT_DYNSYM && !dyn) {
			dyn = scn;
			dynsh = sh;
		}
	}
	*out = dynsh;
	return dyn;
}

/* The .gnu.version of a .dynsym (one GElf_Versym a symbol), or NULL. */
static Elf_Data *find_versym(Elf *elf)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_GNU_versym)
			return elf_getdata(scn, NULL);
	}
	return NULL;
}

static int read_symbols(Elf *elf, struct elf_tab *t)
{
	GElf_Shdr sh;
	Elf_Scn *scn = find_symtab(elf, &sh);
	Elf_Data *data, *versym = NULL;
	size_t n, names_len = 1, names_cap = 4096, k = 0;

	if (!scn)
		return 0; /* stripped: the module is still known */
	if (sh.sh_type == SHT_DYNSYM)
		versym = find_versym(elf);
	data = elf_getdata(scn, NULL);
	if (!data || !sh.sh_entsize)
		return -EINVAL;
	n = sh.sh_size / sh.sh_entsize;
	if (n > SYM_MAX_ELF_SYMS)
		n = SYM_MAX_ELF_SYMS;
	t->syms = calloc(n ? n : 1, sizeof(*t->syms));
	t->names = malloc(names_cap);
	if (!t->syms || !t->names)
		return -ENOMEM;
	t->names[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		GElf_Sym sym;
		const char *name;
		size_t len;
		unsigned type;

		if (!gelf_getsym(data, (int)i, &sym))
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF ||
		    !sym.st_value)
			continue;
		name = elf_strptr(elf, sh.sh_link, sym.st_name);
		if (!name || !*name)
			continue;
		len = strlen(name) + 1;
		if (names_len + len > UINT32_MAX)
			break;
		if (names_len + len > names_cap) {
			char *p;

			while (names_len + len > names_cap)
				names_cap *= 2;
			p = realloc(t->names, names_cap);
			if (!p)
				return -ENOMEM;
			t->names = p;
		}
		memcpy(t->names + names_len, name, len);
		GElf_Versym vs = 0;

		if (versym && !gelf_getversym(versym, (int)i, &vs))
			vs = 0;
		t->syms[k++] = (struct sym_entry){sym.st_value, sym.st_size, (uint32_t)names_len,
						  sym_rank(&sym, name) |
						      (type == STT_GNU_IFUNC ? SYM_IFUNC : 0) |
						      ((vs & 0x8000) ? SYM_OLDVER : 0)};
		names_len += len;
	}
	/* Aliases at one address sort best ranked first: that one names the address. */
	qsort(t->syms, k, sizeof(*t->syms), sym_cmp);
	t->nsyms = k;
	t->bytes = sizeof(*t) + k * sizeof(*t->syms) + names_len;
	return 0;
}

static struct elf_tab *find_by_file(struct obs_symbolizer *s, const struct stat *st)
{
	for (struct elf_tab *t = s->elfs; t; t = t->next)
		if (t->dev == st->st_dev && t->ino == st->st_ino && t->fsize == st->st_size &&
		    t->mtime_ns == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec)
			return t;
	return NULL;
}

static struct elf_tab *find_by_build_id(struct obs_symbolizer *s, const struct elf_tab *k)
{
	if (!k->build_id_len)
		return NULL;
	for (struct elf_tab *t = s->elfs; t; t = t->next)
		if (t->build_id_len == k->build_id_len &&
		    !memcmp(t->build_id, k->build_id, k->build_id_len))
			return t;
	return NULL;
}

/* Returns the cached or newly parsed table of the file open on fd, or NULL with errno set. */
static struct elf_tab *elf_tab_get(struct obs_symbolizer *s, int fd)
{
	struct elf_tab *t, *hit;
	struct stat st;
	Elf *elf;
	int err;

	if (fstat(fd, &st) < 0)
		return NULL;
	hit = find_by_file(s, &st);
	if (hit) {
		s->elf_hits++;
		return hit;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->fsize = st.st_size;
	t->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		err = -ENOEXEC;
		goto fail;
	}
	read_build_id(elf, t);
	hit = find_by_build_id(s, t);
	if (hit) {
		/* Same code under another name (a container's copy): share the table. */
		s->elf_hits++;
		elf_end(elf);
		elf_tab_free(t);
		return hit;
	}
	err = read_segments(elf, t);
	if (!err)
		err = read_symbols(elf, t);
	if (err)
		goto fail;
	if (!t->bytes)
		t->bytes = sizeof(*t);
	elf_end(elf);
	t->next = s->elfs;
	s->elfs = t;
	s->nelfs++;
	s->cache_bytes += t->bytes;
	s->elf_loads++;
	return t;
fail:
	if (elf)
		elf_end(elf);
	elf_tab_free(t);
	errno = -err;
	return NULL;
}

static const struct sym_entry *sym_find(const struct sym_entry *v, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	lo--;
	while (lo && v[lo - 1].addr == v[lo].addr) /* the best ranked alias */
		lo--;
	if (v[lo].size && addr >= v[lo].addr + v[lo].size)
		return NULL;
	return &v[lo];
}

/* ---- processes ---- */

static int parse_maps(int pid, struct proc *p)
{
	char path[64], *line = NULL;
	size_t cap = 0, alloc = 0;
	_cleanup_fclose_ FILE *f = NULL;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int n = 0;
		char *file, *nl, *slash;
		struct proc_map *m;

		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &n) < 7 ||
		    !n)
			continue;
		file = line + n;
		if (perms[2] != 'x' || !ino || file[0] != '/')
			continue;
		if (p->nmaps >= SYM_MAX_MAPS)
			break;
		nl = strchr(file, '\n');
		if (nl)
			*nl = '\0';
		if (p->nmaps == alloc) {
			size_t na = alloc ? alloc * 2 : 32;
			struct proc_map *v = realloc(p->maps, na * sizeof(*v));

			if (!v) {
				err = -ENOMEM;
				break;
			}
			p->maps = v;
			alloc = na;
		}
		m = &p->maps[p->nmaps];
		*m = (struct proc_map){.start = start,
				       .end = end,
				       .offset = off,
				       .dev = makedev(maj, min),
				       .ino = ino};
		m->path = strdup(file);
		if (!m->path) {
			err = -ENOMEM;
			break;
		}
		slash = strrchr(m->path, '/');
		m->module = slash ? slash + 1 : m->path;
		p->nmaps++;
	}
	free(line);
	return err;
}

static struct proc *proc_get(struct obs_symbolizer *s, int pid, int *err)
{
	struct proc *victim = NULL;

	for (unsigned i = 0; i < s->nprocs; i++)
		if (s->procs[i].pid == pid) {
			s->procs[i].last_use = ++s->clock;
			return &s->procs[i];
		}
	if (s->nprocs < s->max_procs) {
		victim = &s->procs[s->nprocs++];
	} else {
		victim = &s->procs[0];
		for (unsigned i = 1; i < s->nprocs; i++)
			if (s->procs[i].last_use < victim->last_use)
				victim = &s->procs[i];
		proc_clear(victim);
	}
	victim->pid = pid;
	victim->last_use = ++s->clock;
	*err = parse_maps(pid, victim);
	if (*err) {
		/* Keep the slot as an empty process: a vanished pid is not re-read every frame. */
		proc_clear(victim);
		victim->pid = pid;
		victim->last_use = s->clock;
		return NULL;
	}
	return victim;
}

/* Opens the mapped file itself: through the process's root, else its map_files entry. */
static int open_mapped(int pid, const struct proc_map *m)
{
	char path[PATH_MAX + 64];
	struct stat st;
	int fd;

	if (snprintf(path, sizeof(path), "/proc/%d/root%s", pid, m->path) < (int)sizeof(path)) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (fstat(fd, &st) == 0 && st.st_ino == m->ino && st.st_dev == m->dev)
				return fd;
			close(fd);
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, m->start,
		 m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int obs_sym_prime(struct obs_symbolizer *s, int pid)
{
	struct proc *p;
	int err = 0;

	p = proc_get(s, pid, &err);
	if (!p)
		return err ? err : -ESRCH;
	if (!p->nmaps) {
		/* read in the middle of an exec (comm set, program not mapped yet): again */
		proc_clear(p);
		p->pid = pid;
		err = parse_maps(pid, p);
		if (err)
			return err;
	}
	for (size_t i = 0; i < p->nmaps; i++) {
		struct proc_map *m = &p->maps[i];
		int fd;

		if (m->tried)
			continue;
		m->tried = true;
		fd = open_mapped(pid, m);
		if (fd < 0)
			continue;
		m->tab = elf_tab_get(s, fd);
		close(fd);
		if (m->tab) {
			m->tab->refs++;
			evict(s);
		}
	}
	return 0;
}

int obs_sym_user(struct obs_symbolizer *s, int pid, uint64_t addr, struct obs_sym *out)
{
	struct proc_map *m = NULL;
	struct proc *p;
	uint64_t file_off;
	int err = 0;

	*out = (struct obs_sym){0};
	p = proc_get(s, pid, &err);
	if (!p)
		return err ? err : -ESRCH;
	if (!p->maps)
		return -ESRCH;
	for (size_t i = 0; i < p->nmaps; i++)
		if (addr >= p->maps[i].start && addr < p->maps[i].end) {
			m = &p->maps[i];
			break;
		}
	if (!m)
		return -ENOENT;
	out->module = m->module;
	if (!m->tried) {
		int fd = open_mapped(pid, m);

		m->tried = true;
		if (fd < 0) {
			log_debug("cannot open '%s' of pid %d: %s", m->path, pid, strerror(-fd));
			return 0;
		}
		m->tab = elf_tab_get(s, fd);
		if (!m->tab)
			log_debug("cannot read ELF '%s' of pid %d: %s", m->path, pid,
				  strerror(errno));
		close(fd);
		if (m->tab) {
			m->tab->refs++;
			evict(s);
		}
	}
	if (!m->tab)
		return 0;
	m->tab->last_use = ++s->clock;
	file_off = addr - m->start + m->offset;
	for (unsigned i = 0; i < m->tab->nsegs; i++) {
		const struct sym_segment *g = &m->tab->segs[i];
		const struct sym_entry *e;
		uint64_t vaddr;

		if (file_off < g->offset || file_off >= g->offset + g->filesz)
			continue;
		vaddr = file_off - g->offset + g->vaddr;
		e = sym_find(m->tab->syms, m->tab->nsyms, vaddr);
		if (e) {
			out->func = m->tab->names + e->name;
			out->offset = vaddr - e->addr;
		}
		break;
	}
	return 0;
}

/* ---- by name ---- */

static bool is_object(const struct proc_map *m, const char *object, const char *exe)
{
	if (!object)
		return streq(m->path, exe);
	if (strchr(object, '/'))
		return streq(m->path, object);
	return streq(m->module, object);
}

/* The table of the file open on fd (closed here; a -errno fd is returned as is). */
static int fd_table(struct obs_symbolizer *s, int fd, struct elf_tab **pt)
{
	int err;

	if (fd < 0)
		return fd;
	*pt = elf_tab_get(s, fd);
	err = errno;
	close(fd);
	if (!*pt)
		return err ? -err : -ENOEXEC;
	(*pt)->last_use = ++s->clock;
	return 0;
}

/* Reads the maps of pid now into p and the symbol table of object: *pm its first executable
 * mapping, *pt its table (cached, unreferenced: valid until the next evict()). */
static int object_table(struct obs_symbolizer *s, int pid, const char *object, struct proc *p,
			struct proc_map **pm, struct elf_tab **pt)
{
	char path[64], exe[PATH_MAX] = "";
	ssize_t n;
	int err;

	if (!object) {
		snprintf(path, sizeof(path), "/proc/%d/exe", pid);
		n = readlink(path, exe, sizeof(exe) - 1);
		if (n < 0)
			return errno == ENOENT ? -ESRCH : -errno;
		exe[n] = '\0';
	}
	err = parse_maps(pid, p);
	if (err)
		return err;
	*pm = NULL;
	for (size_t i = 0; i < p->nmaps && !*pm; i++)
		if (is_object(&p->maps[i], object, exe))
			*pm = &p->maps[i];
	if (!*pm)
		return -ENXIO;
	return fd_table(s, open_mapped(pid, *pm), pt);
}

/* The runtime address of the ELF virtual address vaddr of the file mapped by m. */
static int place(const struct proc *p, const struct proc_map *m, const struct elf_tab *t,
		 uint64_t vaddr, uint64_t *addr)
{
	for (unsigned i = 0; i < t->nsegs; i++) {
		const struct sym_segment *g = &t->segs[i];
		uint64_t off;

		if (vaddr < g->vaddr || vaddr >= g->vaddr + g->filesz)
			continue;
		off = vaddr - g->vaddr + g->offset;
		for (size_t j = 0; j < p->nmaps; j++) {
			const struct proc_map *o = &p->maps[j];

			if (o->dev != m->dev || o->ino != m->ino || !streq(o->path, m->path))
				continue;
			if (off >= o->offset && off < o->offset + (o->end - o->start)) {
				*addr = o->start + (off - o->offset);
				return 0;
			}
		}
		break;
	}
	return -ENOENT; /* not in an executable part of the file mapped now */
}

/* Lower is better among the symbols of one name: the default version, then global. */
static unsigned find_key(const struct sym_entry *e)
{
	return ((e->rank & SYM_OLDVER) ? 4 : 0) | ((e->rank >> 24 & 0x3) ? 1 : 0);
}

/* The symbol name of t that obs_sym_find() means: 0 with *out, or -ENOENT, -ENOTUNIQ,
 * -EOPNOTSUPP. */
static int pick(const struct elf_tab *t, const char *name, const struct sym_entry **out)
{
	const struct sym_entry *hit = NULL;
	bool twice = false;

	for (size_t i = 0; i < t->nsyms; i++) {
		const struct sym_entry *e = &t->syms[i];

		if (!streq(t->names + e->name, name) || (hit && hit->addr == e->addr))
			continue;
		/* the best kind wins; two of the best kind at two addresses are ambiguous */
		if (!hit || find_key(e) < find_key(hit)) {
			hit = e;
			twice = false;
		} else if (find_key(e) == find_key(hit)) {
			twice = true;
		}
	}
	if (!hit)
		return -ENOENT;
	if (twice)
		return -ENOTUNIQ;
	if (hit->rank & SYM_IFUNC)
		return -EOPNOTSUPP;
	*out = hit;
	return 0;
}

int obs_sym_find(struct obs_symbolizer *s, int pid, const char *object, const char *name,
		 struct obs_sym_addr *out)
{
	struct proc p = {.pid = pid};
	const struct sym_entry *hit = NULL;
	struct proc_map *m;
	struct elf_tab *t;
	int err;

	memset(out, 0, sizeof(*out));
	if (!name || !*name)
		return -EINVAL;
	err = object_table(s, pid, object, &p, &m, &t);
	if (!err)
		err = pick(t, name, &hit);
	if (!err)
		err = place(&p, m, t, hit->addr, &out->addr);
	if (!err) {
		out->size = hit->size;
		hs_strlcpy(out->object, m->module, sizeof(out->object));
	}
	proc_clear(&p);
	evict(s);
	return err;
}

/* The table of the ELF file path, mapped by nobody perhaps (a patch library not loaded yet). */
static int file_table(struct obs_symbolizer *s, const char *path, struct elf_tab **pt)
{
	int fd;

	if (!path || !*path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd_table(s, fd < 0 ? -errno : fd, pt);
}

int obs_sym_file_find(struct obs_symbolizer *s, const char *path, const char *name,
		      uint64_t *offset, uint64_t *size)
{
	const struct sym_entry *hit = NULL;
	struct elf_tab *t;
	int err;

	*offset = *size = 0;
	if (!name || !*name)
		return -EINVAL;
	err = file_table(s, path, &t);
	if (!err)
		err = pick(t, name, &hit);
	if (!err) {
		err = -ENOENT; /* not in a loadable segment */
		for (unsigned i = 0; i < t->nsegs; i++) {
			const struct sym_segment *g = &t->segs[i];

			if (hit->addr >= g->vaddr && hit->addr < g->vaddr + g->filesz) {
				*offset = hit->addr - g->vaddr + g->offset;
				*size = hit->size;
				err = 0;
				break;
			}
		}
	}
	evict(s);
	return err;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The FN__alt_* functions of t, sorted by name, at most max into names: how many, or -errno. */
static int collect_alts(const struct elf_tab *t, const char *fn, char names[][OBS_SYM_NAME_MAX],
			int max)
{
	_cleanup_free_ const char **v = NULL;
	char prefix[OBS_SYM_NAME_MAX + 8];
	size_t plen, nv = 0;
	int stored = 0;

	if (snprintf(prefix, sizeof(prefix), "%s__alt_", fn) >= (int)sizeof(prefix))
		return -ENAMETOOLONG;
	plen = strlen(prefix);
	v = calloc(t->nsyms ? t->nsyms : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->nsyms; i++) {
		const char *name = t->names + t->syms[i].name;
		size_t len = strlen(name);

		if (len > plen && len < OBS_SYM_NAME_MAX && !strncmp(name, prefix, plen) &&
		    !(t->syms[i].rank & (SYM_IFUNC | SYM_OLDVER)))
			v[nv++] = name;
	}
	qsort(v, nv, sizeof(*v), name_cmp);
	for (size_t i = 0; i < nv && stored < max; i++)
		if (!i || !streq(v[i], v[i - 1]))
			strcpy(names[stored++], v[i]);
	return stored;
}

int obs_sym_alternatives(struct obs_symbolizer *s, int pid, const char *object, const char *fn,
			 char names[][OBS_SYM_NAME_MAX], int max)
{
	struct proc p = {.pid = pid};
	struct proc_map *m;
	struct elf_tab *t;
	int err;

	if (!fn || !*fn || max < 0)
		return -EINVAL;
	err = object_table(s, pid, object, &p, &m, &t);
	if (!err)
		err = collect_alts(t, fn, names, max);
	proc_clear(&p);
	evict(s);
	return err;
}

int obs_sym_file_alternatives(struct obs_symbolizer *s, const char *path, const char *fn,
			      char names[][OBS_SYM_NAME_MAX], int max)
{
	struct elf_tab *t;
	int err;

	if (!fn || !*fn || max < 0)
		return -EINVAL;
	err = file_table(s, path, &t);
	if (!err)
		err = collect_alts(t, fn, names, max);
	evict(s);
	return err;
}

/* ---- kernel ---- */

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int load_kallsyms(struct obs_symbolizer *s)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/kallsyms", "re");
	size_t cap = 0, names_cap = 1 << 20, names_len = 9, alloc = 0;
	char *line = NULL;
	int err = 0;

	if (!f)
		return -errno;
	s->knames = malloc(names_cap);
	if (!s->knames)
		return -ENOMEM;
	memcpy(s->knames, "[kernel]", 9);
	while (getline(&line, &cap, f) > 0 && s->nksyms < SYM_MAX_KERNEL_SYMS) {
		unsigned long long addr;
		char type, name[256], mod[128] = "";
		size_t nl, ml;
		struct ksym *k;

		if (sscanf(line, "%llx %c %255s [%127[^]]]", &addr, &type, name, mod) < 3)
			continue;
		if ((type != 't' && type != 'T') || !addr)
			continue;
		nl = strlen(name) + 1;
		ml = mod[0] ? strlen(mod) + 1 : 0;
		if (names_len + nl + ml > names_cap) {
			char *p = realloc(s->knames, names_cap * 2);

			if (!p) {
				err = -ENOMEM;
				break;
			}
			s->knames = p;
			names_cap *= 2;
		}
		if (s->nksyms == alloc) {
			size_t na = alloc ? alloc * 2 : 65536;
			struct ksym *v = realloc(s->ksyms, na * sizeof(*v));

			if (!v) {
				err = -ENOMEM;
				break;
			}
			s->ksyms = v;
			alloc = na;
		}
		k = &s->ksyms[s->nksyms++];
		k->addr = addr;
		k->name = (uint32_t)names_len;
		memcpy(s->knames + names_len, name, nl);
		names_len += nl;
		k->module = 0;
		if (ml) {
			/* Consecutive symbols of one module share its name. */
			if (s->nksyms > 1 && s->ksyms[s->nksyms - 2].module &&
			    streq(s->knames + s->ksyms[s->nksyms - 2].module, mod)) {
				k->module = s->ksyms[s->nksyms - 2].module;
			} else {
				k->module = (uint32_t)names_len;
				memcpy(s->knames + names_len, mod, ml);
				names_len += ml;
			}
		}
	}
	free(line);
	if (err) {
		free(s->ksyms);
		free(s->knames);
		s->ksyms = NULL;
		s->knames = NULL;
		s->nksyms = 0;
		return err;
	}
	qsort(s->ksyms, s->nksyms, sizeof(*s->ksyms), ksym_cmp);
	return 0;
}

int obs_sym_kernel(struct obs_symbolizer *s, uint64_t addr, struct obs_sym *out)
{
	size_t lo = 0, hi;

	*out = (struct obs_sym){.module = "[kernel]"};
	if (!s->kernel_tried) {
		int err;

		s->kernel_tried = true;
		err = load_kallsyms(s);
		if (err)
			log_debug("cannot read /proc/kallsyms: %s", strerror(-err));
	}
	if (!s->nksyms)
		return -ENOENT;
	hi = s->nksyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->ksyms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return -ENOENT;
	out->func = s->knames + s->ksyms[lo - 1].name;
	out->module = s->knames + s->ksyms[lo - 1].module;
	out->offset = addr - s->ksyms[lo - 1].addr;
	return 0;
}
