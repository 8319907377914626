/*
 * src/lazylib.c loads libgit2, libarchive and libcrypto on their first call.
 * An install or update needs libcrypto and libarchive for certain: preload
 * starts loading both on a thread of its own, so that mapping and
 * relocating them (~4 ms, mostly libarchive's chain: libxml2, ICU,
 * libstdc++) overlaps with the lock, the state and the first durable
 * commits instead of following them. A call that arrives while the thread is
 * still loading waits for it (pthread_once); if the thread cannot be
 * started, the first call loads the library as before.
 */
#ifndef KMPKG_LAZYLIB_H
#define KMPKG_LAZYLIB_H

void kmpkg_lazylib_preload_install(void);

#endif
