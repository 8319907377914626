/* Durable file-system steps (include/kmpkg/fsutil.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/fault.h"
#include "kmpkg/fsutil.h"
#include "kmpkg/worker.h"

char *kmpkg_fsutil_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (!p)
		abort();
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

/* The directory part of path, malloc'd. */
static char *dir_of(const char *path)
{
	char *copy = strdup(path), *d, *r;

	if (!copy)
		abort();
	d = dirname(copy);
	r = strdup(d);
	free(copy);
	if (!r)
		abort();
	return r;
}

static void random_hex(char *out, size_t nbytes)
{
	unsigned char r[16];

	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
		/* getrandom on a modern kernel does not fail for <= 256 bytes;
		 * fall back to something unique enough for a temp name. */
		unsigned long v = (unsigned long)getpid() ^ (unsigned long)(uintptr_t)out;
		memcpy(r, &v, sizeof(v) < nbytes ? sizeof(v) : nbytes);
	}
	kmpkg_hex(out, r, nbytes);
}

int kmpkg_fsutil_fsync_fd(int fd, const char *what)
{
	if (kmpkg_fault_fsync_eio())
		return kmpkg_error_errno(EIO, "fsync", what);
	if (fsync(fd) != 0)
		return kmpkg_error_errno(errno, "fsync", what);
	return 0;
}

int kmpkg_fsutil_fsync_dir(const char *dir)
{
	int fd, err;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kmpkg_error_errno(errno, "open", dir);
	err = kmpkg_fsutil_fsync_fd(fd, dir);
	close(fd);
	return err;
}

/* fsync of the directory that holds path (after path was created, renamed
 * or removed there). */
static int fsync_parent(const char *path)
{
	char *dir = dir_of(path);
	int err = kmpkg_fsutil_fsync_dir(dir);

	free(dir);
	return err;
}

int kmpkg_fsutil_open_temp(int *out_fd, char **out_path, const char *dir)
{
	char name[32];
	char *path;
	int fd;

	strcpy(name, ".tmp-");
	random_hex(name + 5, 8);
	path = kmpkg_fsutil_join(dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = kmpkg_error_errno(errno, "create", path);

		free(path);
		return err;
	}
	*out_fd = fd;
	*out_path = path;
	return 0;
}

int kmpkg_fsutil_commit_temp(int fd, const char *tmp_path, const char *path)
{
	int err;

	if ((err = kmpkg_fsutil_fsync_fd(fd, tmp_path)) != 0) {
		close(fd);
		goto fail;
	}
	if (close(fd) != 0) {
		err = kmpkg_error_errno(errno, "close", tmp_path);
		goto fail;
	}
	if (rename(tmp_path, path) != 0) {
		err = kmpkg_error_errno(errno, "rename", path);
		goto fail;
	}
	return fsync_parent(path);
fail:
	unlink(tmp_path);
	return err;
}

int kmpkg_fsutil_commit_temp_batched(int fd, const char *tmp_path, const char *path)
{
	int err = 0;

	if (close(fd) != 0)
		err = kmpkg_error_errno(errno, "close", tmp_path);
	else if (rename(tmp_path, path) != 0)
		err = kmpkg_error_errno(errno, "rename", path);
	if (err)
		unlink(tmp_path);
	return err;
}

int kmpkg_fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char *dir = dir_of(path), *tmp = NULL;
	const char *p = data;
	int fd = -1, err;

	if ((err = kmpkg_fsutil_open_temp(&fd, &tmp, dir)) != 0)
		goto cleanup;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = kmpkg_error_errno(errno, "write", path);
			close(fd);
			unlink(tmp);
			goto cleanup;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, mode) != 0) {
		err = kmpkg_error_errno(errno, "chmod", path);
		close(fd);
		unlink(tmp);
		goto cleanup;
	}
	err = kmpkg_fsutil_commit_temp(fd, tmp, path);
cleanup:
	free(tmp);
	free(dir);
	return err;
}

int kmpkg_fsutil_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) != 0) {
		if (errno == EEXIST && kmpkg_fsutil_is_dir(path))
			return 0;
		return kmpkg_error_errno(errno, "mkdir", path);
	}
	return fsync_parent(path);
}

int kmpkg_fsutil_mkdir_p(const char *path, mode_t mode)
{
	char *copy = strdup(path), *p;
	int err = 0;

	if (!copy)
		abort();
	for (p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (!kmpkg_fsutil_is_dir(copy) && (err = kmpkg_fsutil_mkdir(copy, mode)) != 0)
			goto cleanup;
		*p = '/';
	}
	err = kmpkg_fsutil_mkdir(copy, mode);
cleanup:
	free(copy);
	return err;
}

static bool made_dir(const char *path, mode_t mode)
{
	return mkdir(path, mode) == 0 || (errno == EEXIST && kmpkg_fsutil_is_dir(path));
}

int kmpkg_fsutil_mkdir_staging(const char *path, mode_t mode)
{
	char *parent;
	int err = 0;

	if (made_dir(path, mode))
		return 0;
	if (errno != ENOENT)
		return kmpkg_error_errno(errno, "mkdir", path);
	parent = dir_of(path);
	if (strcmp(parent, path) == 0)
		err = kmpkg_error_errno(ENOENT, "mkdir", path);
	else if ((err = kmpkg_fsutil_mkdir_staging(parent, mode)) == 0 && !made_dir(path, mode))
		err = kmpkg_error_errno(errno, "mkdir", path);
	free(parent);
	return err;
}

int kmpkg_fsutil_publish(const char *from, const char *to)
{
	if (rename(from, to) != 0)
		return kmpkg_error_errno(errno, "rename", to);
	return fsync_parent(to);
}

int kmpkg_fsutil_exchange(const char *a, const char *b)
{
	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0)
		return kmpkg_error_errno(errno, "exchange", b);
	return fsync_parent(b);
}

int kmpkg_fsutil_rename(const char *from, const char *to)
{
	char *d1 = NULL, *d2 = NULL;
	int err;

	if (rename(from, to) != 0)
		return kmpkg_error_errno(errno, "rename", to);
	d1 = dir_of(to);
	d2 = dir_of(from);
	err = kmpkg_fsutil_fsync_dir(d1);
	if (!err && strcmp(d1, d2) != 0)
		err = kmpkg_fsutil_fsync_dir(d2);
	free(d1);
	free(d2);
	return err;
}

static int swap_link(const char *linkpath, const char *target, bool sync)
{
	char *dir = dir_of(linkpath), *tmp = NULL;
	char name[32];
	int err = 0;

	strcpy(name, ".tmp-link-");
	random_hex(name + 10, 8);
	tmp = kmpkg_fsutil_join(dir, name);
	if (symlink(target, tmp) != 0) {
		err = kmpkg_error_errno(errno, "symlink", tmp);
		goto cleanup;
	}
	if (rename(tmp, linkpath) != 0) {
		err = kmpkg_error_errno(errno, "rename", linkpath);
		unlink(tmp);
		goto cleanup;
	}
	if (sync)
		err = kmpkg_fsutil_fsync_dir(dir);
cleanup:
	free(tmp);
	free(dir);
	return err;
}

int kmpkg_fsutil_symlink_swap(const char *linkpath, const char *target)
{
	return swap_link(linkpath, target, true);
}

int kmpkg_fsutil_symlink_swap_batched(const char *linkpath, const char *target)
{
	return swap_link(linkpath, target, false);
}

int kmpkg_fsutil_symlink(const char *target, const char *linkpath)
{
	if (symlink(target, linkpath) != 0)
		return kmpkg_error_errno(errno, "symlink", linkpath);
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) != 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
}

static void make_writable(const char *path)
{
	/* Store entries may hold read-only directories; nftw cannot empty them. */
	DIR *d = opendir(path);
	struct dirent *de;
	struct stat st;

	if (!d)
		return;
	chmod(path, 0700);
	while ((de = readdir(d)) != NULL) {
		char *sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		sub = kmpkg_fsutil_join(path, de->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			make_writable(sub);
		free(sub);
	}
	closedir(d);
}

static int remove_tree(const char *path, bool sync_parent)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : kmpkg_error_errno(errno, "stat", path);
	if (S_ISDIR(st.st_mode)) {
		/* Empty (a finished transaction's staging): one call, no walk. */
		if (rmdir(path) == 0)
			return sync_parent ? fsync_parent(path) : 0;
		make_writable(path);
		if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
			return kmpkg_error_errno(errno, "remove", path);
	} else if (unlink(path) != 0 && errno != ENOENT) {
		return kmpkg_error_errno(errno, "remove", path);
	}
	return sync_parent ? fsync_parent(path) : 0;
}

int kmpkg_fsutil_rmtree(const char *path)
{
	return remove_tree(path, true);
}

int kmpkg_fsutil_remove_staging(const char *path)
{
	return remove_tree(path, false);
}

int kmpkg_fsutil_discard(const char *path, const char *trash_dir)
{
	char *copy = NULL, *dest = NULL;
	char name[300];
	struct stat st;
	int err;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : kmpkg_error_errno(errno, "stat", path);
	copy = strdup(path);
	if (!copy)
		abort();
	snprintf(name, sizeof(name), "discard-%.200s-", basename(copy));
	random_hex(name + strlen(name), 6);
	dest = kmpkg_fsutil_join(trash_dir, name);
	if ((err = kmpkg_fsutil_rename(path, dest)) != 0)
		goto cleanup;
	kmpkg_fault("discard:after-rename");
	err = kmpkg_fsutil_rmtree(dest);
cleanup:
	free(dest);
	free(copy);
	return err;
}

int kmpkg_fsutil_sync_tree(const char *path)
{
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kmpkg_error_errno(errno, "open", path);
	if (kmpkg_fault_fsync_eio())
		err = kmpkg_error_errno(EIO, "syncfs", path);
	else if (syncfs(fd) != 0)
		err = kmpkg_error_errno(errno, "syncfs", path);
	close(fd);
	return err;
}

bool kmpkg_fsutil_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

bool kmpkg_fsutil_is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int kmpkg_fsutil_readlink(char **out, const char *path)
{
	char buf[4096];
	ssize_t n;

	*out = NULL;
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0) {
		if (errno == ENOENT)
			return kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, NULL, "%s does not exist", path);
		return kmpkg_error_errno(errno, "readlink", path);
	}
	buf[n] = '\0';
	*out = strdup(buf);
	if (!*out)
		abort();
	return 0;
}

int kmpkg_fsutil_read_file(char **out, size_t *len, const char *path, size_t max)
{
	char *p = NULL;
	size_t have = 0;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, NULL, "%s does not exist", path);
		return kmpkg_error_errno(errno, "open", path);
	}
	p = malloc(max + 1);
	if (!p)
		abort();
	for (;;) {
		ssize_t n = read(fd, p + have, max - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = kmpkg_error_errno(errno, "read", path);
			goto cleanup;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have == max)
			break;
	}
	p[have] = '\0';
	*out = p;
	p = NULL;
	if (len)
		*len = have;
cleanup:
	free(p);
	close(fd);
	return err;
}

/* ---- write-back queue ----------------------------------------------------- */

#define WB_QUEUED 64

struct wb_file {
	int fd;
	char path[];
};

/* On the worker: start the write-back, close. After a failure the files
 * are still closed. */
static int wb_file(void *ctx, void *job, bool failed)
{
	struct wb_file *f = job;
	int err = 0;

	(void)ctx;
	(void)failed;
	if (sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0 && errno != EINVAL && errno != ESPIPE)
		err = kmpkg_error_errno(errno, "write back", f->path);
	if (close(f->fd) != 0 && !err)
		err = kmpkg_error_errno(errno, "close", f->path);
	free(f);
	return err;
}

struct kmpkg_worker *kmpkg_fsutil_writeback_new(void)
{
	return kmpkg_worker_new(wb_file, NULL, WB_QUEUED);
}

int kmpkg_fsutil_writeback_close(struct kmpkg_worker *wb, int fd, const char *path)
{
	size_t n = strlen(path) + 1;
	struct wb_file *f;

	if (!wb) {
		/* No queue: an ordinary close; the syncfs writes it. */
		if (close(fd) != 0)
			return kmpkg_error_errno(errno, "close", path);
		return 0;
	}
	if (!(f = malloc(sizeof(*f) + n)))
		abort();
	f->fd = fd;
	memcpy(f->path, path, n);
	return kmpkg_worker_push(wb, f);
}

int kmpkg_fsutil_writeback_finish(struct kmpkg_worker *wb)
{
	return kmpkg_worker_free(wb);
}

void kmpkg_fsutil_writeback_start(int fd)
{
	/* A hint: a failure here is found again by the syncfs. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}
