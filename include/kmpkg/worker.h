/*
 * A worker thread with a queue (src/worker.c): jobs run in order on one
 * thread while the caller goes on, and the caller waits for the queue to
 * drain when it needs their effects. The write-back of extracted files
 * (kmpkg_fsutil_writeback_*) and the engine's overlapped commits
 * (src/txn.c, commit_async) run on one each.
 */
#ifndef KMPKG_WORKER_H
#define KMPKG_WORKER_H

#include <stdbool.h>
#include <stddef.h>

struct kmpkg_worker;

/* Runs one job and frees it. `failed`: a job before it failed since the
 * last kmpkg_worker_wait (the job decides what that means: skip its work,
 * or only release what it holds). Returns 0 or a kmpkg error class, its
 * details set with kmpkg_error_* on the worker's thread: they are carried
 * to the caller. */
typedef int (*kmpkg_worker_fn)(void *ctx, void *job, bool failed);

/* A worker calling fn(ctx, job, failed) for each job; its thread starts
 * with the first job. max_queued > 0: kmpkg_worker_push blocks while that
 * many jobs wait. NULL when out of memory. */
struct kmpkg_worker *kmpkg_worker_new(kmpkg_worker_fn fn, void *ctx, size_t max_queued);

/* Queues job (taken over). When no thread can be started, the job runs here
 * and now. Returns the first failure since the last kmpkg_worker_wait, if
 * any (its error set on this thread), without waiting and without
 * clearing it. */
int kmpkg_worker_push(struct kmpkg_worker *w, void *job);

/* Waits until every queued job has run; returns the first failure since
 * the last wait (its error set on this thread) and clears it, 0 when none. */
int kmpkg_worker_wait(struct kmpkg_worker *w);

/* kmpkg_worker_wait, then stops the thread and frees w (NULL: 0). */
int kmpkg_worker_free(struct kmpkg_worker *w);

#endif
