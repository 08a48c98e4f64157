/* GOT/PLT slot patching: how the tracker attaches to a running process.
 *
 * Every object's calls to malloc & co. go through a relocation slot (JUMP_SLOT
 * for PLT calls, GLOB_DAT for address-taken uses). Writing a hook's address
 * into those slots redirects the calls without LD_PRELOAD; writing back the
 * saved value detaches. This library itself is never patched, so the hooks
 * reach the real functions through its own, untouched slots. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memtrack_internal.h"

/* Relocation types that hold a function's address in a GOT slot. */
#if defined(__x86_64__)
#define CT_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define CT_R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define CT_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define CT_R_GLOB_DAT R_AARCH64_GLOB_DAT
#else
#error "cyscope's GOT patching supports x86_64 and aarch64"
#endif

typedef struct slot_rec {
  void **addr;
  void *orig; /* value before patching (may be a lazy-binding PLT stub) */
  void *hook;
  uintptr_t relro_lo, relro_hi; /* RELRO pages of the owning object */
} slot_rec;

static slot_rec *g_slots;
static size_t g_nslots, g_cap;

static int slots_reserve(size_t need) {
  slot_rec *n = ct_os_grow(g_slots, &g_cap, g_nslots, need, sizeof(slot_rec), 1024);
  if (!n) return -1;
  g_slots = n;
  return 0;
}

/* Write one slot. RELRO pages are read-only after relocation: open them for
 * the write and close them again so the object keeps its hardening. */
static int write_slot(void **addr, void *value, uintptr_t relro_lo, uintptr_t relro_hi) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)addr & ~(page - 1);
  int in_relro = (uintptr_t)addr >= relro_lo && (uintptr_t)addr < relro_hi;
  if (in_relro && mprotect((void *)start, page, PROT_READ | PROT_WRITE) != 0) return -1;
  __atomic_store_n(addr, value, __ATOMIC_RELEASE);
  if (in_relro) mprotect((void *)start, page, PROT_READ);
  return 0;
}

typedef struct patch_ctx {
  const ct_hook_def *defs;
  size_t ndefs;
  uintptr_t self_base;
  int error;
  int scan_only;      /* count slots holding a hook instead of patching */
  uint64_t found;     /* scan result */
  void **self_values; /* read this library's own slots into [ndefs] instead */
} patch_ctx;

static const ct_hook_def *find_def(const patch_ctx *ctx, const char *name) {
  for (size_t i = 0; i < ctx->ndefs; i++)
    if (strcmp(ctx->defs[i].name, name) == 0) return &ctx->defs[i];
  return NULL;
}

static slot_rec *find_slot(void **addr) {
  for (size_t i = 0; i < g_nslots; i++)
    if (g_slots[i].addr == addr) return &g_slots[i];
  return NULL;
}

/* Dynamic-section pointers are usually relocated in place by ld.so, but not
 * always (read-only .dynamic); a value below the load base is unrelocated. */
static uintptr_t dyn_ptr(uintptr_t v, uintptr_t base) { return v < base ? v + base : v; }

static void patch_relocs(patch_ctx *ctx, uintptr_t base, const ElfW(Rela) * rel, size_t nrel,
                         const ElfW(Sym) * symtab, const char *strtab, uintptr_t rlo,
                         uintptr_t rhi) {
  for (size_t i = 0; i < nrel; i++) {
    unsigned type = ELF64_R_TYPE(rel[i].r_info);
    if (type != CT_R_JUMP_SLOT && type != CT_R_GLOB_DAT) continue;
    size_t symi = ELF64_R_SYM(rel[i].r_info);
    if (symi == 0) continue;
    const char *name = strtab + symtab[symi].st_name;
    const ct_hook_def *def = find_def(ctx, name);
    if (!def) continue;
    void **addr = (void **)(base + rel[i].r_offset);
    void *cur = __atomic_load_n(addr, __ATOMIC_ACQUIRE);
    if (ctx->self_values) {
      /* A call slot says what calls reach; an address-taken one may hold an
       * executable's canonical PLT entry instead, so calls win. */
      void **out = &ctx->self_values[def - ctx->defs];
      if (type == CT_R_JUMP_SLOT || !*out) *out = cur;
      continue;
    }
    if (ctx->scan_only) {
      for (size_t k = 0; k < ctx->ndefs; k++)
        if (cur == ctx->defs[k].hook) ctx->found++;
      continue;
    }
    if (cur == def->hook) continue;
    slot_rec *s = find_slot(addr);
    if (!s) {
      if (slots_reserve(g_nslots + 1) != 0) {
        ctx->error = 1;
        return;
      }
      s = &g_slots[g_nslots++];
      s->addr = addr;
    }
    s->orig = cur;
    s->hook = def->hook;
    s->relro_lo = rlo;
    s->relro_hi = rhi;
    if (write_slot(addr, def->hook, rlo, rhi) != 0) ctx->error = 1;
  }
}

static int is_skipped_object(const char *name) {
  /* The vDSO has no writable GOT; ld.so reaches malloc through its own
   * pointer, not through relocations we could redirect. */
  return strstr(name, "linux-vdso") != NULL || strstr(name, "ld-linux") != NULL;
}

static int patch_cb(struct dl_phdr_info *info, size_t sz, void *data) {
  (void)sz;
  patch_ctx *ctx = data;
  uintptr_t base = info->dlpi_addr;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  if (ctx->self_values ? base != ctx->self_base : base == ctx->self_base) return 0;
  if (is_skipped_object(name)) return 0;
  const ElfW(Dyn) *dyn = NULL;
  uintptr_t rlo = 0, rhi = 0;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(base + ph->p_vaddr);
    if (ph->p_type == PT_GNU_RELRO) {
      /* ld.so protects the RELRO range rounded down to whole pages. */
      rlo = (base + ph->p_vaddr) & ~(page - 1);
      rhi = (base + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
    }
  }
  if (!dyn) return 0;
  const ElfW(Sym) *symtab = NULL;
  const char *strtab = NULL;
  const ElfW(Rela) *jmprel = NULL, *rela = NULL;
  size_t pltrelsz = 0, relasz = 0;
  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_SYMTAB:
        symtab = (const ElfW(Sym) *)dyn_ptr(d->d_un.d_ptr, base);
        break;
      case DT_STRTAB:
        strtab = (const char *)dyn_ptr(d->d_un.d_ptr, base);
        break;
      case DT_JMPREL:
        jmprel = (const ElfW(Rela) *)dyn_ptr(d->d_un.d_ptr, base);
        break;
      case DT_PLTRELSZ:
        pltrelsz = d->d_un.d_val;
        break;
      case DT_RELA:
        rela = (const ElfW(Rela) *)dyn_ptr(d->d_un.d_ptr, base);
        break;
      case DT_RELASZ:
        relasz = d->d_un.d_val;
        break;
      default:
        break;
    }
  }
  if (!symtab || !strtab) return 0;
  if (jmprel)
    patch_relocs(ctx, base, jmprel, pltrelsz / sizeof(ElfW(Rela)), symtab, strtab, rlo, rhi);
  if (rela) patch_relocs(ctx, base, rela, relasz / sizeof(ElfW(Rela)), symtab, strtab, rlo, rhi);
  return 0;
}

static uintptr_t self_base(void) {
  Dl_info info;
  if (dladdr((void *)&self_base, &info) == 0) return 0;
  return (uintptr_t)info.dli_fbase;
}

int ct_got_patch_all(const ct_hook_def *defs, size_t ndefs) {
  patch_ctx ctx = {defs, ndefs, self_base(), 0, 0, 0, NULL};
  dl_iterate_phdr(patch_cb, &ctx);
  return ctx.error ? -1 : 0;
}

uint64_t ct_got_scan(const ct_hook_def *defs, size_t ndefs) {
  patch_ctx ctx = {defs, ndefs, self_base(), 0, 1, 0, NULL};
  dl_iterate_phdr(patch_cb, &ctx);
  return ctx.found;
}

void ct_got_self_values(const ct_hook_def *defs, size_t ndefs, void **out) {
  for (size_t i = 0; i < ndefs; i++) out[i] = NULL;
  patch_ctx ctx = {defs, ndefs, self_base(), 0, 0, 0, out};
  dl_iterate_phdr(patch_cb, &ctx);
}

/* Does the slot still belong to a loaded object? (used after dlclose) */
typedef struct range_ctx {
  uintptr_t addr;
  int found;
} range_ctx;

static int range_cb(struct dl_phdr_info *info, size_t sz, void *data) {
  (void)sz;
  range_ctx *rc = data;
  uintptr_t base = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && rc->addr >= base + ph->p_vaddr &&
        rc->addr < base + ph->p_vaddr + ph->p_memsz) {
      rc->found = 1;
      return 1;
    }
  }
  return 0;
}

/* No dl_iterate_phdr here: a forked child must be able to restore even if
 * another parent thread held the loader lock at fork time. Slots of unloaded
 * objects were already pruned by the dlclose hook. */
void ct_got_restore_all(void) {
  for (size_t i = 0; i < g_nslots; i++) {
    slot_rec *s = &g_slots[i];
    /* Only undo our own write: a slot someone else changed since is theirs. */
    if (__atomic_load_n(s->addr, __ATOMIC_ACQUIRE) == s->hook)
      write_slot(s->addr, s->orig, s->relro_lo, s->relro_hi);
  }
  g_nslots = 0;
}

void ct_got_prune(void) {
  size_t w = 0;
  for (size_t i = 0; i < g_nslots; i++) {
    range_ctx rc = {(uintptr_t)g_slots[i].addr, 0};
    dl_iterate_phdr(range_cb, &rc);
    if (rc.found) g_slots[w++] = g_slots[i];
  }
  g_nslots = w;
}

uint64_t ct_got_patched_slots(void) {
  uint64_t n = 0;
  for (size_t i = 0; i < g_nslots; i++)
    if (__atomic_load_n(g_slots[i].addr, __ATOMIC_ACQUIRE) == g_slots[i].hook) n++;
  return n;
}

uint64_t ct_got_tracker_bytes(void) { return g_cap * sizeof(slot_rec); }
