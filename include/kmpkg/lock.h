/*
 * The root's writer lock: an OFD lock (fcntl F_OFD_SETLK) on
 * <root>/kmpkg/lock, held for the whole of a mutating command. The kernel
 * drops it with its holder, so there is never a stale lock file. Who holds
 * it (pid, correlation id, phase) is kept in the state database's lock
 * record by the transaction engine.
 */
#ifndef KMPKG_LOCK_H
#define KMPKG_LOCK_H

#include <stdbool.h>

struct kmpkg_lock;

/* Takes the lock, waiting up to wait_secs. On timeout KMPKG_ELOCKED with
 * E_LOCKED naming the holder's pid and correlation id. Creates <root>/kmpkg
 * when missing. */
int kmpkg_lock_acquire(struct kmpkg_lock **out, const char *root, int wait_secs);
/* Without waiting and without an error message: 0 and *out set, or
 * KMPKG_ELOCKED when somebody holds it, or the error opening the file. */
int kmpkg_lock_try(struct kmpkg_lock **out, const char *root);
void kmpkg_lock_release(struct kmpkg_lock *l);
/* Whether another process holds the lock, asked without taking it. */
bool kmpkg_lock_is_held(const char *root);

#endif
