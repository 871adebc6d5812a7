/*
 * Reaching the libpq calls that plain LD_PRELOAD interposition does not see.
 *
 * - dlsym(handle, "PQconnectStart") — ctypes, cffi, Ruby FFI, LuaJIT, Julia — returns libpq's own
 *   definition: we hand back a wrapper bound to that very libpq instead.
 * - An object dlopen()ed with RTLD_DEEPBIND (PHP's extensions) binds in its own scope first, so its
 *   calls reach libpq directly: right after such a dlopen() its relocations for the wrapped names
 *   are pointed at our global wrappers, which then find the libpq the caller would have used.
 *
 * Both dlsym() and dlopen() depend on who calls them (dlsym(RTLD_NEXT, ...) searches after the
 * caller; dlopen() searches the caller's DT_RUNPATH). A C wrapper would make every call look as if
 * libpqroute had made it, and break other preload libraries. So each is a few instructions of
 * assembly that ask a hook whether the call is one of ours and otherwise *jump* to libc's function,
 * which then sees the application's own return address. The hooks take over only calls whose
 * result does not depend on the caller: dlsym() on a real handle, and dlopen() of a path (with a
 * slash, without $ORIGIN) with RTLD_DEEPBIND.
 *
 * x86-64 and aarch64; elsewhere these calls are not intercepted (README: Known limits).
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

void *(*shim_real_dlsym)(void *, const char *);
void *(*shim_real_dlopen)(const char *, int);

/* The version dlsym and dlopen have had in libdl since glibc's first port to the architecture; 2.34
 * moved both into libc as GLIBC_2.34, keeping the old version. A glibc older than 2.34 has only
 * this one. */
#if defined(__x86_64__)
#define LIBDL_VERSION "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define LIBDL_VERSION "GLIBC_2.17"
#endif

#if defined(__x86_64__) || defined(__aarch64__)
#define INTERCEPT 1 /* the stubs below are written for these */

/* What the shim calls when libc's own cannot be found (a libc it does not know): nothing is found
 * and nothing loaded, which every caller handles (libpq's own result, or libpq's failure). */
static void *no_dlsym(void *handle, const char *name)
{
    (void)handle, (void)name;
    return NULL;
}
static void *no_dlopen(const char *file, int mode)
{
    (void)file, (void)mode;
    return NULL;
}
#endif

/* libc's dlsym and dlopen, found once. No pthread_once: a sanitizer's runtime calls dlsym() (ours)
 * while it initialises, before its own pthread_once interceptor can run — so a plain idempotent
 * look-up (two threads find the same pointers) published with release/acquire. dlvsym is not
 * intercepted: RTLD_NEXT from here is libc. Never NULL once bound: the stubs jump to them. */
void shim_bind_libc(void)
{
    void *s, *o;

    if (__atomic_load_n(&shim_real_dlopen, __ATOMIC_ACQUIRE))
        return;
    s = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    o = dlvsym(RTLD_NEXT, "dlopen", "GLIBC_2.34");
#ifdef LIBDL_VERSION
    if (!s)
        s = dlvsym(RTLD_NEXT, "dlsym", LIBDL_VERSION);
    if (!o)
        o = dlvsym(RTLD_NEXT, "dlopen", LIBDL_VERSION);
#endif
    if (!s || !o) {
#ifdef INTERCEPT
        shim_error("cannot find libc's dlsym and dlopen (%s); %s", "GLIBC_2.34, " LIBDL_VERSION,
                   "connections are not routed, dlopen() and dlsym() fail");
        s = (void *)no_dlsym, o = (void *)no_dlopen;
#else
        /* Not intercepted here: these names are libc's (or another preload library's, as for
         * any other caller). */
        s = (void *)dlsym, o = (void *)dlopen;
#endif
    }
    __atomic_store_n(&shim_real_dlsym, (void *(*)(void *, const char *))s, __ATOMIC_RELEASE);
    __atomic_store_n(&shim_real_dlopen, (void *(*)(const char *, int))o, __ATOMIC_RELEASE);
}

#ifdef INTERCEPT

void *pqr_shim_dlsym_hook(void *handle, const char *name);
void *pqr_shim_dlopen_hook(const char *file, int mode);

/* NULL: not ours, libc's dlsym is jumped to with the caller's registers and return address. */
void *pqr_shim_dlsym_hook(void *handle, const char *name)
{
    int w;
    void *p;

    shim_bind_libc();
    if (!name || handle == RTLD_NEXT || handle == RTLD_DEFAULT ||
        (w = shim_wrapped_index(name)) < 0 || !shim_configured())
        return NULL;
    p = shim_real_dlsym(handle, name);
    return p ? shim_instance_wrapper(p, (enum wrapped)w) : NULL;
}

/* NULL: not ours (or it failed: libc's dlopen then says why). */
void *pqr_shim_dlopen_hook(const char *file, int mode)
{
    void *h;

    shim_bind_libc();
    if (!(mode & RTLD_DEEPBIND) || !file || !strchr(file, '/') || strstr(file, "$ORIGIN") ||
        !shim_configured())
        return NULL;
    if ((h = shim_real_dlopen(file, mode)))
        shim_patch_object(h);
    return h;
}

/* Each stub: save the arguments, ask the hook, and either return its answer or restore the
 * arguments and tail-jump to libc with the application's return address still in place. */
#if defined(__x86_64__)
#define STUB(name, hook, real)                                                                     \
    __asm__(".text\n"                                                                              \
            ".globl " #name "\n"                                                                   \
            ".type " #name ", @function\n" #name ":\n"                                             \
            "    .cfi_startproc\n"                                                                 \
            "    push %rdi\n"                                                                      \
            "    .cfi_adjust_cfa_offset 8\n"                                                       \
            "    push %rsi\n"                                                                      \
            "    .cfi_adjust_cfa_offset 8\n"                                                       \
            "    sub $8, %rsp\n"                                                                   \
            "    .cfi_adjust_cfa_offset 8\n"                                                       \
            "    call " #hook "\n"                                                                 \
            "    add $8, %rsp\n"                                                                   \
            "    .cfi_adjust_cfa_offset -8\n"                                                      \
            "    pop %rsi\n"                                                                       \
            "    .cfi_adjust_cfa_offset -8\n"                                                      \
            "    pop %rdi\n"                                                                       \
            "    .cfi_adjust_cfa_offset -8\n"                                                      \
            "    test %rax, %rax\n"                                                                \
            "    jz 1f\n"                                                                          \
            "    ret\n"                                                                            \
            "1:  jmp *" #real "(%rip)\n"                                                           \
            "    .cfi_endproc\n"                                                                   \
            ".size " #name ", .-" #name "\n")

#else
/* The return address is in x30, restored before the jump; x16 is the scratch register that the
 * procedure call standard gives a branch between functions (PLT stubs use it), and the one a
 * branch-protected (BTI) function entry accepts from an indirect jump. */
#define STUB(name, hook, real)                                                                     \
    __asm__(".text\n"                                                                              \
            ".globl " #name "\n"                                                                   \
            ".type " #name ", %function\n" #name ":\n"                                             \
            "    .cfi_startproc\n"                                                                 \
            "    stp x29, x30, [sp, #-32]!\n"                                                      \
            "    .cfi_def_cfa_offset 32\n"                                                         \
            "    .cfi_offset 29, -32\n"                                                            \
            "    .cfi_offset 30, -24\n"                                                            \
            "    mov x29, sp\n"                                                                    \
            "    stp x0, x1, [sp, #16]\n"                                                          \
            "    bl " #hook "\n"                                                                   \
            "    mov x16, x0\n"                                                                    \
            "    ldp x0, x1, [sp, #16]\n"                                                          \
            "    ldp x29, x30, [sp], #32\n"                                                        \
            "    .cfi_restore 29\n"                                                                \
            "    .cfi_restore 30\n"                                                                \
            "    .cfi_def_cfa_offset 0\n"                                                          \
            "    cbz x16, 1f\n"                                                                    \
            "    mov x0, x16\n"                                                                    \
            "    ret\n"                                                                            \
            "1:  adrp x16, " #real "\n"                                                            \
            "    ldr x16, [x16, #:lo12:" #real "]\n"                                               \
            "    br x16\n"                                                                         \
            "    .cfi_endproc\n"                                                                   \
            ".size " #name ", .-" #name "\n")
#endif

STUB(dlsym, pqr_shim_dlsym_hook, shim_real_dlsym);
STUB(dlopen, pqr_shim_dlopen_hook, shim_real_dlopen);

/* ---- relocations of objects that bind in their own scope ---- */

/* A call's slot (PLT) and an address taken in code (GOT); an address stored as data is not
 * rewritten (README: Known limits). */
#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#else
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

struct object {
    ElfW(Addr) base;
    const ElfW(Dyn) * dyn;
    ElfW(Addr) relro, relro_end;
};

/* The object whose dynamic section is at dyn, found while the loader lists its objects (and holds
 * its lock); copied out, then patched after the listing, while our handle keeps it loaded. */
struct find {
    const void *dyn;
    struct object o;
    bool found;
};

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct find *f = arg;
    struct object o = {.base = info->dlpi_addr};

    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC)
            o.dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        else if (ph->p_type == PT_GNU_RELRO)
            o.relro = info->dlpi_addr + ph->p_vaddr, o.relro_end = o.relro + ph->p_memsz;
    }
    if (!o.dyn || (const void *)o.dyn != f->dyn)
        return 0;
    f->o = o;
    f->found = true;
    return 1;
}

/* The loader rewrites these to absolute addresses on most targets; not on all. */
static ElfW(Addr) dyn_ptr(const struct object *o, ElfW(Addr) v)
{
    return v < o->base ? v + o->base : v;
}

static void write_slot(const struct object *o, ElfW(Addr) at, void *value)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start = at & ~(page - 1);
    /* The loader made read-only only the whole pages inside PT_GNU_RELRO (its end rounded down);
     * a slot on the last, partial page stays writable and must stay so. */
    bool ro = at >= (o->relro & ~(page - 1)) && at < (o->relro_end & ~(page - 1));

    /* Two threads loading the same deep-bound object patch the same page: one must not make it
     * read-only again while the other is about to write. (No loader call in here.) */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

    if (__atomic_load_n((void **)at, __ATOMIC_ACQUIRE) == value)
        return;
    pthread_mutex_lock(&lock);
    if ((!ro || mprotect((void *)start, (size_t)page, PROT_READ | PROT_WRITE) == 0)) {
        __atomic_store_n((void **)at, value, __ATOMIC_RELEASE);
        if (ro)
            mprotect((void *)start, (size_t)page, PROT_READ);
    }
    pthread_mutex_unlock(&lock);
}

static void patch_table(const struct object *o, const ElfW(Rela) * rel, size_t count,
                        const ElfW(Sym) * symtab, const char *strtab)
{
    for (size_t i = 0; i < count; i++) {
        unsigned type = ELF64_R_TYPE(rel[i].r_info);
        const ElfW(Sym) *sym = &symtab[ELF64_R_SYM(rel[i].r_info)];
        int w;

        if ((type != R_JUMP_SLOT && type != R_GLOB_DAT) || !ELF64_R_SYM(rel[i].r_info))
            continue;
        /* Only references to a definition elsewhere: libpq's calls to its own functions, and our
         * own definitions, are left alone. */
        if (sym->st_shndx != SHN_UNDEF || (w = shim_wrapped_index(strtab + sym->st_name)) < 0)
            continue;
        /* Bound already (BIND_NOW) to a libpq: a wrapper for exactly that one. Else (a lazy PLT
         * slot) the global wrapper, which finds the caller's libpq when it is called. */
        ElfW(Addr) at = o->base + rel[i].r_offset;
        void *exact = shim_instance_wrapper(*(void **)at, (enum wrapped)w);
        write_slot(o, at, exact ? exact : shim_global_wrapper((enum wrapped)w));
    }
}

static void patch_object(const struct object *o)
{
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t pltrelsz = 0, relasz = 0;
    bool pltrela = true;

    for (const ElfW(Dyn) *d = o->dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB:
            symtab = (const ElfW(Sym) *)dyn_ptr(o, d->d_un.d_ptr);
            break;
        case DT_STRTAB:
            strtab = (const char *)dyn_ptr(o, d->d_un.d_ptr);
            break;
        case DT_JMPREL:
            jmprel = (const ElfW(Rela) *)dyn_ptr(o, d->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            pltrelsz = d->d_un.d_val;
            break;
        case DT_PLTREL:
            pltrela = d->d_un.d_val == DT_RELA;
            break;
        case DT_RELA:
            rela = (const ElfW(Rela) *)dyn_ptr(o, d->d_un.d_ptr);
            break;
        case DT_RELASZ:
            relasz = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (!symtab || !strtab)
        return;
    if (jmprel && pltrela)
        patch_table(o, jmprel, pltrelsz / sizeof *jmprel, symtab, strtab);
    if (rela)
        patch_table(o, rela, relasz / sizeof *rela, symtab, strtab);
}

/*
 * The object a dlopen(RTLD_DEEPBIND) just returned (handle h, which keeps it loaded and which the
 * caller cannot close before we return): its relocations for the wrapped names point at wrappers.
 * Only that object, fully loaded and relocated: never one that another thread may be loading (its
 * relocation not done, its RELRO not yet protected) or unloading at this moment. No lock of ours is
 * held across the loader's functions (a constructor that holds the loader's lock may be calling
 * dlopen, which comes here).
 */
static void patch_handle(void *h, bool with_needed)
{
    struct link_map *lm = NULL;
    struct find f = {0};

    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_ld)
        return;
    f.dyn = lm->l_ld;
    dl_iterate_phdr(collect, &f);
    if (!f.found)
        return;
    patch_object(&f.o);
    if (!with_needed)
        return;
    /* Its direct dependencies bind in the same deep-bound scope: a plugin whose helper library
     * calls libpq. Each is taken by name (RTLD_NOLOAD: loaded already, and fully), held while it is
     * patched. */
    const char *strtab = NULL;
    for (const ElfW(Dyn) *d = f.o.dyn; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_STRTAB)
            strtab = (const char *)dyn_ptr(&f.o, d->d_un.d_ptr);
    for (const ElfW(Dyn) *d = f.o.dyn; strtab && d->d_tag != DT_NULL; d++) {
        void *dep;
        if (d->d_tag != DT_NEEDED ||
            !(dep = shim_real_dlopen(strtab + d->d_un.d_val, RTLD_LAZY | RTLD_NOLOAD)))
            continue;
        patch_handle(dep, false);
        dlclose(dep);
    }
}

void shim_patch_object(void *h)
{
    patch_handle(h, true);
}

#else

void shim_patch_object(void *h)
{
    (void)h;
}

#endif
