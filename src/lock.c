/* The root's writer lock (include/kmpkg/lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/lock.h"
#include "kmpkg/state.h"

struct kmpkg_lock {
	int fd;
};

static int set_lock(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static int open_lock(int *out, const char *root)
{
	char *kdir = kmpkg_fsutil_join(root, "kmpkg");
	char *path = kmpkg_fsutil_join(kdir, "lock");
	int err = 0;

	*out = -1;
	if (!kmpkg_fsutil_is_dir(kdir) && (err = kmpkg_fsutil_mkdir_p(kdir, 0755)) != 0)
		goto cleanup;
	*out = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*out < 0)
		err = kmpkg_error_errno(errno, "open", path);
cleanup:
	free(path);
	free(kdir);
	return err;
}

int kmpkg_lock_try(struct kmpkg_lock **out, const char *root)
{
	int fd = -1, err;

	*out = NULL;
	if ((err = open_lock(&fd, root)) != 0)
		return err;
	if (set_lock(fd, F_WRLCK) != 0) {
		err = errno == EAGAIN || errno == EACCES ? KMPKG_ELOCKED : kmpkg_error_errno(errno, "lock", root);
		close(fd);
		return err;
	}
	*out = malloc(sizeof(**out));
	if (!*out)
		abort();
	(*out)->fd = fd;
	return 0;
}

static int holder_error(const char *root)
{
	struct kmpkg_state *st = NULL;
	struct kmpkg_state_txn *t = NULL;
	json_t *h = NULL;
	const char *id = "unknown", *phase = "";
	json_int_t pid = 0;

	if (kmpkg_state_open(&st, root, false) == 0 && kmpkg_state_begin(&t, st, false) == 0 &&
	    kmpkg_state_gets(&h, t, KMPKG_DB_LOCK, "holder") == 0) {
		pid = json_integer_value(json_object_get(h, "pid"));
		if (json_is_string(json_object_get(h, "id")))
			id = json_string_value(json_object_get(h, "id"));
		if (json_is_string(json_object_get(h, "phase")))
			phase = json_string_value(json_object_get(h, "phase"));
	}
	kmpkg_error_set(KMPKG_ELOCKED, "E_LOCKED", NULL,
			"wait for it to finish, or retry with --wait SECS; 'kmpkg status' shows its progress",
			"another kmpkg (pid %lld, transaction %s%s%s) holds the lock on %s", (long long)pid, id,
			*phase ? ", phase " : "", phase, root);
	json_decref(h);
	kmpkg_state_abort(t);
	kmpkg_state_free(st);
	return KMPKG_ELOCKED;
}

int kmpkg_lock_acquire(struct kmpkg_lock **out, const char *root, int wait_secs)
{
	struct timespec start, now;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		err = kmpkg_lock_try(out, root);
		if (err != KMPKG_ELOCKED)
			return err;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= wait_secs)
			return holder_error(root);
		usleep(50 * 1000);
	}
}

void kmpkg_lock_release(struct kmpkg_lock *l)
{
	if (!l)
		return;
	close(l->fd); /* closing the last descriptor drops the OFD lock */
	free(l);
}

bool kmpkg_lock_is_held(const char *root)
{
	char *kdir = kmpkg_fsutil_join(root, "kmpkg");
	char *path = kmpkg_fsutil_join(kdir, "lock");
	struct flock fl;
	bool held = false;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
			held = true;
		close(fd);
	}
	free(path);
	free(kdir);
	return held;
}
