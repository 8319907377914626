/*
 * Fault injection for crash tests (test builds only, -DKMPKG_TESTING).
 *
 *   KMPKG_FAULT=<point>       raise(SIGKILL) when execution reaches <point>
 *   KMPKG_FAULT_FSYNC_EIO=<n> the n-th fsync/syncfs of kmpkg_fsutil fails with EIO
 *   KMPKG_FAULT_COMMIT_EIO=<n> the n-th LMDB commit (kmpkg_state_commit) fails
 *                             with EIO: the write transaction is aborted
 *
 * Every point name is listed in kmpkg_fault_points (src/fault.c); reaching a
 * point that is not listed aborts a test build, so the list stays complete.
 * In release builds kmpkg_fault() compiles to nothing.
 */
#ifndef KMPKG_FAULT_H
#define KMPKG_FAULT_H

#include <stdbool.h>

/* NULL-terminated list of every fault point, in the order a run meets them. */
extern const char *const kmpkg_fault_points[];

#ifdef KMPKG_TESTING
void kmpkg_fault(const char *point);
/* True when the next fsync should fail with EIO (counts calls). */
bool kmpkg_fault_fsync_eio(void);
/* True when this LMDB commit should fail with EIO (counts calls). */
bool kmpkg_fault_commit_eio(void);
#else
#define kmpkg_fault(point) ((void)0)
#define kmpkg_fault_fsync_eio() false
#define kmpkg_fault_commit_eio() false
#endif

#endif
