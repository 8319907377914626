/*
 * Health-check runner (include/kmpkg/health.h).
 *
 * Everything the child needs (exec path, argv, envp, rlimits) is prepared
 * before vfork(): between vfork and execve the child only makes
 * async-signal-safe system calls on that plan, so it is safe even when the
 * parent holds malloc or ASan locks, and it shares the parent's memory
 * instead of copying its page tables. The child reports a failure to start through a
 * CLOEXEC pipe as {stage, errno}; EOF on that pipe means execve succeeded.
 *
 * The child leads its own process group. The parent polls the output pipe
 * and a pidfd (or, on kernels without pidfd_open, wakes every 20 ms) and
 * notices the child's exit with waitid(WNOWAIT): the zombie still holds its
 * pid, so kill(-pid) cannot hit a recycled group. Then the group is killed
 * (grandchildren a check left behind, or everything on timeout), the child
 * is reaped, and the pipe is drained for at most a short grace period, since
 * a grandchild that escaped the group with setsid() may keep it open forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/health.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CLEAN_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define POLL_TICK_MS 20        /* without a pidfd: how often to look for the child's exit */
#define DRAIN_GRACE_MS 100     /* reading on after the group was killed */
#define READ_CHUNK 65536
#define MAX_FD_LOOP 65536      /* fallback close loop bound when close_range is missing */

enum child_stage {
	STAGE_SETUP = 1, /* setpgid, stdio */
	STAGE_CHDIR,
	STAGE_RLIMIT,
	STAGE_EXEC,
};

struct child_report {
	int stage;
	int err;
};

/* What the child does between fork and execve, all prepared in the parent. */
struct child_plan {
	const char *path; /* execve path: absolute, or relative to cwd */
	char *const *argv;
	char *const *envp;
	const char *cwd;
	struct rlimit core, as, cpu, nofile;
	int out_w;
	int report_w;
	int max_fd;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- child side: async-signal-safe only ---------------------------------- */

static _Noreturn void child_fail(int report_w, int stage, int err)
{
	struct child_report r = { stage, err };
	ssize_t n;

	do
		n = write(report_w, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/* Keeps fd out of 0..2 so the dup2 calls below cannot clobber it. */
static int above_stdio(int fd)
{
	return fd > 2 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static _Noreturn void child_run(const struct child_plan *p)
{
	int report_w = above_stdio(p->report_w);
	int out_w, null_fd, sig, fd;
	sigset_t all;
	struct sigaction dfl;

	if (report_w < 0)
		_exit(127);
	if (setpgid(0, 0) != 0)
		child_fail(report_w, STAGE_SETUP, errno);

	/* Ignored dispositions and the blocked mask survive execve: reset both. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* fails harmlessly for reserved ones */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	out_w = above_stdio(p->out_w);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (out_w < 0 || null_fd < 0)
		child_fail(report_w, STAGE_SETUP, errno);
	if ((null_fd = above_stdio(null_fd)) < 0)
		child_fail(report_w, STAGE_SETUP, errno);
	if (dup2(null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0)
		child_fail(report_w, STAGE_SETUP, errno);

	if (chdir(p->cwd) != 0)
		child_fail(report_w, STAGE_CHDIR, errno);

	if (setrlimit(RLIMIT_CORE, &p->core) != 0 || setrlimit(RLIMIT_AS, &p->as) != 0 ||
	    setrlimit(RLIMIT_CPU, &p->cpu) != 0 || setrlimit(RLIMIT_NOFILE, &p->nofile) != 0)
		child_fail(report_w, STAGE_RLIMIT, errno);

	/* Whatever the caller opened without O_CLOEXEC (a lock, a database) must
	 * not reach a check that may daemonize. CLOEXEC rather than close keeps
	 * report_w usable until execve. */
	if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
		for (fd = 3; fd < p->max_fd; fd++)
			if (fd != report_w)
				close(fd);
	}

	execve(p->path, p->argv, p->envp);
	child_fail(report_w, STAGE_EXEC, errno);
}

/* ---- parent side ---------------------------------------------------------- */

static rlim_t clamp_to_hard(int resource, uint64_t want)
{
	struct rlimit cur;

	if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && want > cur.rlim_max)
		return cur.rlim_max;
	return (rlim_t)want;
}

static void set_limit(struct rlimit *rl, int resource, uint64_t want)
{
	rl->rlim_cur = rl->rlim_max = clamp_to_hard(resource, want);
}

static int add_env(char **envp, size_t *n, const char *name, const char *value)
{
	char *s;

	if (!value)
		return 0;
	if (asprintf(&s, "%s=%s", name, value) < 0)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	envp[(*n)++] = s;
	return 0;
}

static const char *signal_name(int sig, char *buf, size_t cap)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, cap, "SIG%s", abbrev);
	else
		snprintf(buf, cap, "signal %d", sig);
	return buf;
}

/* Appends up to the cap; counts the rest as truncation. */
static int keep_output(struct kmpkg_health_result *out, struct kmpkg_buf *b, size_t cap,
		       const char *data, size_t n)
{
	size_t room = b->len < cap ? cap - b->len : 0;

	if (n > room) {
		out->truncated = true;
		n = room;
	}
	return n ? kmpkg_buf_put(b, data, n) : 0;
}

/* One read from the non-blocking pipe. *open becomes false at EOF. */
static int read_once(struct kmpkg_health_result *out, struct kmpkg_buf *b, size_t cap, int fd,
		     char *chunk, bool *open)
{
	ssize_t n = read(fd, chunk, READ_CHUNK);

	if (n > 0)
		return keep_output(out, b, cap, chunk, (size_t)n);
	if (n == 0)
		*open = false;
	else if (errno != EAGAIN && errno != EINTR)
		*open = false; /* nothing sensible left to read */
	return 0;
}

/* Reaps pid; 0 or an error recorded for the caller. */
static int reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR)
			return kmpkg_error_errno(errno, "wait for health check", NULL);
	}
	return 0;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0u);
#else
	(void)pid;
	return -1;
#endif
}

static bool child_has_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD; /* cannot wait for it: do not spin forever */
	return si.si_pid == pid;
}

static void describe_start_failure(struct kmpkg_health_result *out, const char *cmd,
				   const char *cwd, const struct child_report *r)
{
	const char *why = strerror(r->err);

	switch (r->stage) {
	case STAGE_EXEC:
		snprintf(out->reason, sizeof(out->reason), "cannot execute %s: %s", cmd, why);
		break;
	case STAGE_CHDIR:
		snprintf(out->reason, sizeof(out->reason), "cannot enter directory %s: %s", cwd, why);
		break;
	case STAGE_RLIMIT:
		snprintf(out->reason, sizeof(out->reason), "cannot start %s: setting limits: %s", cmd,
			 why);
		break;
	default:
		snprintf(out->reason, sizeof(out->reason), "cannot start %s: %s", cmd, why);
		break;
	}
}

int kmpkg_health_run(struct kmpkg_health_result *out, const struct kmpkg_health_opts *opts)
{
	struct kmpkg_buf output = KMPKG_BUF_INIT;
	struct child_plan plan;
	struct child_report report;
	char *envp[8] = { NULL };
	size_t nenv = 0, cap, i;
	char *path = NULL, *chunk = NULL;
	int out_p[2] = { -1, -1 }, rep_p[2] = { -1, -1 };
	int pidfd = -1, status = 0, err = 0, flags, rc;
	pid_t pid = -1;
	uint32_t timeout_ms;
	uint64_t start, deadline, t, cpu_secs;
	bool exited = false, timed_out = false, pipe_open = true;
	sigset_t blocked, saved_mask;
	int fork_errno;
	long open_max;
	ssize_t n;
	char signame[32];

	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	memset(&plan, 0, sizeof(plan));

	if (!opts->argv || !opts->argv[0] || !opts->argv[0][0] || !opts->cwd) {
		snprintf(out->reason, sizeof(out->reason), "health check command is empty");
		err = kmpkg_error_set(KMPKG_EHEALTH, "E_HEALTH_EXEC", "/health_check/command",
				      "give health_check.command as a non-empty list in the manifest",
				      "%s", out->reason);
		goto cleanup;
	}
	timeout_ms = opts->timeout_ms ? opts->timeout_ms : KMPKG_HEALTH_DEFAULT_TIMEOUT_MS;
	cap = opts->output_cap ? opts->output_cap : KMPKG_HEALTH_DEFAULT_OUTPUT_CAP;

	/* argv[0] is resolved against cwd by the kernel after chdir: execve never
	 * searches PATH, and a bare name gets "./" so it cannot be mistaken for one. */
	if (opts->argv[0][0] == '/')
		path = strdup(opts->argv[0]);
	else if (asprintf(&path, "./%s", opts->argv[0]) < 0)
		path = NULL;
	chunk = malloc(READ_CHUNK);
	if (!path || !chunk) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}

	envp[nenv++] = strdup(CLEAN_PATH);
	if (!envp[0]) {
		err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
		goto cleanup;
	}
	if ((err = add_env(envp, &nenv, "HOME", getenv("HOME"))) != 0 ||
	    (err = add_env(envp, &nenv, "LANG", "C")) != 0 ||
	    (err = add_env(envp, &nenv, "KMPKG_CORRELATION_ID", opts->correlation_id)) != 0 ||
	    (err = add_env(envp, &nenv, "KMPKG_PLUGIN", opts->plugin_name)) != 0 ||
	    (err = add_env(envp, &nenv, "KMPKG_PLUGIN_VERSION", opts->plugin_version)) != 0)
		goto cleanup;

	cpu_secs = opts->rlimit_cpu_secs ? opts->rlimit_cpu_secs : (timeout_ms + 999u) / 1000u + 1u;
	set_limit(&plan.core, RLIMIT_CORE, 0);
	set_limit(&plan.as, RLIMIT_AS,
		  opts->rlimit_as_bytes ? opts->rlimit_as_bytes : KMPKG_HEALTH_DEFAULT_RLIMIT_AS);
	set_limit(&plan.cpu, RLIMIT_CPU, cpu_secs);
	set_limit(&plan.nofile, RLIMIT_NOFILE, KMPKG_HEALTH_RLIMIT_NOFILE);
	open_max = sysconf(_SC_OPEN_MAX);
	plan.max_fd = open_max > 0 && open_max < MAX_FD_LOOP ? (int)open_max : MAX_FD_LOOP;
	plan.path = path;
	plan.argv = opts->argv;
	plan.envp = envp;
	plan.cwd = opts->cwd;

	if (pipe2(out_p, O_CLOEXEC) != 0 || pipe2(rep_p, O_CLOEXEC) != 0) {
		err = kmpkg_error_errno(errno, "create pipe for health check", NULL);
		goto cleanup;
	}
	flags = fcntl(out_p[0], F_GETFL);
	if (flags < 0 || fcntl(out_p[0], F_SETFL, flags | O_NONBLOCK) != 0) {
		err = kmpkg_error_errno(errno, "set up pipe for health check", NULL);
		goto cleanup;
	}
	plan.out_w = out_p[1];
	plan.report_w = rep_p[1];

	start = now_ns();
	deadline = start + (uint64_t)timeout_ms * 1000000u;
	/* vfork: the child borrows this process's memory until execve, so no
	 * page table is copied (fork copies those of every mapped library and
	 * of LMDB's map). The child only makes system calls on what `plan`
	 * holds. Every signal stays blocked across it, so that no handler can
	 * run in the child on the shared memory before child_run has reset the
	 * dispositions and unblocked them. */
	sigfillset(&blocked);
	sigprocmask(SIG_SETMASK, &blocked, &saved_mask);
	pid = vfork();
	if (pid == 0)
		child_run(&plan);
	fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	if (pid < 0) {
		err = kmpkg_error_errno(fork_errno, "fork health check", opts->argv[0]);
		goto cleanup;
	}

	close(out_p[1]);
	out_p[1] = -1;
	close(rep_p[1]);
	rep_p[1] = -1;

	/* Returns at execve (EOF) or with the child's report. The child is in
	 * its own group from here on, so kill(-pid) below always reaches it. */
	do
		n = read(rep_p[0], &report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		err = reap(pid, &status);
		pid = -1;
		if (err)
			goto cleanup;
		out->duration_ms = (now_ns() - start) / 1000000u;
		describe_start_failure(out, opts->argv[0], opts->cwd, &report);
		err = kmpkg_error_set(KMPKG_EHEALTH, "E_HEALTH_EXEC", "/health_check/command",
				      "make sure the health-check command exists in the plugin "
				      "directory and is executable",
				      "%s", out->reason);
		goto cleanup;
	}

	pidfd = open_pidfd(pid);
	for (;;) {
		struct pollfd pfd[2];
		nfds_t nfd = 0;
		int wait_ms, out_idx = -1;

		if (child_has_exited(pid)) {
			exited = true;
			break;
		}
		t = now_ns();
		if (t >= deadline) {
			timed_out = true;
			break;
		}
		wait_ms = (int)((deadline - t + 999999u) / 1000000u);
		if (pidfd < 0 && wait_ms > POLL_TICK_MS)
			wait_ms = POLL_TICK_MS;
		if (pipe_open) {
			out_idx = (int)nfd;
			pfd[nfd].fd = out_p[0];
			pfd[nfd++].events = POLLIN;
		}
		if (pidfd >= 0) {
			pfd[nfd].fd = pidfd;
			pfd[nfd++].events = POLLIN;
		}
		if (poll(pfd, nfd, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			err = kmpkg_error_errno(errno, "poll health check output", NULL);
			goto cleanup;
		}
		if (out_idx >= 0 && pfd[out_idx].revents &&
		    (err = read_once(out, &output, cap, out_p[0], chunk, &pipe_open)) != 0)
			goto cleanup;
	}

	/* Leftovers after a normal exit, everything on timeout. The child is a
	 * zombie or alive, so its pid still names this group. */
	kill(-pid, SIGKILL);
	err = reap(pid, &status);
	pid = -1;
	if (err)
		goto cleanup;
	out->duration_ms = (now_ns() - start) / 1000000u;

	/* The child has written all it will; killed grandchildren close their
	 * ends at once, but one that left the group may never: bounded drain. */
	t = now_ns() + (uint64_t)DRAIN_GRACE_MS * 1000000u;
	while (pipe_open) {
		struct pollfd pfd = { .fd = out_p[0], .events = POLLIN };
		uint64_t now = now_ns();

		if (now >= t)
			break;
		rc = poll(&pfd, 1, (int)((t - now + 999999u) / 1000000u));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if ((err = read_once(out, &output, cap, out_p[0], chunk, &pipe_open)) != 0)
			goto cleanup;
	}

	if (timed_out) {
		out->timed_out = true;
		out->signal = SIGKILL;
		snprintf(out->reason, sizeof(out->reason), "timed out after %u ms", timeout_ms);
	} else if (exited && WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
		out->passed = out->exit_code == 0;
		if (out->passed)
			snprintf(out->reason, sizeof(out->reason), "passed");
		else
			snprintf(out->reason, sizeof(out->reason), "exited with status %d",
				 out->exit_code);
	} else if (exited && WIFSIGNALED(status)) {
		out->signal = WTERMSIG(status);
		snprintf(out->reason, sizeof(out->reason), "killed by signal %s",
			 signal_name(out->signal, signame, sizeof(signame)));
	} else {
		snprintf(out->reason, sizeof(out->reason), "ended with unknown status");
	}

cleanup:
	if (pid > 0) {
		/* Only after an internal error: leave nothing running behind us. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (!err || err == KMPKG_EHEALTH) {
		out->output_len = output.len;
		out->output = kmpkg_buf_detach(&output);
		if (!out->output)
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	}
	kmpkg_buf_release(&output);
	for (i = 0; i < 2; i++) {
		if (out_p[i] >= 0)
			close(out_p[i]);
		if (rep_p[i] >= 0)
			close(rep_p[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	for (i = 0; i < nenv; i++)
		free(envp[i]);
	free(path);
	free(chunk);
	return err;
}

void kmpkg_health_result_release(struct kmpkg_health_result *r)
{
	if (!r)
		return;
	free(r->output);
	r->output = NULL;
	r->output_len = 0;
}
