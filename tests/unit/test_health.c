/* health: the health-check runner, driven with small shell scripts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/error.h"
#include "kmpkg/health.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	char bin[128];

	snprintf(dir, sizeof(dir), "/tmp/kmpkg-health-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(bin, sizeof(bin), "%s/bin", dir);
	cr_assert_eq(mkdir(bin, 0755), 0);
}

static void teardown(void)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(health, .init = setup, .fini = teardown);

/* Writes <dir>/<rel> as a /bin/sh script with the given body. */
static void script(const char *rel, const char *body, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static struct kmpkg_health_opts opts_for(char *const *argv, uint32_t timeout_ms)
{
	struct kmpkg_health_opts o;

	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.cwd = dir;
	o.timeout_ms = timeout_ms;
	o.correlation_id = "0190f3a0-0000-7000-8000-000000000001";
	o.plugin_name = "demo";
	o.plugin_version = "1.2.0";
	return o;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static pid_t read_pid(const char *name)
{
	char path[PATH_MAX];
	FILE *f;
	int pid = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no pid file %s", name);
	cr_assert_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	cr_assert_gt(pid, 1);
	return pid;
}

/* Alive and not a zombie waiting for whoever adopted it to reap it. */
static bool alive(pid_t pid)
{
	char path[64], buf[512];
	char *paren;
	FILE *f;
	size_t n;

	if (kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* SIGKILL is delivered asynchronously: give the kernel a moment. */
static bool dies_soon(pid_t pid)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (!alive(pid))
			return true;
		usleep(10000);
	}
	return false;
}

Test(health, passing_check)
{
	char *argv[] = { "bin/check", "--health", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "[ \"$1\" = --health ] || exit 9\necho ok", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed);
	cr_assert_not(r.timed_out);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_eq(r.signal, 0);
	cr_assert_str_eq(r.reason, "passed");
	cr_assert_str_eq(r.output, "ok\n");
	cr_assert_eq(r.output_len, 3);
	cr_assert_not(r.truncated);
	kmpkg_health_result_release(&r);
	cr_assert_null(r.output);
}

Test(health, failing_check_reports_exit_status)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "echo 'database unreachable' >&2\nexit 3", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_not(r.passed);
	cr_assert_eq(r.exit_code, 3);
	cr_assert_eq(r.signal, 0);
	cr_assert_str_eq(r.reason, "exited with status 3");
	cr_assert_str_eq(r.output, "database unreachable\n");
	kmpkg_health_result_release(&r);
}

Test(health, stdout_and_stderr_share_one_stream)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "echo one\necho two >&2\necho three", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_str_eq(r.output, "one\ntwo\nthree\n");
	kmpkg_health_result_release(&r);
}

Test(health, killed_by_signal)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "kill -SEGV $$", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_not(r.passed);
	cr_assert_not(r.timed_out);
	cr_assert_eq(r.signal, SIGSEGV);
	cr_assert_eq(r.exit_code, -1);
	cr_assert_str_eq(r.reason, "killed by signal SIGSEGV");
	kmpkg_health_result_release(&r);
}

Test(health, timeout_kills_the_whole_group)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 200);
	struct kmpkg_health_result r;
	uint64_t t0, elapsed;
	pid_t sleeper;

	script("bin/check", "sleep 10 &\necho $! > sleeper.pid\necho waiting\nwait", 0755);
	t0 = ms_now();
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	elapsed = ms_now() - t0;
	cr_assert_lt(elapsed, 1500, "took %llu ms", (unsigned long long)elapsed);
	cr_assert(r.timed_out);
	cr_assert_not(r.passed);
	cr_assert_eq(r.exit_code, -1);
	cr_assert_eq(r.signal, SIGKILL);
	cr_assert_str_eq(r.reason, "timed out after 200 ms");
	cr_assert_geq(r.duration_ms, 200);
	cr_assert_str_eq(r.output, "waiting\n");
	sleeper = read_pid("sleeper.pid");
	cr_assert(dies_soon(sleeper), "grandchild %d survived the timeout", (int)sleeper);
	kmpkg_health_result_release(&r);
}

Test(health, daemonizing_check_does_not_hang)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	uint64_t t0, elapsed;
	pid_t daemon;

	script("bin/check", "(sleep 30 & echo $! > daemon.pid)\necho started", 0755);
	t0 = ms_now();
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	elapsed = ms_now() - t0;
	cr_assert_lt(elapsed, 1500, "took %llu ms", (unsigned long long)elapsed);
	cr_assert(r.passed);
	cr_assert_not(r.timed_out);
	cr_assert_str_eq(r.output, "started\n");
	daemon = read_pid("daemon.pid");
	cr_assert(dies_soon(daemon), "daemon %d left running", (int)daemon);
	kmpkg_health_result_release(&r);
}

Test(health, escaped_daemon_holding_the_pipe_does_not_hang)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	uint64_t t0, elapsed;
	pid_t daemon;

	/* setsid leaves the group: the runner cannot kill it, only stop reading. */
	script("bin/check", "setsid sleep 30 &\necho $! > daemon.pid\necho started", 0755);
	t0 = ms_now();
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	elapsed = ms_now() - t0;
	daemon = read_pid("daemon.pid");
	kill(daemon, SIGKILL);
	cr_assert_lt(elapsed, 1500, "took %llu ms", (unsigned long long)elapsed);
	cr_assert(r.passed);
	cr_assert_str_eq(r.output, "started\n");
	kmpkg_health_result_release(&r);
}

Test(health, output_is_capped_and_truncation_recorded)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	size_t i;

	o.output_cap = 1024;
	script("bin/check", "head -c 1048576 /dev/zero | tr '\\0' x\necho done >&2", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed, "%s", r.reason);
	cr_assert_eq(r.output_len, 1024);
	cr_assert(r.truncated);
	cr_assert_eq(r.output[1024], '\0');
	for (i = 0; i < r.output_len; i++)
		cr_assert_eq(r.output[i], 'x');
	kmpkg_health_result_release(&r);
}

Test(health, default_cap_is_64_kib)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "head -c 100000 /dev/zero | tr '\\0' y", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed);
	cr_assert_eq(r.output_len, 65536);
	cr_assert(r.truncated);
	kmpkg_health_result_release(&r);
}

Test(health, output_at_the_cap_is_not_truncated)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	o.output_cap = 4;
	script("bin/check", "printf abcd", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_str_eq(r.output, "abcd");
	cr_assert_not(r.truncated);
	kmpkg_health_result_release(&r);
}

Test(health, environment_is_clean_with_kmpkg_variables)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	cr_assert_eq(setenv("KMPKG_TEST_SECRET", "leaked", 1), 0);
	cr_assert_eq(setenv("HOME", "/home/tester", 1), 0);
	script("bin/check", "env", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(strstr(r.output, "KMPKG_CORRELATION_ID=0190f3a0-0000-7000-8000-000000000001\n"),
		  "%s", r.output);
	cr_assert(strstr(r.output, "KMPKG_PLUGIN=demo\n"));
	cr_assert(strstr(r.output, "KMPKG_PLUGIN_VERSION=1.2.0\n"));
	cr_assert(strstr(r.output, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
	cr_assert(strstr(r.output, "LANG=C\n"));
	cr_assert(strstr(r.output, "HOME=/home/tester\n"));
	cr_assert_null(strstr(r.output, "KMPKG_TEST_SECRET"));
	kmpkg_health_result_release(&r);
}

Test(health, runs_in_the_plugin_directory)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	char real[PATH_MAX], want[PATH_MAX + 2];

	cr_assert_not_null(realpath(dir, real));
	snprintf(want, sizeof(want), "%s\n", real);
	script("bin/check", "pwd -P", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_str_eq(r.output, want);
	kmpkg_health_result_release(&r);
}

Test(health, bare_command_resolves_in_cwd_not_path)
{
	/* "ls" exists on PATH; the plugin's own ./ls must run instead. */
	char *argv[] = { "ls", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("ls", "exit 7", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_eq(r.exit_code, 7);
	kmpkg_health_result_release(&r);
}

Test(health, absolute_command)
{
	char path[PATH_MAX];
	char *argv[] = { path, NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	snprintf(path, sizeof(path), "%s/bin/check", dir);
	script("bin/check", "exit 0", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed);
	kmpkg_health_result_release(&r);
}

Test(health, stdin_is_dev_null)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	int p[2];

	/* A stdin that would block forever if it were inherited. */
	cr_assert_eq(pipe(p), 0);
	cr_assert_neq(dup2(p[0], 0), -1);
	script("bin/check", "if read line; then echo got; exit 1; fi\nreadlink /proc/$$/fd/0", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed, "%s: %s", r.reason, r.output);
	cr_assert_str_eq(r.output, "/dev/null\n");
	cr_assert_lt(r.duration_ms, 2000);
	kmpkg_health_result_release(&r);
	close(p[0]);
	close(p[1]);
}

Test(health, missing_command_is_an_exec_error)
{
	char *argv[] = { "bin/missing", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	cr_assert_eq(kmpkg_health_run(&r, &o), KMPKG_EHEALTH);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_HEALTH_EXEC");
	cr_assert_str_eq(r.reason, "cannot execute bin/missing: No such file or directory");
	cr_assert_str_eq(kmpkg_error_last()->message, r.reason);
	cr_assert_not(r.passed);
	cr_assert_not(r.timed_out);
	cr_assert_eq(r.exit_code, -1);
	cr_assert_not_null(r.output);
	cr_assert_eq(r.output_len, 0);
	kmpkg_health_result_release(&r);
}

Test(health, non_executable_command_is_an_exec_error)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "exit 0", 0644);
	cr_assert_eq(kmpkg_health_run(&r, &o), KMPKG_EHEALTH);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_HEALTH_EXEC");
	cr_assert_str_eq(r.reason, "cannot execute bin/check: Permission denied");
	cr_assert_not(r.passed);
	kmpkg_health_result_release(&r);
}

Test(health, missing_directory_is_an_exec_error)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	char gone[128];

	snprintf(gone, sizeof(gone), "%s/nope", dir);
	o.cwd = gone;
	cr_assert_eq(kmpkg_health_run(&r, &o), KMPKG_EHEALTH);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_HEALTH_EXEC");
	cr_assert(strstr(r.reason, "cannot enter directory ") == r.reason, "%s", r.reason);
	cr_assert(strstr(r.reason, "No such file or directory"));
	kmpkg_health_result_release(&r);
}

Test(health, empty_command_is_an_exec_error)
{
	char *argv[] = { NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	cr_assert_eq(kmpkg_health_run(&r, &o), KMPKG_EHEALTH);
	cr_assert_str_eq(kmpkg_error_last()->code, "E_HEALTH_EXEC");
	cr_assert_not_null(r.output);
	kmpkg_health_result_release(&r);
}

Test(health, inherited_descriptors_are_closed)
{
	char *argv[] = { "bin/check", NULL, NULL, NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;
	char low[16], high[16];
	int fd, fd_high;

	fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, like a careless lock */
	cr_assert_geq(fd, 3);
	fd_high = dup2(fd, 1500);         /* above the child's RLIMIT_NOFILE */
	cr_assert_eq(fd_high, 1500);
	snprintf(low, sizeof(low), "%d", fd);
	snprintf(high, sizeof(high), "%d", fd_high);
	argv[1] = low;
	argv[2] = high;
	script("bin/check",
	       "for fd in \"$1\" \"$2\"; do\n"
	       "  if [ -e /proc/$$/fd/$fd ]; then echo \"fd $fd leaked\"; exit 1; fi\n"
	       "done\n"
	       "echo clean",
	       0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed, "%s: %s", r.reason, r.output);
	cr_assert_str_eq(r.output, "clean\n");
	kmpkg_health_result_release(&r);
	close(fd);
	close(fd_high);
}

Test(health, rlimits_are_set_in_the_child)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 2500);
	struct kmpkg_health_result r;
	struct rlimit core;

	/* Give the caller a core limit, so 0 in the child is the runner's doing. */
	cr_assert_eq(getrlimit(RLIMIT_CORE, &core), 0);
	core.rlim_cur = core.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_CORE, &core), 0);
	if (core.rlim_cur == 0)
		cr_skip_test("the hard core limit is already 0");
	/* ulimit -v is in KiB; CPU: 2500 ms rounded up to 3 s, plus 1. */
	script("bin/check", "echo $(ulimit -c) $(ulimit -v) $(ulimit -t) $(ulimit -n)", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_str_eq(r.output, "0 1048576 4 1024\n");
	kmpkg_health_result_release(&r);
}

Test(health, explicit_rlimits_override_defaults)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	o.rlimit_as_bytes = (uint64_t)512 << 20;
	o.rlimit_cpu_secs = 2;
	script("bin/check", "echo $(ulimit -v) $(ulimit -t)", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_str_eq(r.output, "524288 2\n");
	kmpkg_health_result_release(&r);
}

Test(health, duration_is_measured)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	script("bin/check", "sleep 0.3", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert(r.passed);
	cr_assert_geq(r.duration_ms, 300);
	cr_assert_lt(r.duration_ms, 3000);
	kmpkg_health_result_release(&r);
}

Test(health, ignored_signals_are_not_inherited)
{
	char *argv[] = { "bin/check", NULL };
	struct kmpkg_health_opts o = opts_for(argv, 5000);
	struct kmpkg_health_result r;

	/* A caller ignoring SIGTERM must not make the check immune to it. */
	signal(SIGTERM, SIG_IGN);
	script("bin/check", "kill -TERM $$\necho survived", 0755);
	cr_assert_eq(kmpkg_health_run(&r, &o), 0);
	cr_assert_eq(r.signal, SIGTERM, "%s", r.reason);
	cr_assert_str_eq(r.reason, "killed by signal SIGTERM");
	kmpkg_health_result_release(&r);
}
