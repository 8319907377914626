/* A worker thread with a queue (include/kmpkg/worker.h). */
#include <pthread.h>
#include <stdlib.h>

#include "kmpkg/error.h"
#include "kmpkg/worker.h"

struct job {
	struct job *next;
	void *job;
};

struct kmpkg_worker {
	kmpkg_worker_fn fn;
	void *ctx;
	size_t max_queued, queued;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled on every change of the queue, busy or stop */
	pthread_t thread;
	bool started, busy, stop;
	struct job *head, **tail;
	int err;                  /* the first failure since the last wait */
	struct kmpkg_error saved; /* and its error */
};

/* Runs one job; the first failure is kept. Called with mu held, returns
 * with it held. */
static void run(struct kmpkg_worker *w, void *job)
{
	bool failed = w->err != 0;
	struct kmpkg_error saved;
	int err;

	w->busy = true;
	pthread_mutex_unlock(&w->mu);
	err = w->fn(w->ctx, job, failed);
	if (err)
		saved = *kmpkg_error_last();
	pthread_mutex_lock(&w->mu);
	if (err && !w->err) {
		w->err = err;
		w->saved = saved;
	}
	w->busy = false;
}

static void *worker_main(void *arg)
{
	struct kmpkg_worker *w = arg;
	struct job *j;
	void *job;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!(j = w->head))
			break;
		if (!(w->head = j->next))
			w->tail = &w->head;
		w->queued--;
		job = j->job;
		free(j);
		run(w, job);
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct kmpkg_worker *kmpkg_worker_new(kmpkg_worker_fn fn, void *ctx, size_t max_queued)
{
	struct kmpkg_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->fn = fn;
	w->ctx = ctx;
	w->max_queued = max_queued;
	w->tail = &w->head;
	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		free(w);
		return NULL;
	}
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	return w;
}

/* The first failure, set again on this thread. Called with mu held. */
static int failure(struct kmpkg_worker *w)
{
	const struct kmpkg_error *s = &w->saved;

	if (!w->err)
		return 0;
	return kmpkg_error_set(s->klass, s->code, s->field, s->next_step, "%s", s->message);
}

int kmpkg_worker_push(struct kmpkg_worker *w, void *job)
{
	struct job *j = malloc(sizeof(*j));
	int err;

	if (!j)
		abort();
	j->next = NULL;
	j->job = job;
	pthread_mutex_lock(&w->mu);
	if (!w->started && pthread_create(&w->thread, NULL, worker_main, w) == 0)
		w->started = true;
	if (!w->started) {
		/* No thread: the job runs here, in order all the same. */
		free(j);
		run(w, job);
	} else {
		while (w->max_queued && w->queued >= w->max_queued)
			pthread_cond_wait(&w->cv, &w->mu);
		*w->tail = j;
		w->tail = &j->next;
		w->queued++;
		pthread_cond_broadcast(&w->cv);
	}
	err = failure(w);
	pthread_mutex_unlock(&w->mu);
	return err;
}

int kmpkg_worker_wait(struct kmpkg_worker *w)
{
	int err;

	pthread_mutex_lock(&w->mu);
	while (w->head || w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	err = failure(w);
	w->err = 0;
	pthread_mutex_unlock(&w->mu);
	return err;
}

int kmpkg_worker_free(struct kmpkg_worker *w)
{
	int err;

	if (!w)
		return 0;
	err = kmpkg_worker_wait(w);
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return err;
}
