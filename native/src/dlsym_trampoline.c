/* The dlsym and dlvsym hooks, in assembly.
 *
 * glibc answers dlsym(RTLD_NEXT, name) (and RTLD_DEFAULT, for an object
 * loaded with RTLD_LOCAL) relative to the object that called it, which it
 * finds from its own return address. A hook written in C would call the
 * real dlsym from this library and change that answer. These trampolines
 * never do: they ask ct_dlsym_substitute / ct_dlvsym_substitute (hooks.c)
 * whether to hand out a hook, and otherwise jump to the real function with
 * the registers and return address the caller gave them, as if the caller
 * had called it directly. RTLD_NEXT goes straight through.
 *
 * "The real function" is what this library's own call slot holds
 * (ct_real_dlsym, set by hooks_init), never an address-taken GOT entry: in
 * a non-PIE executable that takes dlsym's address, such an entry would hold
 * the executable's PLT stub, which leads back to its patched slot. */

/* clang-format off */
#if defined(__x86_64__)
/* Arguments in rdi, rsi, rdx; three pushes keep the stack 16-byte aligned
 * at the call. endbr64 is a no-op without CET. */
#define CT_TRAMPOLINE(hook, substitute, real)                                  \
  ".globl " #hook "\n"                                                         \
  ".hidden " #hook "\n"                                                        \
  ".type " #hook ", @function\n"                                               \
  #hook ":\n"                                                                  \
  ".cfi_startproc\n"                                                           \
  "endbr64\n"                                                                  \
  "cmpq $-1, %rdi\n" /* RTLD_NEXT */                                           \
  "je 1f\n"                                                                    \
  "pushq %rdi\n"                                                               \
  ".cfi_adjust_cfa_offset 8\n"                                                 \
  "pushq %rsi\n"                                                               \
  ".cfi_adjust_cfa_offset 8\n"                                                 \
  "pushq %rdx\n"                                                               \
  ".cfi_adjust_cfa_offset 8\n"                                                 \
  "call " #substitute "\n"                                                     \
  "popq %rdx\n"                                                                \
  ".cfi_adjust_cfa_offset -8\n"                                                \
  "popq %rsi\n"                                                                \
  ".cfi_adjust_cfa_offset -8\n"                                                \
  "popq %rdi\n"                                                                \
  ".cfi_adjust_cfa_offset -8\n"                                                \
  "testq %rax, %rax\n"                                                         \
  "jz 1f\n"                                                                    \
  "ret\n"                                                                      \
  "1:\n"                                                                       \
  "jmpq *" #real "(%rip)\n"                                                    \
  ".cfi_endproc\n"                                                             \
  ".size " #hook ", .-" #hook "\n"
#elif defined(__aarch64__)
/* Arguments in x0, x1, x2; a 48-byte frame keeps sp 16-byte aligned and
 * saves the frame pointer and link register across the call. */
#define CT_TRAMPOLINE(hook, substitute, real)                                  \
  ".globl " #hook "\n"                                                         \
  ".hidden " #hook "\n"                                                        \
  ".type " #hook ", %function\n"                                               \
  #hook ":\n"                                                                  \
  ".cfi_startproc\n"                                                           \
  "cmn x0, #1\n" /* RTLD_NEXT */                                               \
  "b.eq 1f\n"                                                                  \
  "stp x29, x30, [sp, #-48]!\n"                                                \
  ".cfi_def_cfa_offset 48\n"                                                   \
  ".cfi_offset 29, -48\n"                                                      \
  ".cfi_offset 30, -40\n"                                                      \
  "mov x29, sp\n"                                                              \
  "stp x0, x1, [sp, #16]\n"                                                    \
  "str x2, [sp, #32]\n"                                                        \
  "bl " #substitute "\n"                                                       \
  "mov x9, x0\n"                                                               \
  "ldp x0, x1, [sp, #16]\n"                                                    \
  "ldr x2, [sp, #32]\n"                                                        \
  "ldp x29, x30, [sp], #48\n"                                                  \
  ".cfi_restore 29\n"                                                          \
  ".cfi_restore 30\n"                                                          \
  ".cfi_def_cfa_offset 0\n"                                                    \
  "cbz x9, 1f\n"                                                               \
  "mov x0, x9\n"                                                               \
  "ret\n"                                                                      \
  "1:\n"                                                                       \
  "adrp x16, " #real "\n"                                                      \
  "ldr x16, [x16, #:lo12:" #real "]\n"                                         \
  "br x16\n"                                                                   \
  ".cfi_endproc\n"                                                             \
  ".size " #hook ", .-" #hook "\n"
#else
#error "cyscope's dlsym trampolines support x86_64 and aarch64"
#endif

__asm__(".text\n"
        ".p2align 4\n"
        CT_TRAMPOLINE(ct_h_dlsym, ct_dlsym_substitute, ct_real_dlsym)
        ".p2align 4\n"
        CT_TRAMPOLINE(ct_h_dlvsym, ct_dlvsym_substitute, ct_real_dlvsym));
/* clang-format on */
