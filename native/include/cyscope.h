/*
 * cyscope native C ABI.
 *
 * Everything the Python package (loaded with ctypes, so the same library serves
 * every CPython 3.x interpreter) may call is declared here. Rules of this ABI:
 *   - every symbol is prefixed `cyscope_` and has C linkage;
 *   - functions return an int status: CYSCOPE_OK (0) or a negative CYSCOPE_E*;
 *   - structs passed out carry their own `size` field, set by the caller, so a
 *     newer library can serve an older caller (fields are only ever appended);
 *   - CYSCOPE_ABI_VERSION changes only when an existing signature changes.
 */
#ifndef CYSCOPE_H
#define CYSCOPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CYSCOPE_ABI_VERSION 1

#define CYSCOPE_OK 0
#define CYSCOPE_EINVAL (-1)   /* a bad argument (NULL, size too small) */
#define CYSCOPE_ESTATE (-2)   /* not allowed in the current state */
#define CYSCOPE_EOS (-3)      /* the operating system refused */
#define CYSCOPE_ENOMEM (-4)   /* the tracker's own arena is exhausted */

#if defined(__GNUC__)
#define CYSCOPE_API __attribute__((visibility("default")))
#else
#define CYSCOPE_API
#endif

/* The ABI version this library implements (CYSCOPE_ABI_VERSION). */
CYSCOPE_API int cyscope_abi_version(void);

/* Library version, e.g. "0.1.0". Static storage; never free it. */
CYSCOPE_API const char *cyscope_version(void);

/* Resident set size of this process, in bytes, read from /proc. */
CYSCOPE_API int cyscope_read_rss(uint64_t *rss_bytes);

#ifdef __cplusplus
}
#endif

#endif /* CYSCOPE_H */
