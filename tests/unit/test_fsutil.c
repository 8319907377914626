/* fsutil: the durable-write helper. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/fsutil.h"

static char dir[] = "/tmp/kmpkg-fsutil-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "chmod -R u+w %s; rm -rf %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(fsutil, .init = setup, .fini = teardown);

static int entries(const char *d)
{
	char cmd[300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", d);
	p = popen(cmd, "r");
	cr_assert_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

Test(fsutil, write_file_replaces_atomically_without_leftovers)
{
	char *p = kmpkg_fsutil_join(dir, "f"), *data = NULL;
	size_t len = 0;
	struct stat st;

	cr_assert_eq(kmpkg_fsutil_write_file(p, "one", 3, 0600), 0);
	cr_assert_eq(kmpkg_fsutil_write_file(p, "second", 6, 0644), 0);
	cr_assert_eq(kmpkg_fsutil_read_file(&data, &len, p, 100), 0);
	cr_assert_eq(len, 6);
	cr_assert_str_eq(data, "second");
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	cr_assert_eq(entries(dir), 1, "temporary file left behind");
	free(data);
	free(p);
}

Test(fsutil, symlink_swap_replaces_the_link)
{
	char *l = kmpkg_fsutil_join(dir, "plugins"), *t = NULL;

	cr_assert_eq(kmpkg_fsutil_symlink_swap(l, "gen/1"), 0);
	cr_assert_eq(kmpkg_fsutil_readlink(&t, l), 0);
	cr_assert_str_eq(t, "gen/1");
	free(t);
	cr_assert_eq(kmpkg_fsutil_symlink_swap(l, "gen/2"), 0);
	cr_assert_eq(kmpkg_fsutil_readlink(&t, l), 0);
	cr_assert_str_eq(t, "gen/2");
	cr_assert_eq(entries(dir), 1);
	free(t);
	free(l);
}

Test(fsutil, mkdir_p_rename_rmtree_discard)
{
	char *deep = kmpkg_fsutil_join(dir, "a/b/c"), *a = kmpkg_fsutil_join(dir, "a"), *moved = kmpkg_fsutil_join(dir, "m");
	char *trash = kmpkg_fsutil_join(dir, "trash"), *f = kmpkg_fsutil_join(deep, "file");

	cr_assert_eq(kmpkg_fsutil_mkdir_p(deep, 0755), 0);
	cr_assert_eq(kmpkg_fsutil_mkdir_p(deep, 0755), 0); /* idempotent */
	cr_assert(kmpkg_fsutil_is_dir(deep));
	cr_assert_eq(kmpkg_fsutil_write_file(f, "x", 1, 0444), 0);
	cr_assert_eq(chmod(deep, 0555), 0); /* read-only directories inside a store entry */
	cr_assert_eq(kmpkg_fsutil_rename(a, moved), 0);
	cr_assert(!kmpkg_fsutil_exists(a));
	cr_assert_eq(kmpkg_fsutil_mkdir(trash, 0755), 0);
	cr_assert_eq(kmpkg_fsutil_discard(moved, trash), 0);
	cr_assert(!kmpkg_fsutil_exists(moved));
	cr_assert_eq(entries(trash), 0);
	cr_assert_eq(kmpkg_fsutil_discard(moved, trash), 0); /* missing is fine */
	cr_assert_eq(kmpkg_fsutil_rmtree(moved), 0);
	free(deep);
	free(a);
	free(moved);
	free(trash);
	free(f);
}

Test(fsutil, failed_fsync_fails_the_step)
{
	char *p = kmpkg_fsutil_join(dir, "f");

	setenv("KMPKG_FAULT_FSYNC_EIO", "1", 1);
	cr_assert_eq(kmpkg_fsutil_write_file(p, "data", 4, 0644), KMPKG_ERESOURCE);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_IO");
	cr_assert(!kmpkg_fsutil_exists(p), "file published after a failed fsync");
	cr_assert_eq(entries(dir), 0, "temporary file left behind");
	cr_assert_eq(kmpkg_fsutil_write_file(p, "data", 4, 0644), 0); /* only the first call fails */
	unsetenv("KMPKG_FAULT_FSYNC_EIO");
	free(p);
}

Test(fsutil, errors_name_the_path_and_class)
{
	char *p = kmpkg_fsutil_join(dir, "no/such/dir/f"), *t = NULL;

	cr_assert_eq(kmpkg_fsutil_write_file(p, "x", 1, 0644), KMPKG_ERESOURCE);
	cr_assert(strstr(kmpkg_error_last()->message, "no/such/dir"));
	cr_assert_eq(kmpkg_fsutil_readlink(&t, p), KMPKG_ENOTFOUND);
	cr_assert_eq(kmpkg_fsutil_sync_tree(dir), 0);
	free(p);
}

static int open_fds(void)
{
	return entries("/proc/self/fd");
}

/* More files than the queue holds (64): the caller blocks and goes on; every
 * file is written, closed, and readable after the syncfs. */
Test(fsutil, writeback_queue_closes_every_file)
{
	struct kmpkg_worker *wb = kmpkg_fsutil_writeback_new();
	char name[32], *p, *data = NULL;
	size_t len = 0;
	int before = open_fds(), i, fd;

	cr_assert_not_null(wb);
	for (i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		p = kmpkg_fsutil_join(dir, name);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, name, strlen(name)), (ssize_t)strlen(name));
		cr_assert_eq(kmpkg_fsutil_writeback_close(wb, fd, p), 0);
		free(p);
	}
	cr_assert_eq(kmpkg_fsutil_writeback_finish(wb), 0);
	cr_assert_eq(open_fds(), before, "descriptors left open");
	cr_assert_eq(kmpkg_fsutil_sync_tree(dir), 0);
	cr_assert_eq(entries(dir), 200);
	p = kmpkg_fsutil_join(dir, "f137");
	cr_assert_eq(kmpkg_fsutil_read_file(&data, &len, p, 100), 0);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(data, "f137", 4), 0);
	free(data);
	free(p);
}

/* A descriptor the queue cannot write back or close: the failure names the
 * file, at the next hand-over or at the end. Without a queue, an ordinary
 * close. */
Test(fsutil, writeback_queue_reports_the_failed_file)
{
	struct kmpkg_worker *wb = kmpkg_fsutil_writeback_new();
	char *p = kmpkg_fsutil_join(dir, "g");
	int fd, rc, rc2;

	cr_assert_not_null(wb);
	rc = kmpkg_fsutil_writeback_close(wb, 100000, "bad-descriptor");
	rc2 = kmpkg_fsutil_writeback_finish(wb);
	cr_assert_eq(rc ? rc : rc2, KMPKG_ERESOURCE);
	cr_assert(!(rc && rc2), "one failure reported twice");
	cr_assert(strstr(kmpkg_error_last()->message, "bad-descriptor"), "%s", kmpkg_error_last()->message);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(kmpkg_fsutil_writeback_close(NULL, fd, p), 0);
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "descriptor still open");
	free(p);
}
