/*
 * Dependency resolution: PubGrub (dart-lang/pub doc/solver.md) over finite
 * version sets (include/kmpkg/resolve.h).
 *
 * NOTES ON THE DESIGN
 *
 * Domain. Every plugin p has a finite, known list of versions (its
 * candidates, plus the installed version when no candidate has it), sorted
 * newest first; index i is the i-th newest. A term about p is a subset of
 * D(p) = {0 .. n-1} ∪ {NONE}, stored as a bitset of n+1 bits with NONE as
 * bit n. "p is selected at a version in S" is S itself (NONE not in it: a
 * positive term); "not (p in S)" is D(p) \ S (NONE in it: a negative term).
 * Set operations are therefore exact and cheap, and node-semver ranges are
 * only ever tested against known versions, once per (plugin, range text).
 *
 * Incompatibilities are sets of terms that must not all hold. External ones
 * come from the world: the root's requirements (requests and installed
 * plugins), a version's dependencies, a version rejected by the filter or
 * carrying a malformed range. Derived ones come from conflict resolution and
 * remember their two causes: the derivation tree is the explanation.
 *
 * The partial solution is the list of assignments (decisions "p = v" and
 * derivations "p in S" with the incompatibility that forced them). For each
 * plugin we keep the intersection of its assignments (acc), its list of
 * assignment indices, its decision, and the incompatibilities mentioning it.
 *
 * Loop: propagate from the last changed plugin (unit propagation: an
 * incompatibility all of whose terms but one are satisfied forces the
 * negation of the last; all satisfied is a conflict, resolved by walking
 * back the satisfiers and learning a new incompatibility, then backjumping);
 * then choose the undecided positive plugin (requested ones first, then the
 * one with the fewest allowed versions, ties by name) and decide its installed version when it is kept, else its
 * newest allowed version that passes the filter. Rejected versions become
 * unit incompatibilities, so the proof can name them. Done when every
 * positively derived plugin is decided.
 *
 * Cycles need nothing special: a dependency on a plugin that is already
 * decided is just another constraint. Termination follows from PubGrub's:
 * every conflict learns an incompatibility that excludes at least the
 * current decision, and the domain is finite.
 *
 * Memory: candidates live for the resolver (malloc'd); everything a single
 * kmpkg_resolve builds (sets, terms, incompatibilities) lives in an arena
 * dropped at the start of the next kmpkg_resolve or at kmpkg_resolver_free,
 * so the last explanation's steps can still point at it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/resolve.h"
#include "kmpkg/semver.h"

#define ROOT 0u

static int nomem(void)
{
	return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
}

/* Grows *pp (an array of elsz-byte elements, capacity *cap) to hold need. */
static int grow(void *pp, size_t *cap, size_t need, size_t elsz)
{
	void **p = pp;
	size_t ncap;
	void *q;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	q = realloc(*p, ncap * elsz);
	if (!q)
		return nomem();
	*p = q;
	*cap = ncap;
	return 0;
}

/* ---- arena ------------------------------------------------------------- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap; /* in 8-byte units */
	uint64_t data[];
};

struct arena {
	struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t bytes)
{
	size_t units = bytes ? (bytes + 7) / 8 : 1;
	struct arena_block *b = a->head;
	void *p;

	if (!b || b->cap - b->used < units) {
		size_t cap = units > 8192 ? units : 8192;

		b = malloc(sizeof(*b) + cap * 8);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	p = b->data + b->used;
	b->used += units;
	memset(p, 0, units * 8);
	return p;
}

static void arena_release(struct arena *a)
{
	while (a->head) {
		struct arena_block *next = a->head->next;

		free(a->head);
		a->head = next;
	}
}

static char *arena_strdup(struct arena *a, const char *s)
{
	size_t len = strlen(s);
	char *d = arena_alloc(a, len + 1);

	if (d)
		memcpy(d, s, len + 1);
	return d;
}

/* ---- string map (open addressing; keys borrowed) ---------------------- */

struct strmap {
	const char **keys;
	uint32_t *vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static bool strmap_get(const struct strmap *m, const char *k, uint32_t *out)
{
	size_t i;

	if (!m->cap)
		return false;
	for (i = hash_str(k) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (strcmp(m->keys[i], k) == 0) {
			*out = m->vals[i];
			return true;
		}
	}
	return false;
}

static int strmap_put(struct strmap *m, const char *k, uint32_t v)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		struct strmap nm = { NULL, NULL, m->cap ? m->cap * 2 : 64, 0 };

		nm.keys = calloc(nm.cap, sizeof(*nm.keys));
		nm.vals = calloc(nm.cap, sizeof(*nm.vals));
		if (!nm.keys || !nm.vals) {
			free(nm.keys);
			free(nm.vals);
			return nomem();
		}
		for (i = 0; i < m->cap; i++) {
			size_t j;

			if (!m->keys[i])
				continue;
			for (j = hash_str(m->keys[i]) & (nm.cap - 1); nm.keys[j]; j = (j + 1) & (nm.cap - 1))
				;
			nm.keys[j] = m->keys[i];
			nm.vals[j] = m->vals[i];
			nm.n++;
		}
		free(m->keys);
		free(m->vals);
		*m = nm;
	}
	for (i = hash_str(k) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (strcmp(m->keys[i], k) == 0) {
			m->vals[i] = v;
			return 0;
		}
	}
	m->keys[i] = k;
	m->vals[i] = v;
	m->n++;
	return 0;
}

static void strmap_release(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- resolver data ---------------------------------------------------- */

enum { FILTER_UNKNOWN, FILTER_OK, FILTER_REJECTED };

struct rver {
	char *version;
	struct kmpkg_semver sv;
	char **dep_names;
	char **dep_ranges;
	size_t ndeps;
	void *userdata;
	size_t seq;        /* order of addition: the first of equal versions wins */
	/* per kmpkg_resolve */
	unsigned char filter;
	bool deps_added;
	const char *why;   /* arena */
	struct incompat *rejected; /* its IK_REJECTED incompatibility, once made */
};

/* A version set of one plugin computed from a range, kept to name sets in
 * explanations ("b ^2.0.0" rather than a list of versions). */
struct named_set {
	const char *label; /* interned range text */
	uint64_t *set;
	struct named_set *next;
};

struct incompat;

struct rpkg {
	char *name;
	struct rver **cand;        /* as added; owned */
	size_t ncand, ccand;
	bool has_inst;
	struct rver inst;          /* the installed record, as a version; owned */
	const char *constraint;    /* interned, NULL when none */
	const struct kmpkg_semver_range *constraint_r;
	/* sorted view (newest first), rebuilt when dirty */
	struct rver **v;
	size_t n, cv;
	int inst_idx;              /* index of the installed version in v, or -1 */
	bool dirty;
	size_t words;              /* uint64_t words of a set: n + 1 bits */
	/* per kmpkg_resolve */
	uint64_t *acc;             /* intersection of assignments; NULL = D(p) untouched */
	int decided;               /* version index, or -1 */
	uint32_t *asg;             /* indices into solver.a, increasing */
	size_t nasg, casg;
	struct incompat **inc;
	size_t ninc, cinc;
	struct named_set *named;
	bool in_changed, prefer_newest, requested, recompute;
	bool replaced;             /* a request's range replaces the installed constraint */
	uint32_t rank;             /* position in name order, for ties between decisions */
};

struct rrange {
	char *text;
	struct kmpkg_semver_range *parsed;
};

struct kmpkg_resolver {
	struct rpkg **pkgs;        /* pkgs[ROOT] is the root */
	size_t npkgs, cpkgs;
	struct strmap names;
	size_t ranked;             /* pkgs[0..ranked) have their rank */
	/* range cache: text -> parsed (NULL when malformed) */
	struct rrange *rr;
	size_t nranges, cranges;
	struct strmap ranges;
	kmpkg_resolve_filter_fn filter;
	void *filter_ctx;
	size_t seq;
	struct arena arena;
	struct kmpkg_resolve_step *steps;
	size_t nsteps, csteps;
};

/* ---- solver data ------------------------------------------------------ */

enum ikind {
	IK_REQUEST,   /* {root, not q in R} */
	IK_INSTALLED, /* {root, not q in C} */
	IK_DEPENDS,   /* {p = v, not q in R} */
	IK_MISSING,   /* {p = v} or {root}: q has no versions */
	IK_NO_MATCH,  /* {p = v} or {root}: R matches no version of q */
	IK_REJECTED,  /* {p = v}: the filter said no */
	IK_INVALID,   /* {p = v}: malformed range for q */
	IK_DERIVED,
	IK_ROOT,      /* {not root} */
};

struct term {
	uint32_t pkg;
	uint64_t *set;
};

struct incompat {
	struct term *t;
	uint32_t n;
	enum ikind kind;
	struct incompat *c1, *c2;    /* IK_DERIVED */
	uint32_t pkg;                /* the depender (ROOT for requests) */
	int ver;                     /* its version, -1 for root */
	uint32_t dep;                /* the plugin depended on */
	const char *label;           /* range text, or the filter's reason */
	bool installed;              /* IK_MISSING / IK_NO_MATCH from an installed constraint */
	bool pivot_both;             /* derived from two "needs" of one plugin ... */
	uint32_t pivot;              /* ... this one */
	bool seen;
};

struct asg {
	uint32_t pkg;
	uint32_t level;
	struct incompat *cause;      /* NULL for a decision */
	uint64_t *set;
};

struct hent {
	size_t count;
	uint32_t pkg;
};

struct solver {
	struct kmpkg_resolver *r;
	unsigned flags;
	struct asg *a;
	size_t na, ca;
	uint32_t level;
	uint32_t *touched;           /* plugins with acc allocated */
	size_t nt, ct;
	uint32_t *changed;
	size_t nc, cc;
	uint32_t *redo;              /* plugins whose acc a backtrack must recompute */
	size_t nredo, credo;
	struct hent *heap;           /* undecided positive plugins, fewest versions first; */
	size_t nh, ch;               /* entries go stale and are skipped when popped */
	struct incompat **root_inc;  /* the root's requirements */
	size_t nroot, croot;
	uint64_t *scratch;
	size_t scratch_words;
	struct incompat *failure;
};

static struct rpkg *PKG(const struct solver *s, uint32_t i)
{
	return s->r->pkgs[i];
}

/* Requested plugins first (their newest version is what was asked for; the
 * installed plugins it needs may move for it), then fewest versions first
 * (PubGrub's heuristic: conflicts show up early), then by name. */
static bool hent_less(const struct solver *s, const struct hent *a, const struct hent *b)
{
	bool ra = PKG(s, a->pkg)->requested, rb = PKG(s, b->pkg)->requested;

	if (ra != rb)
		return ra;
	if (a->count != b->count)
		return a->count < b->count;
	return PKG(s, a->pkg)->rank < PKG(s, b->pkg)->rank;
}

static int heap_push(struct solver *s, size_t count, uint32_t pi)
{
	size_t i;
	int err;

	if ((err = grow(&s->heap, &s->ch, s->nh + 1, sizeof(*s->heap))))
		return err;
	i = s->nh++;
	s->heap[i] = (struct hent){ count, pi };
	while (i > 0 && hent_less(s, &s->heap[i], &s->heap[(i - 1) / 2])) {
		struct hent t = s->heap[i];

		s->heap[i] = s->heap[(i - 1) / 2];
		s->heap[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
	return 0;
}

static struct hent heap_pop(struct solver *s)
{
	struct hent top = s->heap[0];
	size_t i = 0;

	s->heap[0] = s->heap[--s->nh];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct hent t;

		if (l < s->nh && hent_less(s, &s->heap[l], &s->heap[m]))
			m = l;
		if (r < s->nh && hent_less(s, &s->heap[r], &s->heap[m]))
			m = r;
		if (m == i)
			break;
		t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
	return top;
}

/* ---- sets ------------------------------------------------------------- */

static uint64_t full_word(const struct rpkg *p, size_t i)
{
	size_t nbits = p->n + 1;

	if ((i + 1) * 64 <= nbits)
		return ~0ULL;
	if (i * 64 >= nbits)
		return 0;
	return (1ULL << (nbits - i * 64)) - 1;
}

static bool bit_get(const uint64_t *s, size_t i)
{
	return (s[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *s, size_t i)
{
	s[i / 64] |= 1ULL << (i % 64);
}

static uint64_t *set_new(struct solver *s, const struct rpkg *p)
{
	return arena_alloc(&s->r->arena, p->words * sizeof(uint64_t));
}

static uint64_t *set_full(struct solver *s, const struct rpkg *p)
{
	uint64_t *d = set_new(s, p);
	size_t i;

	if (d)
		for (i = 0; i < p->words; i++)
			d[i] = full_word(p, i);
	return d;
}

static uint64_t *set_complement(struct solver *s, const struct rpkg *p, const uint64_t *a)
{
	uint64_t *d = set_new(s, p);
	size_t i;

	if (d)
		for (i = 0; i < p->words; i++)
			d[i] = full_word(p, i) & ~a[i];
	return d;
}

static bool set_subset(const uint64_t *a, const uint64_t *b, size_t w)
{
	size_t i;

	for (i = 0; i < w; i++)
		if (a[i] & ~b[i])
			return false;
	return true;
}

static bool set_disjoint(const uint64_t *a, const uint64_t *b, size_t w)
{
	size_t i;

	for (i = 0; i < w; i++)
		if (a[i] & b[i])
			return false;
	return true;
}

static bool set_empty(const uint64_t *a, size_t w)
{
	size_t i;

	for (i = 0; i < w; i++)
		if (a[i])
			return false;
	return true;
}

static bool set_is_full(const struct rpkg *p, const uint64_t *a)
{
	size_t i;

	for (i = 0; i < p->words; i++)
		if (a[i] != full_word(p, i))
			return false;
	return true;
}

/* Versions in a (NONE not counted). */
static size_t set_count(const struct rpkg *p, const uint64_t *a)
{
	size_t i, c = 0;

	for (i = 0; i < p->words; i++)
		c += (size_t)__builtin_popcountll(a[i]);
	return c - (bit_get(a, p->n) ? 1 : 0);
}

static bool term_positive(const struct rpkg *p, const uint64_t *set)
{
	return !bit_get(set, p->n);
}

/* Offers an undecided, positively derived plugin to the next decision. */
static int offer(struct solver *s, uint32_t pi)
{
	struct rpkg *p = PKG(s, pi);

	if (p->decided >= 0 || !p->acc || !term_positive(p, p->acc))
		return 0;
	return heap_push(s, set_count(p, p->acc), pi);
}

/* ---- candidates ------------------------------------------------------- */

static void rver_release(struct rver *v)
{
	size_t i;

	if (!v->version)
		return;
	free(v->version);
	kmpkg_semver_release(&v->sv);
	for (i = 0; i < v->ndeps; i++) {
		free(v->dep_names[i]);
		free(v->dep_ranges[i]);
	}
	free(v->dep_names);
	free(v->dep_ranges);
	memset(v, 0, sizeof(*v));
}

static void rpkg_free(struct rpkg *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->ncand; i++) {
		rver_release(p->cand[i]);
		free(p->cand[i]);
	}
	free(p->cand);
	rver_release(&p->inst);
	free(p->v);
	free(p->asg);
	free(p->inc);
	free(p->name);
	free(p);
}

static int pkg_lookup(struct kmpkg_resolver *r, const char *name, bool create, uint32_t *out)
{
	struct rpkg *p = NULL;
	int err;

	if (strmap_get(&r->names, name, out))
		return 0;
	if (!create)
		return 1;
	if ((err = grow(&r->pkgs, &r->cpkgs, r->npkgs + 1, sizeof(*r->pkgs))))
		return err;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(name))) {
		free(p);
		return nomem();
	}
	p->inst_idx = -1;
	p->words = 1;
	p->decided = -1;
	if ((err = strmap_put(&r->names, p->name, (uint32_t)r->npkgs))) {
		rpkg_free(p);
		return err;
	}
	*out = (uint32_t)r->npkgs;
	r->pkgs[r->npkgs++] = p;
	return 0;
}

/* Interns a range text and parses it once. *out_range is NULL when the text
 * is malformed. */
static int range_get(struct kmpkg_resolver *r, const char *text, const char **out_label,
		     const struct kmpkg_semver_range **out_range)
{
	uint32_t i;
	char *t = NULL;
	struct kmpkg_semver_range *parsed = NULL;
	int err;

	if (!strmap_get(&r->ranges, text, &i)) {
		if ((err = grow(&r->rr, &r->cranges, r->nranges + 1, sizeof(*r->rr))))
			return err;
		if (!(t = strdup(text)))
			return nomem();
		if (kmpkg_semver_range_parse(&parsed, text) != 0)
			parsed = NULL;
		i = (uint32_t)r->nranges;
		r->rr[i].text = t;
		r->rr[i].parsed = parsed;
		r->nranges++;
		if ((err = strmap_put(&r->ranges, t, i)))
			return err;
	}
	*out_label = r->rr[i].text;
	*out_range = r->rr[i].parsed;
	return 0;
}

static int copy_deps(struct rver *v, const char *const *names, const char *const *ranges, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	if (!names)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_RESOLVE_NAME", NULL, NULL,
				       "%s: dependency names missing", v->version);
	v->dep_names = calloc(n, sizeof(char *));
	v->dep_ranges = calloc(n, sizeof(char *));
	if (!v->dep_names || !v->dep_ranges)
		return nomem();
	v->ndeps = n;
	for (i = 0; i < n; i++) {
		if (!names[i] || !*names[i])
			return kmpkg_error_set(KMPKG_EUSAGE, "E_RESOLVE_NAME", NULL, NULL,
					       "%s: empty dependency name", v->version);
		v->dep_names[i] = strdup(names[i]);
		v->dep_ranges[i] = strdup(ranges && ranges[i] && *ranges[i] ? ranges[i] : "*");
		if (!v->dep_names[i] || !v->dep_ranges[i])
			return nomem();
	}
	return 0;
}

int kmpkg_resolver_new(struct kmpkg_resolver **out)
{
	struct kmpkg_resolver *r = NULL;
	struct rpkg *root = NULL;
	int err = 0;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	root = calloc(1, sizeof(*root));
	if (!r || !root || !(root->name = strdup("(root)"))) {
		err = nomem();
		goto cleanup;
	}
	if ((err = grow(&r->pkgs, &r->cpkgs, 1, sizeof(*r->pkgs))))
		goto cleanup;
	/* The root has one version (index 0) that is never a real candidate. */
	root->v = calloc(1, sizeof(*root->v));
	if (!root->v) {
		err = nomem();
		goto cleanup;
	}
	root->v[0] = &root->inst;
	root->n = 1;
	root->cv = 1;
	root->inst_idx = -1;
	root->words = 1;
	root->decided = -1;
	r->pkgs[r->npkgs++] = root;
	root = NULL;
	*out = r;
	r = NULL;
cleanup:
	free(root ? root->name : NULL);
	free(root);
	kmpkg_resolver_free(r);
	return err;
}

static void steps_release(struct kmpkg_resolver *r)
{
	size_t i;

	for (i = 0; i < r->nsteps; i++)
		free((char *)r->steps[i].text);
	r->nsteps = 0;
}

void kmpkg_resolver_free(struct kmpkg_resolver *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->npkgs; i++)
		rpkg_free(r->pkgs[i]);
	free(r->pkgs);
	strmap_release(&r->names);
	for (i = 0; i < r->nranges; i++) {
		free(r->rr[i].text);
		kmpkg_semver_range_free(r->rr[i].parsed);
	}
	free(r->rr);
	strmap_release(&r->ranges);
	arena_release(&r->arena);
	steps_release(r);
	free(r->steps);
	free(r);
}

int kmpkg_resolver_add_candidate(struct kmpkg_resolver *r, const struct kmpkg_resolve_candidate *c)
{
	struct rver *v = NULL;
	uint32_t pi;
	struct rpkg *p;
	int err;

	if (!c->name || !*c->name)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_RESOLVE_NAME", NULL, NULL, "candidate without a name");
	if (!c->version)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SEMVER_INVALID", NULL, NULL,
				       "%s: candidate without a version", c->name);
	v = calloc(1, sizeof(*v));
	if (!v)
		return nomem();
	if ((err = kmpkg_semver_parse(&v->sv, c->version))) {
		free(v);
		return err;
	}
	if (!(v->version = strdup(c->version))) {
		kmpkg_semver_release(&v->sv);
		free(v);
		return nomem();
	}
	if ((err = copy_deps(v, c->dep_names, c->dep_ranges, c->ndeps)))
		goto fail;
	v->userdata = c->userdata;
	v->seq = r->seq++;
	if ((err = pkg_lookup(r, c->name, true, &pi)))
		goto fail;
	p = r->pkgs[pi];
	if ((err = grow(&p->cand, &p->ccand, p->ncand + 1, sizeof(*p->cand))))
		goto fail;
	p->cand[p->ncand++] = v;
	p->dirty = true;
	return 0;
fail:
	rver_release(v);
	free(v);
	return err;
}

int kmpkg_resolver_add_installed(struct kmpkg_resolver *r, const struct kmpkg_resolve_installed *in)
{
	struct rver v = { 0 };
	const char *label = NULL;
	const struct kmpkg_semver_range *range = NULL;
	uint32_t pi;
	struct rpkg *p;
	int err;

	if (!in->name || !*in->name)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_RESOLVE_NAME", NULL, NULL,
				       "installed plugin without a name");
	if (!in->version)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SEMVER_INVALID", NULL, NULL,
				       "%s: installed plugin without a version", in->name);
	if (in->constraint && *in->constraint) {
		if ((err = range_get(r, in->constraint, &label, &range)))
			return err;
		if (!range)
			return kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", NULL, NULL,
					       "%s: invalid constraint \"%s\"", in->name, in->constraint);
	}
	if ((err = kmpkg_semver_parse(&v.sv, in->version)))
		return err;
	if (!(v.version = strdup(in->version))) {
		kmpkg_semver_release(&v.sv);
		return nomem();
	}
	if ((err = copy_deps(&v, in->dep_names, in->dep_ranges, in->ndeps)))
		goto fail;
	v.userdata = in->userdata;
	v.seq = r->seq++;
	if ((err = pkg_lookup(r, in->name, true, &pi)))
		goto fail;
	p = r->pkgs[pi];
	rver_release(&p->inst);
	p->inst = v;
	p->has_inst = true;
	p->constraint = label;
	p->constraint_r = range;
	p->dirty = true;
	return 0;
fail:
	rver_release(&v);
	return err;
}

void kmpkg_resolver_set_filter(struct kmpkg_resolver *r, kmpkg_resolve_filter_fn ok, void *ctx)
{
	r->filter = ok;
	r->filter_ctx = ctx;
}

const char *kmpkg_resolve_action_name(enum kmpkg_resolve_action a)
{
	switch (a) {
	case KMPKG_RESOLVE_KEEP: return "keep";
	case KMPKG_RESOLVE_INSTALL: return "install";
	case KMPKG_RESOLVE_UPGRADE: return "upgrade";
	case KMPKG_RESOLVE_DOWNGRADE: return "downgrade";
	}
	return "?";
}

const struct kmpkg_resolve_step *kmpkg_resolver_explanation(const struct kmpkg_resolver *r, size_t *n)
{
	*n = r->nsteps;
	return r->steps;
}

/* Newest first; equal versions in the order they were added. */
static int cmp_ver_desc(const void *a, const void *b)
{
	const struct rver *x = *(struct rver *const *)a, *y = *(struct rver *const *)b;
	int c = kmpkg_semver_cmp(&y->sv, &x->sv);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int pkg_prepare(struct rpkg *p)
{
	size_t i, n = 0;
	int err;

	if (!p->dirty)
		return 0;
	if ((err = grow(&p->v, &p->cv, p->ncand + 1, sizeof(*p->v))))
		return err;
	if (p->ncand)
		memcpy(p->v, p->cand, p->ncand * sizeof(*p->v));
	qsort(p->v, p->ncand, sizeof(*p->v), cmp_ver_desc);
	for (i = 0; i < p->ncand; i++)
		if (n == 0 || kmpkg_semver_cmp(&p->v[n - 1]->sv, &p->v[i]->sv) != 0)
			p->v[n++] = p->v[i];
	p->inst_idx = -1;
	if (p->has_inst) {
		for (i = 0; i < n; i++) {
			int c = kmpkg_semver_cmp(&p->v[i]->sv, &p->inst.sv);

			if (c == 0)
				p->inst_idx = (int)i;
			if (c <= 0)
				break;
		}
		if (p->inst_idx < 0) {
			memmove(p->v + i + 1, p->v + i, (n - i) * sizeof(*p->v));
			p->v[i] = &p->inst;
			p->inst_idx = (int)i;
			n++;
		}
	}
	p->n = n;
	p->words = (n + 1 + 63) / 64;
	p->dirty = false;
	return 0;
}

static int cmp_pkg_name(const void *a, const void *b)
{
	return strcmp((*(struct rpkg *const *)a)->name, (*(struct rpkg *const *)b)->name);
}

/* Ranks plugins by name (once per set of names), so that ties between
 * decisions do not depend on the order the caller added candidates in.
 * Plugins created during a resolve have no versions and are never decided. */
static int rank_names(struct kmpkg_resolver *r)
{
	struct rpkg **sorted;
	size_t i;

	if (r->ranked == r->npkgs)
		return 0;
	if (!(sorted = malloc(r->npkgs * sizeof(*sorted))))
		return nomem();
	memcpy(sorted, r->pkgs, r->npkgs * sizeof(*sorted));
	qsort(sorted, r->npkgs, sizeof(*sorted), cmp_pkg_name);
	for (i = 0; i < r->npkgs; i++)
		sorted[i]->rank = (uint32_t)i;
	free(sorted);
	r->ranked = r->npkgs;
	return 0;
}

/* ---- partial solution ------------------------------------------------- */

static int touch(struct solver *s, uint32_t pi)
{
	struct rpkg *p = PKG(s, pi);
	int err;

	if (p->acc)
		return 0;
	if (!(p->acc = set_full(s, p)))
		return nomem();
	if ((err = grow(&s->touched, &s->ct, s->nt + 1, sizeof(*s->touched))))
		return err;
	s->touched[s->nt++] = pi;
	return 0;
}

static int assign(struct solver *s, uint32_t pi, uint64_t *set, struct incompat *cause)
{
	struct rpkg *p = PKG(s, pi);
	size_t i;
	int err;

	if ((err = touch(s, pi)))
		return err;
	if ((err = grow(&s->a, &s->ca, s->na + 1, sizeof(*s->a))) ||
	    (err = grow(&p->asg, &p->casg, p->nasg + 1, sizeof(*p->asg))))
		return err;
	s->a[s->na] = (struct asg){ pi, s->level, cause, set };
	p->asg[p->nasg++] = (uint32_t)s->na;
	s->na++;
	for (i = 0; i < p->words; i++)
		p->acc[i] &= set[i];
	if (!cause) {
		for (i = 0; i < p->n; i++)
			if (bit_get(set, i))
				p->decided = (int)i;
	}
	return offer(s, pi);
}

static int derive(struct solver *s, const struct term *t, struct incompat *cause)
{
	uint64_t *set = set_complement(s, PKG(s, t->pkg), t->set);

	if (!set)
		return nomem();
	return assign(s, t->pkg, set, cause);
}

static int decide(struct solver *s, uint32_t pi, int v)
{
	uint64_t *set = set_new(s, PKG(s, pi));

	if (!set)
		return nomem();
	bit_set(set, (size_t)v);
	s->level++;
	return assign(s, pi, set, NULL);
}

static int backtrack(struct solver *s, uint32_t level)
{
	size_t i, j;
	int err;

	while (s->na > 0 && s->a[s->na - 1].level > level) {
		struct asg *a = &s->a[--s->na];
		struct rpkg *p = PKG(s, a->pkg);

		p->nasg--;
		if (!a->cause)
			p->decided = -1;
		if (!p->recompute) {
			p->recompute = true;
			if ((err = grow(&s->redo, &s->credo, s->nredo + 1, sizeof(*s->redo))))
				return err;
			s->redo[s->nredo++] = a->pkg;
		}
	}
	for (i = 0; i < s->nredo; i++) {
		struct rpkg *p = PKG(s, s->redo[i]);

		p->recompute = false;
		for (j = 0; j < p->words; j++)
			p->acc[j] = full_word(p, j);
		for (j = 0; j < p->nasg; j++) {
			const uint64_t *set = s->a[p->asg[j]].set;
			size_t k;

			for (k = 0; k < p->words; k++)
				p->acc[k] &= set[k];
		}
		if ((err = offer(s, s->redo[i])))
			return err;
	}
	s->nredo = 0;
	s->level = level;
	return 0;
}

/* Index of the earliest assignment at which the term (pi, set) is satisfied.
 * The caller knows it is satisfied by the whole partial solution. */
static size_t satisfier(struct solver *s, uint32_t pi, const uint64_t *set)
{
	struct rpkg *p = PKG(s, pi);
	uint64_t *acc = s->scratch;
	size_t i, k;

	for (k = 0; k < p->words; k++)
		acc[k] = full_word(p, k);
	for (i = 0; i < p->nasg; i++) {
		const uint64_t *a = s->a[p->asg[i]].set;

		for (k = 0; k < p->words; k++)
			acc[k] &= a[k];
		if (set_subset(acc, set, p->words))
			return p->asg[i];
	}
	/* Unreachable while the invariants hold; the last one is a safe answer. */
	return p->nasg ? p->asg[p->nasg - 1] : 0;
}

/* ---- incompatibilities ------------------------------------------------ */

/* Builds an incompatibility from terms, merging terms of one plugin by
 * intersection and dropping terms that always hold. *out is NULL when the
 * incompatibility can never be satisfied (a term that never holds). */
static int incompat_new(struct solver *s, struct incompat **out, const struct term *in, size_t n,
			enum ikind kind)
{
	struct incompat *ic = NULL;
	size_t i, j, k;

	*out = NULL;
	ic = arena_alloc(&s->r->arena, sizeof(*ic));
	if (!ic || !(ic->t = arena_alloc(&s->r->arena, (n ? n : 1) * sizeof(*ic->t))))
		return nomem();
	ic->kind = kind;
	ic->ver = -1;
	for (i = 0; i < n; i++) {
		for (j = 0; j < ic->n; j++)
			if (ic->t[j].pkg == in[i].pkg)
				break;
		if (j == ic->n) {
			ic->t[ic->n++] = in[i];
			continue;
		}
		{
			struct rpkg *p = PKG(s, in[i].pkg);
			uint64_t *m = set_new(s, p);

			if (!m)
				return nomem();
			for (k = 0; k < p->words; k++)
				m[k] = ic->t[j].set[k] & in[i].set[k];
			ic->t[j].set = m;
		}
	}
	for (i = j = 0; i < ic->n; i++) {
		struct rpkg *p = PKG(s, ic->t[i].pkg);

		if (set_empty(ic->t[i].set, p->words))
			return 0;
		if (set_is_full(p, ic->t[i].set))
			continue;
		ic->t[j++] = ic->t[i];
	}
	ic->n = (uint32_t)j;
	/* A derived incompatibility need not say that the root is selected. */
	if (kind == IK_DERIVED && ic->n > 1) {
		for (i = j = 0; i < ic->n; i++)
			if (!(ic->t[i].pkg == ROOT && term_positive(PKG(s, ROOT), ic->t[i].set)))
				ic->t[j++] = ic->t[i];
		ic->n = (uint32_t)j;
	}
	*out = ic;
	return 0;
}

static int incompat_add(struct solver *s, struct incompat *ic)
{
	uint32_t i;
	int err;

	for (i = 0; i < ic->n; i++) {
		struct rpkg *p = PKG(s, ic->t[i].pkg);

		if ((err = grow(&p->inc, &p->cinc, p->ninc + 1, sizeof(*p->inc))))
			return err;
		p->inc[p->ninc++] = ic;
	}
	return 0;
}

static bool incompat_failure(struct solver *s, const struct incompat *ic)
{
	return ic->n == 0 ||
	       (ic->n == 1 && ic->t[0].pkg == ROOT && term_positive(PKG(s, ROOT), ic->t[0].set));
}

enum { REL_SATISFIED, REL_ALMOST, REL_CONTRADICTED, REL_NONE };

static int relation(struct solver *s, const struct incompat *ic, uint32_t *which)
{
	uint32_t i;
	int un = -1;

	for (i = 0; i < ic->n; i++) {
		const struct rpkg *p = PKG(s, ic->t[i].pkg);

		if (p->acc && set_subset(p->acc, ic->t[i].set, p->words))
			continue;
		if (p->acc && set_disjoint(p->acc, ic->t[i].set, p->words))
			return REL_CONTRADICTED;
		if (un >= 0)
			return REL_NONE;
		un = (int)i;
	}
	if (un < 0)
		return REL_SATISFIED;
	*which = (uint32_t)un;
	return REL_ALMOST;
}

/* PubGrub's conflict resolution: learns an incompatibility that, after the
 * backjump, forces one new derivation. */
static int resolve_conflict(struct solver *s, struct incompat *ic, struct incompat **out)
{
	struct term *terms = NULL;
	size_t cap = 0;
	bool created = false;
	int err = 0;

	for (;;) {
		size_t sat_idx = 0, nt = 0;
		int ti = -1;
		uint32_t i, prev = 1;
		uint64_t *diff = NULL, *inv = NULL;
		struct asg *sat;
		struct incompat *cause, *learned;
		struct rpkg *sp;

		if (incompat_failure(s, ic)) {
			s->failure = ic;
			err = KMPKG_EDEPS;
			goto cleanup;
		}
		for (i = 0; i < ic->n; i++) {
			const struct term *t = &ic->t[i];
			size_t si = satisfier(s, t->pkg, t->set);

			if (ti < 0) {
				ti = (int)i;
				sat_idx = si;
			} else if (sat_idx < si) {
				if (s->a[sat_idx].level > prev)
					prev = s->a[sat_idx].level;
				ti = (int)i;
				sat_idx = si;
				diff = NULL;
			} else if (s->a[si].level > prev) {
				prev = s->a[si].level;
			}
			if (ti == (int)i) {
				/* If the satisfier does not satisfy the term on its own,
				 * an earlier assignment satisfies the rest. */
				struct rpkg *p = PKG(s, t->pkg);
				size_t k;

				if (!(diff = set_new(s, p))) {
					err = nomem();
					goto cleanup;
				}
				for (k = 0; k < p->words; k++)
					diff[k] = s->a[sat_idx].set[k] & ~t->set[k];
				if (set_empty(diff, p->words)) {
					diff = NULL;
				} else {
					size_t di;

					if (!(inv = set_complement(s, p, diff))) {
						err = nomem();
						goto cleanup;
					}
					di = satisfier(s, t->pkg, inv);
					if (s->a[di].level > prev)
						prev = s->a[di].level;
				}
			}
		}
		sat = &s->a[sat_idx];
		if (prev < sat->level || !sat->cause) {
			if ((err = backtrack(s, prev)))
				goto cleanup;
			if (created && (err = incompat_add(s, ic)))
				goto cleanup;
			*out = ic;
			goto cleanup;
		}
		cause = sat->cause;
		sp = PKG(s, sat->pkg);
		if ((err = grow(&terms, &cap, ic->n + cause->n + 1, sizeof(*terms))))
			goto cleanup;
		for (i = 0; i < ic->n; i++)
			if ((int)i != ti)
				terms[nt++] = ic->t[i];
		for (i = 0; i < cause->n; i++)
			if (cause->t[i].pkg != sat->pkg)
				terms[nt++] = cause->t[i];
		if (diff)
			terms[nt++] = (struct term){ sat->pkg, inv };
		if ((err = incompat_new(s, &learned, terms, nt, IK_DERIVED)))
			goto cleanup;
		if (!learned) {
			/* Cannot happen: a resolvent of satisfied terms is satisfiable. */
			err = kmpkg_error_set(KMPKG_EGENERIC, "E_RESOLVE_INTERNAL", NULL, NULL,
					      "dependency resolver: vacuous learned clause");
			goto cleanup;
		}
		learned->c1 = ic;
		learned->c2 = cause;
		learned->pivot = sat->pkg;
		if (!diff && !term_positive(sp, ic->t[ti].set)) {
			for (i = 0; i < cause->n; i++)
				if (cause->t[i].pkg == sat->pkg && !term_positive(sp, cause->t[i].set))
					learned->pivot_both = true;
		}
		ic = learned;
		created = true;
	}
cleanup:
	free(terms);
	return err;
}

static int push_changed(struct solver *s, uint32_t pi)
{
	int err;

	if (PKG(s, pi)->in_changed)
		return 0;
	if ((err = grow(&s->changed, &s->cc, s->nc + 1, sizeof(*s->changed))))
		return err;
	s->changed[s->nc++] = pi;
	PKG(s, pi)->in_changed = true;
	return 0;
}

static int propagate(struct solver *s, uint32_t start)
{
	int err;

	if ((err = push_changed(s, start)))
		return err;
	while (s->nc) {
		uint32_t pi = s->changed[--s->nc];
		struct rpkg *p = PKG(s, pi);
		size_t i;

		p->in_changed = false;
		for (i = p->ninc; i-- > 0;) {
			struct incompat *ic = p->inc[i];
			uint32_t which = 0;
			int rel = relation(s, ic, &which);

			if (rel == REL_SATISFIED) {
				struct incompat *learned = NULL;

				if ((err = resolve_conflict(s, ic, &learned)))
					return err;
				while (s->nc)
					PKG(s, s->changed[--s->nc])->in_changed = false;
				if (relation(s, learned, &which) == REL_ALMOST) {
					if ((err = derive(s, &learned->t[which], learned)) ||
					    (err = push_changed(s, learned->t[which].pkg)))
						return err;
				}
				break;
			}
			if (rel == REL_ALMOST) {
				if ((err = derive(s, &ic->t[which], ic)) ||
				    (err = push_changed(s, ic->t[which].pkg)))
					return err;
			}
		}
	}
	return 0;
}

/* ---- decisions -------------------------------------------------------- */

/* The set of q's versions that `label`/`range` accepts; cached per plugin. */
static uint64_t *range_set(struct solver *s, struct rpkg *q, const char *label,
			   const struct kmpkg_semver_range *range)
{
	struct named_set *ns;
	uint64_t *set;
	size_t i;

	for (ns = q->named; ns; ns = ns->next)
		if (ns->label == label)
			return ns->set;
	if (!(set = set_new(s, q)) || !(ns = arena_alloc(&s->r->arena, sizeof(*ns))))
		return NULL;
	for (i = 0; i < q->n; i++)
		if (kmpkg_semver_range_test(range, &q->v[i]->sv))
			bit_set(set, i);
	ns->label = label;
	ns->set = set;
	ns->next = q->named;
	q->named = ns;
	return set;
}

/* {p = v, not q in R}, or a unit incompatibility when R is empty. */
static int dep_incompat(struct solver *s, struct incompat **out, uint32_t pi, int v, uint32_t qi,
			const uint64_t *rset, enum ikind kind, const char *label)
{
	struct rpkg *p = PKG(s, pi), *q = PKG(s, qi);
	struct term t[2];
	size_t n = 1;
	bool installed = false;
	int err;

	*out = NULL;
	if (!(t[0].set = set_new(s, p)))
		return nomem();
	t[0].pkg = pi;
	bit_set(t[0].set, (size_t)v);
	if (rset && set_count(q, rset) > 0) {
		t[1].pkg = qi;
		if (!(t[1].set = set_complement(s, q, rset)))
			return nomem();
		n = 2;
	} else if (kind == IK_DEPENDS || kind == IK_REQUEST || kind == IK_INSTALLED) {
		installed = kind == IK_INSTALLED;
		kind = q->n ? IK_NO_MATCH : IK_MISSING;
	}
	if ((err = incompat_new(s, out, t, n, kind)))
		return err;
	if (*out) {
		(*out)->pkg = pi;
		(*out)->ver = pi == ROOT ? -1 : v;
		(*out)->dep = qi;
		(*out)->label = label;
		(*out)->installed = installed;
	}
	return 0;
}

/* Adds the incompatibilities of p's version v's dependencies. *conflict is
 * set when one of them already rules v out. */
static int add_deps(struct solver *s, uint32_t pi, int v, bool *conflict)
{
	struct rver *rv = PKG(s, pi)->v[v];
	size_t i;
	int err;

	*conflict = false;
	if (rv->deps_added)
		return 0;
	rv->deps_added = true;
	for (i = 0; i < rv->ndeps; i++) {
		const char *label = NULL;
		const struct kmpkg_semver_range *range = NULL;
		struct incompat *ic = NULL;
		uint64_t *rset = NULL;
		uint32_t qi, k;
		bool sat = true;

		if ((err = pkg_lookup(s->r, rv->dep_names[i], true, &qi)) ||
		    (err = range_get(s->r, rv->dep_ranges[i], &label, &range)))
			return err;
		if (!range) {
			if ((err = dep_incompat(s, &ic, pi, v, qi, NULL, IK_INVALID, label)))
				return err;
		} else {
			if (!(rset = range_set(s, PKG(s, qi), label, range)))
				return nomem();
			if (qi == pi && bit_get(rset, (size_t)v))
				continue; /* depends on itself, satisfied */
			if ((err = dep_incompat(s, &ic, pi, v, qi, rset, IK_DEPENDS, label)))
				return err;
		}
		if (!ic)
			continue;
		if ((err = incompat_add(s, ic)))
			return err;
		for (k = 0; k < ic->n; k++) {
			const struct rpkg *q = PKG(s, ic->t[k].pkg);

			if (ic->t[k].pkg == pi)
				continue;
			if (!q->acc || !set_subset(q->acc, ic->t[k].set, q->words))
				sat = false;
		}
		if (sat)
			*conflict = true;
	}
	return 0;
}

static int filter_ok(struct solver *s, struct rpkg *p, int v, bool *ok)
{
	struct rver *rv = p->v[v];
	char why[512] = "";

	if (rv->filter == FILTER_UNKNOWN) {
		rv->filter = FILTER_OK;
		if (s->r->filter &&
		    !s->r->filter(s->r->filter_ctx, p->name, rv->version, rv->userdata, why, sizeof(why))) {
			why[sizeof(why) - 1] = '\0';
			rv->filter = FILTER_REJECTED;
			rv->why = arena_strdup(&s->r->arena, why[0] ? why : "not compatible with this host");
			if (!rv->why)
				return nomem();
		}
	}
	*ok = rv->filter == FILTER_OK;
	return 0;
}

/* Makes one decision (or records rejected versions). *next is the plugin to
 * propagate from, or -1 when the solution is complete. */
static int choose(struct solver *s, int64_t *next)
{
	struct rpkg *p = NULL;
	uint32_t pi = 0;
	size_t i, best_count = 0;
	int v = -1, err;
	bool conflict = false, rejected = false;

	*next = -1;
	while (s->nh) {
		struct hent h = heap_pop(s);
		struct rpkg *c = PKG(s, h.pkg);

		if (c->decided >= 0 || !term_positive(c, c->acc) || set_count(c, c->acc) != h.count)
			continue; /* stale */
		p = c;
		pi = h.pkg;
		best_count = h.count;
		break;
	}
	if (!p)
		return 0;
	*next = pi;
	/* Until decided, it stays on offer. */
	if ((err = heap_push(s, best_count, pi)))
		return err;
	if (pi == ROOT) {
		for (i = 0; i < s->nroot; i++)
			if ((err = incompat_add(s, s->root_inc[i])))
				return err;
		return decide(s, ROOT, 0);
	}
	if (p->inst_idx >= 0 && !p->prefer_newest && bit_get(p->acc, (size_t)p->inst_idx)) {
		v = p->inst_idx;
	} else {
		for (i = 0; i < p->n; i++) {
			bool ok = true;
			struct incompat *ic = NULL;
			struct term t;

			if (!bit_get(p->acc, i))
				continue;
			if ((int)i != p->inst_idx && (err = filter_ok(s, p, (int)i, &ok)))
				return err;
			if (ok) {
				v = (int)i;
				break;
			}
			/* p = i is impossible: say so, then let propagation exclude it. */
			rejected = true;
			if (p->v[i]->rejected)
				continue;
			t.pkg = pi;
			if (!(t.set = set_new(s, p)))
				return nomem();
			bit_set(t.set, i);
			if ((err = incompat_new(s, &ic, &t, 1, IK_REJECTED)))
				return err;
			ic->pkg = pi;
			ic->ver = (int)i;
			ic->label = p->v[i]->why;
			p->v[i]->rejected = ic;
			if ((err = incompat_add(s, ic)))
				return err;
		}
	}
	if (rejected)
		return 0;
	if ((err = add_deps(s, pi, v, &conflict)))
		return err;
	if (!conflict)
		return decide(s, pi, v);
	return 0;
}

/* ---- explanation ------------------------------------------------------ */

static int describe_versions(struct kmpkg_buf *b, struct solver *s, uint32_t pi, const uint64_t *set,
			     bool complement)
{
	struct rpkg *p = PKG(s, pi);
	uint64_t *vs = s->scratch;
	struct named_set *ns;
	size_t i, count, first;
	bool sep = false;

	for (i = 0; i < p->words; i++)
		vs[i] = (complement ? ~set[i] : set[i]) & full_word(p, i);
	vs[p->n / 64] &= ~(1ULL << (p->n % 64));
	count = set_count(p, vs);
	/* A requirement reads best as the range that made it ("needs b ^2.0.0"),
	 * an exclusion as the versions themselves ("a 2.0.0 cannot be ..."). */
	if (complement)
		for (ns = p->named; ns; ns = ns->next)
			if (memcmp(ns->set, vs, p->words * sizeof(uint64_t)) == 0)
				return kmpkg_buf_printf(b, "%s %s", p->name, ns->label);
	if (count == 1) {
		for (i = 0; i < p->n && !bit_get(vs, i); i++)
			;
		return kmpkg_buf_printf(b, "%s %s%s", p->name, p->v[i]->version,
					(int)i == p->inst_idx ? " (installed)" : "");
	}
	if (count == p->n)
		return kmpkg_buf_printf(b, "any version of %s", p->name);
	for (ns = p->named; ns; ns = ns->next)
		if (memcmp(ns->set, vs, p->words * sizeof(uint64_t)) == 0)
			return kmpkg_buf_printf(b, "%s %s", p->name, ns->label);
	if (kmpkg_buf_puts(b, p->name))
		return nomem();
	/* Runs of adjacent known versions, as a node-semver range. */
	for (i = p->n; i-- > 0;) {
		if (!bit_get(vs, i))
			continue;
		first = i;
		while (i > 0 && bit_get(vs, i - 1))
			i--;
		if (kmpkg_buf_puts(b, sep ? " || " : " "))
			return nomem();
		sep = true;
		if (first == i) {
			if (kmpkg_buf_puts(b, p->v[i]->version))
				return nomem();
		} else if (kmpkg_buf_printf(b, ">=%s <=%s", p->v[first]->version, p->v[i]->version)) {
			return nomem();
		}
	}
	return 0;
}

static int push_step(struct kmpkg_resolver *r, enum kmpkg_resolve_step_kind kind, struct kmpkg_buf *b,
		     const char *name, const char *version, const char *dep_name, const char *range)
{
	int err;

	if ((err = grow(&r->steps, &r->csteps, r->nsteps + 1, sizeof(*r->steps))))
		return err;
	r->steps[r->nsteps++] = (struct kmpkg_resolve_step){
		kind, kmpkg_buf_detach(b), name, version, dep_name, range,
	};
	return 0;
}

static int explain_external(struct solver *s, struct incompat *ic)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	struct rpkg *p = PKG(s, ic->pkg), *q = PKG(s, ic->dep);
	const char *name = ic->pkg == ROOT ? NULL : p->name;
	const char *ver = ic->ver >= 0 ? p->v[ic->ver]->version : NULL;
	const char *mark = ic->ver >= 0 && ic->ver == p->inst_idx ? " (installed)" : "";
	enum kmpkg_resolve_step_kind kind;
	int err = 0;

	switch (ic->kind) {
	case IK_REQUEST:
		kind = KMPKG_RESOLVE_STEP_REQUEST;
		err = ic->label ? kmpkg_buf_printf(&b, "%s %s was requested", q->name, ic->label)
				: kmpkg_buf_printf(&b, "%s was requested", q->name);
		return err ? err : push_step(s->r, kind, &b, q->name, NULL, NULL, ic->label);
	case IK_INSTALLED:
		kind = KMPKG_RESOLVE_STEP_INSTALLED;
		err = ic->label ? kmpkg_buf_printf(&b, "%s %s is installed with constraint %s", q->name,
						   q->inst.version, ic->label)
				: kmpkg_buf_printf(&b, "%s %s is installed, without a constraint", q->name,
						   q->inst.version);
		return err ? err : push_step(s->r, kind, &b, q->name, q->inst.version, NULL, ic->label);
	case IK_DEPENDS:
		kind = KMPKG_RESOLVE_STEP_DEPENDS;
		err = kmpkg_buf_printf(&b, "%s %s%s needs %s %s", name, ver, mark, q->name, ic->label);
		break;
	case IK_MISSING:
	case IK_NO_MATCH:
		kind = ic->kind == IK_MISSING ? KMPKG_RESOLVE_STEP_MISSING : KMPKG_RESOLVE_STEP_NO_MATCH;
		if (name)
			err = kmpkg_buf_printf(&b, "%s %s%s needs %s %s", name, ver, mark, q->name,
					       ic->label ? ic->label : "");
		else if (ic->installed)
			err = kmpkg_buf_printf(&b, "%s %s is installed with constraint %s", q->name,
					       q->inst.version, ic->label);
		else if (ic->label)
			err = kmpkg_buf_printf(&b, "%s %s was requested", q->name, ic->label);
		else
			err = kmpkg_buf_printf(&b, "%s was requested", q->name);
		if (!err && ic->kind == IK_MISSING)
			err = kmpkg_buf_printf(&b, ", but no plugin named %s is available", q->name);
		else if (!err)
			err = kmpkg_buf_printf(&b, ", but no version of %s matches %s", q->name,
					       ic->label ? ic->label : "*");
		break;
	case IK_REJECTED:
		kind = KMPKG_RESOLVE_STEP_REJECTED;
		err = kmpkg_buf_printf(&b, "%s %s is rejected: %s", name, ver, ic->label);
		return err ? err : push_step(s->r, kind, &b, name, ver, NULL, ic->label);
	case IK_INVALID:
		kind = KMPKG_RESOLVE_STEP_INVALID;
		err = kmpkg_buf_printf(&b, "%s %s has a malformed range for %s: \"%s\"", name, ver, q->name,
				       ic->label);
		break;
	default:
		return 0;
	}
	if (err) {
		kmpkg_buf_release(&b);
		return err;
	}
	return push_step(s->r, kind, &b, name, ver, q->name, ic->label);
}

static int explain_derived(struct solver *s, struct incompat *ic, bool last)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	uint32_t i, npos = 0, nneg = 0, k;
	int err = 0;

	if (ic->pivot_both)
		err = kmpkg_buf_printf(&b, "no version of %s satisfies both, so ", PKG(s, ic->pivot)->name);
	else
		err = kmpkg_buf_puts(&b, "so ");
	for (i = 0; i < ic->n; i++) {
		if (ic->t[i].pkg == ROOT)
			continue;
		if (term_positive(PKG(s, ic->t[i].pkg), ic->t[i].set))
			npos++;
		else
			nneg++;
	}
	if (!err && (last || incompat_failure(s, ic) || npos + nneg == 0)) {
		err = kmpkg_buf_puts(&b, "the request cannot be satisfied");
		goto done;
	}
	/* positives: "a 1.0.0 and c 1.4.0"; negatives: "b ^2.0.0 or d 1.0.0" */
	for (k = 0; k < 2 && !err; k++) {
		bool want_pos = k == 0;
		uint32_t seen = 0, total = want_pos ? npos : nneg;

		if (!total)
			continue;
		if (!want_pos && npos)
			err = kmpkg_buf_puts(&b, npos == 1 ? " needs " : " need ");
		for (i = 0; i < ic->n && !err; i++) {
			const struct term *t = &ic->t[i];

			if (t->pkg == ROOT || term_positive(PKG(s, t->pkg), t->set) != want_pos)
				continue;
			if (seen)
				err = kmpkg_buf_puts(&b, seen + 1 == total ? (want_pos ? " and " : " or ")
									  : ", ");
			if (!err)
				err = describe_versions(&b, s, t->pkg, t->set, !want_pos);
			seen++;
		}
		if (!err && want_pos && !nneg)
			err = kmpkg_buf_puts(&b, npos == 1 ? " cannot be installed"
				   : npos == 2 ? " cannot both be installed" : " cannot all be installed");
		if (!err && !want_pos && !npos)
			err = kmpkg_buf_puts(&b, " must be installed");
	}
done:
	if (err) {
		kmpkg_buf_release(&b);
		return err;
	}
	return push_step(s->r, KMPKG_RESOLVE_STEP_DERIVED, &b, NULL, NULL, NULL, NULL);
}

static int explain(struct solver *s, struct incompat *ic, bool last)
{
	int err;

	if (ic->seen)
		return 0;
	ic->seen = true;
	if (ic->kind != IK_DERIVED)
		return explain_external(s, ic);
	if ((err = explain(s, ic->c1, false)) || (err = explain(s, ic->c2, false)))
		return err;
	return explain_derived(s, ic, last);
}

/* Which E_RESOLVE_* the proof shows. */
static void classify(struct solver *s, struct incompat *ic, struct strmap *targets, bool *missing,
		     bool *no_match, bool *two_ranges)
{
	uint32_t prev;

	if (!ic->seen)
		return;
	ic->seen = false;
	if (ic->kind == IK_DERIVED) {
		classify(s, ic->c1, targets, missing, no_match, two_ranges);
		classify(s, ic->c2, targets, missing, no_match, two_ranges);
		return;
	}
	if (ic->kind == IK_MISSING)
		*missing = true;
	if (ic->kind == IK_NO_MATCH)
		*no_match = true;
	if ((ic->kind == IK_DEPENDS || ic->kind == IK_REQUEST || ic->kind == IK_INSTALLED) && ic->label) {
		/* A plugin constrained by two different ranges is a conflict. */
		const char *qn = PKG(s, ic->dep)->name;

		if (strmap_get(targets, qn, &prev)) {
			if (s->r->rr[prev].text != ic->label)
				*two_ranges = true;
		} else {
			uint32_t li;

			if (strmap_get(&s->r->ranges, ic->label, &li))
				strmap_put(targets, qn, li);
		}
	}
}

static int fail(struct solver *s)
{
	struct kmpkg_buf msg = KMPKG_BUF_INIT;
	struct strmap targets = { 0 };
	bool missing = false, no_match = false, two = false;
	const char *code, *next;
	size_t i;
	int err;

	if ((err = explain(s, s->failure, true)))
		return err;
	classify(s, s->failure, &targets, &missing, &no_match, &two);
	strmap_release(&targets);
	for (i = 0; i < s->r->nsteps; i++)
		if ((i && kmpkg_buf_puts(&msg, "; ")) || kmpkg_buf_puts(&msg, s->r->steps[i].text)) {
			kmpkg_buf_release(&msg);
			return nomem();
		}
	if (missing) {
		code = "E_RESOLVE_NOT_FOUND";
		next = "check the plugin name, or run 'kmpkg source update' and retry";
	} else if (!two) {
		code = "E_RESOLVE_NO_MATCH";
		next = "run 'kmpkg info NAME' to see the available versions and choose a range they satisfy";
	} else {
		code = "E_RESOLVE_CONFLICT";
		next = "relax the requested ranges, or update or remove the plugins named above";
	}
	(void)no_match;
	err = kmpkg_error_set(KMPKG_EDEPS, code, NULL, next, "%s", msg.ptr ? msg.ptr : "no solution");
	kmpkg_buf_release(&msg);
	return err;
}

/* ---- entry point ------------------------------------------------------ */

static int cmp_items(const void *a, const void *b)
{
	return strcmp(((const struct kmpkg_resolution_item *)a)->name,
		      ((const struct kmpkg_resolution_item *)b)->name);
}

void kmpkg_resolution_free(struct kmpkg_resolution *res)
{
	size_t i;

	if (!res)
		return;
	for (i = 0; i < res->n; i++) {
		free(res->items[i].name);
		free(res->items[i].version);
		free(res->items[i].installed_version);
	}
	free(res->items);
	free(res);
}

static int build_result(struct solver *s, struct kmpkg_resolution **out)
{
	struct kmpkg_resolution *res = NULL;
	size_t i, n = 0;
	int err = 0;

	res = calloc(1, sizeof(*res));
	if (!res || !(res->items = calloc(s->nt ? s->nt : 1, sizeof(*res->items)))) {
		err = nomem();
		goto cleanup;
	}
	for (i = 0; i < s->nt; i++) {
		uint32_t pi = s->touched[i];
		struct rpkg *p = PKG(s, pi);
		struct kmpkg_resolution_item *it = &res->items[n];
		struct rver *rv;

		if (pi == ROOT || p->decided < 0)
			continue;
		rv = p->v[p->decided];
		res->n = ++n;
		it->name = strdup(p->name);
		it->version = strdup(rv->version);
		it->userdata = rv->userdata;
		it->requested = p->requested;
		if (!it->name || !it->version) {
			err = nomem();
			goto cleanup;
		}
		if (p->inst_idx < 0) {
			it->action = KMPKG_RESOLVE_INSTALL;
			continue;
		}
		if (!(it->installed_version = strdup(p->inst.version))) {
			err = nomem();
			goto cleanup;
		}
		it->action = p->decided == p->inst_idx ? KMPKG_RESOLVE_KEEP
			     : p->decided < p->inst_idx ? KMPKG_RESOLVE_UPGRADE : KMPKG_RESOLVE_DOWNGRADE;
	}
	qsort(res->items, res->n, sizeof(*res->items), cmp_items);
	*out = res;
	res = NULL;
cleanup:
	kmpkg_resolution_free(res);
	return err;
}

/* The root's requirements: one per request, one per installed plugin that
 * no request with a range replaces. */
static int root_requirements(struct solver *s, const struct kmpkg_resolve_request *reqs, size_t n)
{
	struct kmpkg_resolver *r = s->r;
	const char *any_label = NULL;
	const struct kmpkg_semver_range *any = NULL;
	size_t i;
	uint32_t qi;
	int err;

	if ((err = range_get(r, "*", &any_label, &any)))
		return err;
	for (i = 0; i < n; i++) {
		if (!reqs[i].name || !*reqs[i].name)
			return kmpkg_error_set(KMPKG_EUSAGE, "E_RESOLVE_NAME", NULL, NULL,
					       "empty plugin name in request");
		if ((err = pkg_lookup(r, reqs[i].name, true, &qi)))
			return err;
		r->pkgs[qi]->requested = true;
		r->pkgs[qi]->prefer_newest = true;
	}
	for (i = 0; i < n; i++) {
		const char *label = NULL;
		const struct kmpkg_semver_range *range = NULL;
		struct incompat *ic = NULL;
		uint64_t *rset;

		pkg_lookup(r, reqs[i].name, false, &qi);
		if (!reqs[i].range && r->pkgs[qi]->has_inst)
			continue; /* the installed constraint stays, below */
		if (reqs[i].range && *reqs[i].range) {
			if ((err = range_get(r, reqs[i].range, &label, &range)))
				return err;
			if (!range)
				return kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", NULL, NULL,
						       "%s: invalid range \"%s\"", reqs[i].name,
						       reqs[i].range);
		} else {
			range = any;
		}
		if (!(rset = range_set(s, r->pkgs[qi], label ? label : any_label, range)))
			return nomem();
		if ((err = dep_incompat(s, &ic, ROOT, 0, qi, rset, IK_REQUEST, label)))
			return err;
		if ((err = grow(&s->root_inc, &s->croot, s->nroot + 1, sizeof(*s->root_inc))))
			return err;
		s->root_inc[s->nroot++] = ic;
		r->pkgs[qi]->replaced = true;
	}
	for (qi = 1; qi < r->npkgs; qi++) {
		struct rpkg *q = r->pkgs[qi];
		struct incompat *ic = NULL;
		uint64_t *cset;

		if (!q->has_inst || q->replaced)
			continue;
		if (q->constraint) {
			if (!(cset = range_set(s, q, q->constraint, q->constraint_r)))
				return nomem();
		} else {
			/* Any release, and the installed version whatever it is. */
			uint64_t *a = range_set(s, q, any_label, any);

			if (!a || !(cset = set_new(s, q)))
				return nomem();
			memcpy(cset, a, q->words * sizeof(uint64_t));
			bit_set(cset, (size_t)q->inst_idx);
		}
		if ((err = dep_incompat(s, &ic, ROOT, 0, qi, cset, IK_INSTALLED, q->constraint)))
			return err;
		if ((err = grow(&s->root_inc, &s->croot, s->nroot + 1, sizeof(*s->root_inc))))
			return err;
		s->root_inc[s->nroot++] = ic;
	}
	return 0;
}

int kmpkg_resolve(struct kmpkg_resolution **out, struct kmpkg_resolver *r,
		  const struct kmpkg_resolve_request *reqs, size_t n, unsigned flags)
{
	struct solver s = { 0 };
	struct incompat *root_ic = NULL;
	struct term t;
	size_t i, j, maxw = 1;
	int64_t next = ROOT;
	int err = 0;

	*out = NULL;
	s.r = r;
	s.flags = flags;
	arena_release(&r->arena);
	steps_release(r);
	if ((err = rank_names(r)))
		goto cleanup;
	for (i = 0; i < r->npkgs; i++) {
		struct rpkg *p = r->pkgs[i];

		if (i != ROOT && (err = pkg_prepare(p)))
			goto cleanup;
		if (p->words > maxw)
			maxw = p->words;
		p->acc = NULL;
		p->decided = -1;
		p->nasg = 0;
		p->ninc = 0;
		p->named = NULL;
		p->in_changed = false;
		p->requested = false;
		p->recompute = false;
		p->replaced = false;
		p->prefer_newest = (flags & KMPKG_RESOLVE_UPGRADE_ALL) != 0;
		for (j = 0; j < p->n; j++) {
			p->v[j]->filter = FILTER_UNKNOWN;
			p->v[j]->deps_added = false;
			p->v[j]->why = NULL;
			p->v[j]->rejected = NULL;
		}
	}
	if ((err = root_requirements(&s, reqs, n)))
		goto cleanup;
	/* Plugins created since (unknown names) have no versions: one word. */
	s.scratch_words = maxw;
	if (!(s.scratch = calloc(maxw, sizeof(uint64_t)))) {
		err = nomem();
		goto cleanup;
	}
	/* {not root}: the root must be selected. */
	t.pkg = ROOT;
	if (!(t.set = set_new(&s, PKG(&s, ROOT)))) {
		err = nomem();
		goto cleanup;
	}
	bit_set(t.set, 1);
	if ((err = incompat_new(&s, &root_ic, &t, 1, IK_ROOT)) || (err = incompat_add(&s, root_ic)))
		goto cleanup;
	while (next >= 0) {
		if ((err = propagate(&s, (uint32_t)next)))
			break;
		if ((err = choose(&s, &next)))
			break;
	}
	if (err == KMPKG_EDEPS && s.failure)
		err = fail(&s);
	else if (!err)
		err = build_result(&s, out);
cleanup:
	free(s.a);
	free(s.touched);
	free(s.changed);
	free(s.redo);
	free(s.heap);
	free(s.root_inc);
	free(s.scratch);
	return err;
}
