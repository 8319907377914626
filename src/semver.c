/*
 * SemVer 2.0.0 versions and node-semver 7.x ranges (include/kmpkg/semver.h),
 * default options only: not loose, includePrerelease false.
 *
 * NOTES ON MATCHING NODE-SEMVER
 *
 * node-semver does not parse a range with a grammar: it rewrites the string
 * through a fixed pipeline of regular expressions (classes/range.js, the
 * "safe" variants of internal/re.js, where \s* is \s{0,1}, \d* is \d{0,256}
 * and [a-zA-Z0-9-]* is [a-zA-Z0-9-]{0,250}), then parses each resulting word
 * as a comparator. Odd inputs get odd answers from that pipeline ("1.2.3>*"
 * is the range "1.2.3", "> = 1.2.3" is invalid, "=1.2.3 - 2" is invalid) and
 * callers compare our answers with npm's, so this file runs the same pipeline,
 * step by step, in the same order:
 *
 *   range.trim(), every whitespace run -> one ' '     range_parse
 *   split on "||", trim each part                      range_parse
 *   HYPHENRANGE  (anchored on the part)                hyphen_replace
 *   COMPARATORTRIM, TILDETRIM, CARETTRIM (global)      comparator_trim, lone_trim
 *   split(' '), per word: CARET, TILDE, XRANGE, STAR   replace_caret, ...
 *   join, split(/\s+/), GTE0, Comparator               parse_comparator
 *   null-set / duplicate / '' pruning per set          part_parse
 *   null-set / "any" pruning over sets                 range_parse
 *
 * Each regular expression has a hand-written matcher below that returns the
 * match a backtracking engine would return. They rely on two facts checked
 * against the expressions: (1) after the first step the only whitespace left
 * is single ASCII spaces, and (2) for every XRANGEPLAIN/LOOSEPLAIN, the greedy
 * choice at each step is the only one that can lead to a match in an anchored
 * context, and is the engine's first choice in an unanchored one, so a single
 * greedy pass gives the same captures and the same end (the end decides where
 * a global replace resumes). Every matcher is linear in what it consumes, the
 * global scans never revisit a position (see comparator_trim), and every
 * rewrite grows its input by a bounded amount, so parsing is O(n) in time and
 * memory. Versions are limited to 256 characters (node's MAX_LENGTH) and
 * ranges to RANGE_MAX_LENGTH bytes (node has no limit; a package manager
 * reading hostile manifests wants one).
 *
 * Numbers: node computes "+M + 1" in doubles. Whenever the result exceeds
 * 2^53-1 the comparator holding it is rejected by the SemVer constructor, so
 * put_inc emits 2^53 in that case, which we reject the same way.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmpkg/buf.h"
#include "kmpkg/error.h"
#include "kmpkg/semver.h"

#define MAX_LENGTH 256                      /* node-semver MAX_LENGTH */
#define MAX_SAFE_INTEGER 9007199254740991ULL /* 2^53 - 1 */
#define SAFE_DIGITS 256                     /* \d{0,256} in the safe regexes */
#define SAFE_WORD 250                       /* [a-zA-Z0-9-]{0,250}: MAX_LENGTH - 6 */
#define RANGE_MAX_LENGTH 65536
#define NF SIZE_MAX                         /* "no match" for the matchers */

#define VERSION_NEXT "write MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.3 or 2.0.0-rc.1"
#define RANGE_NEXT "write a node-semver range such as ^1.2.3, ~1.2, >=1.2.0 <2.0.0 or 1.x || 2.x; see kmpkg-semver(1)"

enum { OP_ANY, OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

struct comparator {
	int op;
	struct kmpkg_semver v; /* unused for OP_ANY */
	char *value;           /* node's comparator.value: operator + version, "" for any */
};

struct cset {
	struct comparator *c;
	size_t n, cap;
};

struct kmpkg_semver_range {
	struct cset *sets;
	size_t n, cap;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha_dash(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static bool is_word(char c)
{
	return is_digit(c) || is_alpha_dash(c);
}

static int nomem(void)
{
	return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
}

/* An excerpt of user input safe for a one-line message and for JSON: printable
 * ASCII only, at most 60 characters. */
static const char *excerpt(char *dst, size_t cap, const char *s)
{
	size_t i, o = 0, max = cap < 64 ? cap - 4 : 60;

	for (i = 0; s[i] && o < max; i++)
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] && o + 3 < cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

/*
 * JavaScript whitespace (String.prototype.trim and \s): the ASCII ones and,
 * UTF-8 encoded, U+00A0 U+1680 U+2000..U+200A U+2028 U+2029 U+202F U+205F
 * U+3000 U+FEFF. Returns the byte length of the one at s[i], or 0.
 */
static size_t js_space(const char *str, size_t n, size_t i)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[i];

	if (c == ' ' || (c >= 0x09 && c <= 0x0d))
		return 1;
	if (c < 0xc2)
		return 0;
	if (c == 0xc2)
		return i + 1 < n && s[i + 1] == 0xa0 ? 2 : 0;
	if (i + 2 >= n)
		return 0;
	if (c == 0xe1 && s[i + 1] == 0x9a && s[i + 2] == 0x80)
		return 3;
	if (c == 0xe2 && s[i + 1] == 0x80 &&
	    ((s[i + 2] >= 0x80 && s[i + 2] <= 0x8a) || s[i + 2] == 0xa8 || s[i + 2] == 0xa9 || s[i + 2] == 0xaf))
		return 3;
	if (c == 0xe2 && s[i + 1] == 0x81 && s[i + 2] == 0x9f)
		return 3;
	if (c == 0xe3 && s[i + 1] == 0x80 && s[i + 2] == 0x80)
		return 3;
	if (c == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf)
		return 3;
	return 0;
}

/* [*b, *e) = s[0, n) without JavaScript whitespace at either end. */
static void js_trim(const char *s, size_t n, size_t *b, size_t *e)
{
	size_t i = 0, k, last;

	while (i < n && (k = js_space(s, n, i)) != 0)
		i += k;
	*b = i;
	last = i;
	while (i < n) {
		k = js_space(s, n, i);
		if (k) {
			i += k;
		} else {
			i++;
			last = i;
		}
	}
	*e = last;
}

/* ASCII-space trim, for strings already normalised to single spaces. */
static void sp_trim(const char *s, size_t *b, size_t *e)
{
	while (*b < *e && s[*b] == ' ')
		(*b)++;
	while (*e > *b && s[*e - 1] == ' ')
		(*e)--;
}

/* ---- versions ---------------------------------------------------------- */

/* NUMERICIDENTIFIER 0|[1-9]\d* and the MAX_SAFE_INTEGER check of SemVer. */
static int parse_num(const char *s, size_t n, size_t *i, uint64_t *out)
{
	size_t j = *i;
	uint64_t v = 0;

	if (j >= n || !is_digit(s[j]))
		return -1;
	if (s[j] == '0') {
		*i = j + 1;
		*out = 0;
		return 0;
	}
	for (; j < n && is_digit(s[j]); j++)
		if (v <= MAX_SAFE_INTEGER)
			v = v * 10 + (uint64_t)(s[j] - '0');
	if (v > MAX_SAFE_INTEGER)
		return -1;
	*i = j;
	*out = v;
	return 0;
}

void kmpkg_semver_release(struct kmpkg_semver *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->npre; i++)
		free(v->pre[i].str);
	free(v->pre);
	free(v->build);
	memset(v, 0, sizeof(*v));
}

/*
 * FULL (^v?MAINVERSION PRERELEASE? BUILD?$) over exactly s[0, n), with the
 * numeric limits. Returns 0, 1 if s is not a version, or an error (no memory).
 * The safe-regex repetition limits cannot bind within MAX_LENGTH characters.
 */
static int parse_full(struct kmpkg_semver *out, const char *s, size_t n)
{
	struct kmpkg_semver v = { 0 };
	size_t i = 0, pre_b = 0, pre_e = 0, npre = 0, b, k;
	int err = 1;

	if (i < n && s[i] == 'v')
		i++;
	if (parse_num(s, n, &i, &v.major) || i >= n || s[i++] != '.' ||
	    parse_num(s, n, &i, &v.minor) || i >= n || s[i++] != '.' ||
	    parse_num(s, n, &i, &v.patch))
		goto cleanup;
	if (i < n && s[i] == '-') {
		pre_b = ++i;
		for (;;) {
			bool digits = true;

			for (b = i; i < n && is_word(s[i]); i++)
				digits = digits && is_digit(s[i]);
			if (i == b || (digits && i - b > 1 && s[b] == '0'))
				goto cleanup;
			npre++;
			if (i < n && s[i] == '.') {
				i++;
				continue;
			}
			break;
		}
		pre_e = i;
	}
	if (i < n && s[i] == '+') {
		b = ++i;
		for (;;) {
			for (k = i; i < n && is_word(s[i]); i++)
				;
			if (i == k)
				goto cleanup;
			if (i < n && s[i] == '.') {
				i++;
				continue;
			}
			break;
		}
		if (!(v.build = strndup(s + b, i - b))) {
			err = nomem();
			goto cleanup;
		}
	}
	if (i != n)
		goto cleanup;
	if (npre) {
		if (!(v.pre = calloc(npre, sizeof(*v.pre)))) {
			err = nomem();
			goto cleanup;
		}
		for (i = pre_b; v.npre < npre; i++) {
			struct kmpkg_semver_ident *id = &v.pre[v.npre];

			for (b = i; i < pre_e && s[i] != '.'; i++)
				;
			if (!(id->str = strndup(s + b, i - b))) {
				err = nomem();
				goto cleanup;
			}
			v.npre++;
			id->numeric = true;
			for (k = b; k < i; k++) {
				if (!is_digit(s[k])) {
					id->numeric = false;
					break;
				}
				id->num = id->num > UINT64_MAX / 10 - 10 ? UINT64_MAX
									  : id->num * 10 + (uint64_t)(s[k] - '0');
			}
			if (!id->numeric)
				id->num = 0;
		}
	}
	*out = v;
	memset(&v, 0, sizeof(v));
	err = 0;
cleanup:
	kmpkg_semver_release(&v);
	return err;
}

/* String.length in UTF-16 code units exceeds MAX_LENGTH? Stops counting early. */
static bool too_long(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t units = 0;

	for (; *p; p++) {
		if (*p < 0x80 || *p > 0xbf)
			units++;
		if (*p >= 0xf0)
			units++;
		if (units > MAX_LENGTH)
			return true;
	}
	return false;
}

int kmpkg_semver_parse(struct kmpkg_semver *out, const char *s)
{
	char ex[64];
	size_t b, e;
	int err;

	memset(out, 0, sizeof(*out));
	if (!s)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SEMVER_INVALID", NULL, VERSION_NEXT, "no version given");
	if (too_long(s))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SEMVER_INVALID", NULL, VERSION_NEXT,
				       "invalid version '%s': longer than %d characters",
				       excerpt(ex, sizeof(ex), s), MAX_LENGTH);
	js_trim(s, strlen(s), &b, &e);
	err = parse_full(out, s + b, e - b);
	if (err > 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SEMVER_INVALID", NULL, VERSION_NEXT,
				       "invalid version '%s': not SemVer 2.0.0", excerpt(ex, sizeof(ex), s));
	return err;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

/* internal/identifiers.js compareIdentifiers. Digit strings compare as
 * JavaScript numbers: exactly below 2^53, as (rounded) doubles above, where
 * different strings may compare equal just as in node. */
static int cmp_ident(const struct kmpkg_semver_ident *a, const struct kmpkg_semver_ident *b)
{
	int c;

	if (a->numeric && b->numeric) {
		if (a->num <= MAX_SAFE_INTEGER && b->num <= MAX_SAFE_INTEGER)
			return cmp_u64(a->num, b->num);
		{
			double x = strtod(a->str, NULL), y = strtod(b->str, NULL);

			return x < y ? -1 : x > y ? 1 : 0;
		}
	}
	if (a->numeric)
		return -1;
	if (b->numeric)
		return 1;
	c = strcmp(a->str, b->str);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}

int kmpkg_semver_cmp(const struct kmpkg_semver *a, const struct kmpkg_semver *b)
{
	size_t i;
	int c;

	if ((c = cmp_u64(a->major, b->major)) || (c = cmp_u64(a->minor, b->minor)) ||
	    (c = cmp_u64(a->patch, b->patch)))
		return c;
	if (a->npre && !b->npre)
		return -1;
	if (!a->npre && b->npre)
		return 1;
	/* SemVer.comparePre: the first differing identifier decides, even when
	 * compareIdentifiers calls it a tie (huge numbers). */
	for (i = 0;; i++) {
		if (i == a->npre && i == b->npre)
			return 0;
		if (i == b->npre)
			return 1;
		if (i == a->npre)
			return -1;
		if (strcmp(a->pre[i].str, b->pre[i].str) != 0)
			return cmp_ident(&a->pre[i], &b->pre[i]);
	}
}

static int format_into(struct kmpkg_buf *b, const struct kmpkg_semver *v, bool build)
{
	size_t i;
	int err;

	err = kmpkg_buf_printf(b, "%llu.%llu.%llu", (unsigned long long)v->major,
			       (unsigned long long)v->minor, (unsigned long long)v->patch);
	for (i = 0; !err && i < v->npre; i++)
		err = kmpkg_buf_printf(b, "%c%s", i ? '.' : '-', v->pre[i].str);
	if (!err && build && v->build)
		err = kmpkg_buf_printf(b, "+%s", v->build);
	return err;
}

static char *format_alloc(const struct kmpkg_semver *v, bool build)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;

	if (format_into(&b, v, build)) {
		kmpkg_buf_release(&b);
		return NULL;
	}
	return kmpkg_buf_detach(&b);
}

char *kmpkg_semver_format(const struct kmpkg_semver *v)
{
	return format_alloc(v, true);
}

char *kmpkg_semver_format_short(const struct kmpkg_semver *v)
{
	return format_alloc(v, false);
}

/* ---- regular-expression matchers (greedy, safe-regex limits) ----------- */

/* XRANGEIDENTIFIER: 0|[1-9]\d{0,256}|x|X|\* */
static size_t match_xrid(const char *s, size_t n, size_t i)
{
	size_t j;

	if (i >= n)
		return NF;
	if (s[i] == 'x' || s[i] == 'X' || s[i] == '*' || s[i] == '0')
		return i + 1;
	if (s[i] < '1' || s[i] > '9')
		return NF;
	for (j = i + 1; j < n && j - i <= SAFE_DIGITS && is_digit(s[j]); j++)
		;
	return j;
}

static bool xrid_start(char c)
{
	return is_digit(c) || c == 'x' || c == 'X' || c == '*';
}

/* PRERELEASEIDENTIFIER: NONNUMERIC (\d{0,256}[a-zA-Z-][a-zA-Z0-9-]{0,250})
 * first, then NUMERIC (0|[1-9]\d{0,256}, or \d{1,256} when loose). */
static size_t match_prid(const char *s, size_t n, size_t i, bool loose)
{
	size_t d, j;

	for (d = i; d < n && d - i <= SAFE_DIGITS && is_digit(s[d]); d++)
		;
	if (d - i <= SAFE_DIGITS && d < n && is_alpha_dash(s[d])) {
		for (j = d + 1; j < n && j - (d + 1) < SAFE_WORD && is_word(s[j]); j++)
			;
		return j;
	}
	if (d == i)
		return NF;
	if (loose)
		return d - i > SAFE_DIGITS ? i + SAFE_DIGITS : d;
	return s[i] == '0' ? i + 1 : d;
}

/* PRERELEASE (?:-(ID(?:\.ID)*)) or PRERELEASELOOSE (?:-?(ID(?:\.ID)*)).
 * *ids gets where the identifiers start. */
static size_t match_pre(const char *s, size_t n, size_t i, bool loose, size_t *ids)
{
	size_t e = NF, f;

	if (i < n && s[i] == '-' && (e = match_prid(s, n, i + 1, loose)) != NF)
		*ids = i + 1;
	else if (loose && (e = match_prid(s, n, i, loose)) != NF)
		*ids = i;
	if (e == NF)
		return NF;
	while (e < n && s[e] == '.' && (f = match_prid(s, n, e + 1, loose)) != NF)
		e = f;
	return e;
}

/* BUILD (?:\+([a-zA-Z0-9-]{1,250}(?:\.[a-zA-Z0-9-]{1,250})*)) */
static size_t match_bid(const char *s, size_t n, size_t i)
{
	size_t j;

	for (j = i; j < n && j - i < SAFE_WORD && is_word(s[j]); j++)
		;
	return j > i ? j : NF;
}

static size_t match_build(const char *s, size_t n, size_t i)
{
	size_t e, f;

	if (i >= n || s[i] != '+' || (e = match_bid(s, n, i + 1)) == NF)
		return NF;
	while (e < n && s[e] == '.' && (f = match_bid(s, n, e + 1)) != NF)
		e = f;
	return e;
}

struct xrp {
	size_t b, e;       /* the whole XRANGEPLAIN, [v=\s]* prefix included */
	size_t id[3][2];   /* M, m, p as [begin, end); empty when not matched */
	size_t pre[2];     /* pre-release identifiers without '-'; empty when none */
};

/* XRANGEPLAIN after its [v=\s]* prefix, greedily from t. */
static size_t match_xrp_body(const char *s, size_t n, size_t t, struct xrp *x)
{
	size_t e, f, ids = 0;
	int k;

	memset(x->id, 0, sizeof(x->id));
	x->pre[0] = x->pre[1] = 0;
	if ((e = match_xrid(s, n, t)) == NF)
		return NF;
	x->id[0][0] = t;
	x->id[0][1] = e;
	for (k = 1; k < 3; k++) {
		if (e >= n || s[e] != '.' || (f = match_xrid(s, n, e + 1)) == NF)
			return e;
		x->id[k][0] = e + 1;
		x->id[k][1] = e = f;
	}
	if ((f = match_pre(s, n, e, false, &ids)) != NF) {
		x->pre[0] = ids;
		x->pre[1] = e = f;
	}
	if ((f = match_build(s, n, e)) != NF)
		e = f;
	return e;
}

/* XRANGEPLAIN at i, prefix included. */
static size_t match_xrp(const char *s, size_t n, size_t i, bool spaces, struct xrp *x)
{
	size_t t = i;

	while (t < n && (s[t] == 'v' || s[t] == '=' || (spaces && s[t] == ' ')))
		t++;
	x->b = i;
	x->e = match_xrp_body(s, n, t, x);
	return x->e;
}

/* \d{1,256} followed by what must come next ('.' unless last). */
static size_t match_loose_num(const char *s, size_t n, size_t i, bool last)
{
	size_t d;

	for (d = i; d < n && d - i <= SAFE_DIGITS && is_digit(s[d]); d++)
		;
	if (d == i)
		return NF;
	if (d - i > SAFE_DIGITS)
		return last ? i + SAFE_DIGITS : NF;
	if (!last && (d >= n || s[d] != '.'))
		return NF;
	return d;
}

/* LOOSEPLAIN after its prefix: MAINVERSIONLOOSE PRERELEASELOOSE? BUILD? */
static size_t match_loose_body(const char *s, size_t n, size_t t)
{
	size_t e, f, ids;

	if ((e = match_loose_num(s, n, t, false)) == NF || (e = match_loose_num(s, n, e + 1, false)) == NF ||
	    (e = match_loose_num(s, n, e + 1, true)) == NF)
		return NF;
	if ((f = match_pre(s, n, e, true, &ids)) != NF)
		e = f;
	if ((f = match_build(s, n, e)) != NF)
		e = f;
	return e;
}

static bool span_is_x(const char *s, const size_t sp[2])
{
	return sp[0] == sp[1] ||
	       (sp[1] - sp[0] == 1 && (s[sp[0]] == 'x' || s[sp[0]] == 'X' || s[sp[0]] == '*'));
}

static bool span_is_zero(const char *s, const size_t sp[2])
{
	return sp[1] - sp[0] == 1 && s[sp[0]] == '0';
}

static int put_span(struct kmpkg_buf *b, const char *s, const size_t sp[2])
{
	return kmpkg_buf_put(b, s + sp[0], sp[1] - sp[0]);
}

/* JavaScript `${+digits + 1}` for a digit string; 2^53 whenever the sum is
 * beyond MAX_SAFE_INTEGER (the comparator is then rejected, as in node). */
static int put_inc(struct kmpkg_buf *b, const char *s, const size_t sp[2])
{
	uint64_t v = 0;
	size_t i;

	if (sp[1] - sp[0] > 16)
		return kmpkg_buf_puts(b, "9007199254740992");
	for (i = sp[0]; i < sp[1]; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (v >= MAX_SAFE_INTEGER)
		return kmpkg_buf_puts(b, "9007199254740992");
	return kmpkg_buf_printf(b, "%llu", (unsigned long long)(v + 1));
}

/* A small template language for the desugarings below, so each reads like
 * the JavaScript it mirrors: 'M' 'm' 'p' 'r' put a capture, 'A' 'B' 'C' put a
 * capture plus one, anything else is literal. */
static int put_tpl(struct kmpkg_buf *b, const char *s, const struct xrp *x, const char *tpl)
{
	int err = 0;

	for (; *tpl && !err; tpl++) {
		switch (*tpl) {
		case 'M': err = put_span(b, s, x->id[0]); break;
		case 'm': err = put_span(b, s, x->id[1]); break;
		case 'p': err = put_span(b, s, x->id[2]); break;
		case 'r': err = put_span(b, s, x->pre); break;
		case 'A': err = put_inc(b, s, x->id[0]); break;
		case 'B': err = put_inc(b, s, x->id[1]); break;
		case 'C': err = put_inc(b, s, x->id[2]); break;
		default: err = kmpkg_buf_put(b, tpl, 1); break;
		}
	}
	return err;
}

/* ---- the rewriting pipeline ------------------------------------------- */

/* HYPHENRANGE ^\s?(XRP)\s-\s(XRP)\s?$ on a trimmed part, then hyphenReplace. */
static int hyphen_replace(const char *s, size_t n, struct kmpkg_buf *out)
{
	struct xrp f, t;
	size_t e;
	int err = 0;

	e = match_xrp(s, n, 0, true, &f);
	if (e == NF || e + 3 > n || memcmp(s + e, " - ", 3) != 0 || match_xrp(s, n, e + 3, true, &t) != n)
		return kmpkg_buf_put(out, s, n);

	if (span_is_x(s, f.id[0]))
		;
	else if (span_is_x(s, f.id[1]))
		err = put_tpl(out, s, &f, ">=M.0.0");
	else if (span_is_x(s, f.id[2]))
		err = put_tpl(out, s, &f, ">=M.m.0");
	else if (!(err = kmpkg_buf_puts(out, ">=")))
		err = kmpkg_buf_put(out, s + f.b, f.e - f.b);
	if (err)
		return err;

	if (!span_is_x(s, t.id[0]) && out->len && (err = kmpkg_buf_puts(out, " ")))
		return err;
	if (span_is_x(s, t.id[0]))
		;
	else if (span_is_x(s, t.id[1]))
		err = put_tpl(out, s, &t, "<A.0.0-0");
	else if (span_is_x(s, t.id[2]))
		err = put_tpl(out, s, &t, "<M.B.0-0");
	else if (t.pre[0] != t.pre[1])
		err = put_tpl(out, s, &t, "<=M.m.p-r");
	else if (!(err = kmpkg_buf_puts(out, "<=")))
		err = kmpkg_buf_put(out, s + t.b, t.e - t.b);
	return err;
}

/*
 * COMPARATORTRIM, global: (\s?)((?:<|>)?=?)\s?(LOOSEPLAIN|XRANGEPLAIN) ->
 * $1$2$3, i.e. drops the space between an operator and its version. At a
 * position the greedy path is the engine's first and, when it fails, every
 * other path fails too: they all reach the same first character that is not
 * [v= ] and need it to start an XRANGEIDENTIFIER. A failed attempt therefore
 * also rules out every start up to that character, so the scan goes on from
 * there and never looks at a character twice.
 */
static int comparator_trim(const char *s, size_t n, struct kmpkg_buf *out)
{
	size_t p = 0, copied = 0;
	int err;

	while (p < n) {
		size_t q = p, ope, r, t, e;
		bool mid = false;
		struct xrp x;

		if (s[q] == ' ')
			q++;
		if (q < n && (s[q] == '<' || s[q] == '>'))
			q++;
		if (q < n && s[q] == '=')
			q++;
		ope = q;
		if (q < n && s[q] == ' ') {
			mid = true;
			q++;
		}
		r = q;
		for (t = r; t < n && (s[t] == 'v' || s[t] == '=' || s[t] == ' '); t++)
			;
		if (t >= n || !xrid_start(s[t])) {
			p = t > p ? t : p + 1;
			continue;
		}
		e = match_loose_body(s, n, t);
		if (e == NF)
			e = match_xrp_body(s, n, t, &x);
		if (mid) {
			if ((err = kmpkg_buf_put(out, s + copied, ope - copied)) ||
			    (err = kmpkg_buf_put(out, s + r, e - r)))
				return err;
			copied = e;
		}
		p = e;
	}
	return kmpkg_buf_put(out, s + copied, n - copied);
}

/* TILDETRIM (\s?)~>?\s -> $1~ and CARETTRIM (\s?)\^\s -> $1^, global. */
static int lone_trim(const char *s, size_t n, char lone, struct kmpkg_buf *out)
{
	size_t p = 0, copied = 0;
	int err;

	while (p < n) {
		size_t q = p + (s[p] == ' ');
		size_t e = NF;

		if (q < n && s[q] == lone) {
			if (lone == '~' && q + 2 < n && s[q + 1] == '>' && s[q + 2] == ' ')
				e = q + 3;
			else if (q + 1 < n && s[q + 1] == ' ')
				e = q + 2;
		}
		if (e == NF) {
			p++;
			continue;
		}
		if ((err = kmpkg_buf_put(out, s + copied, q + 1 - copied)))
			return err;
		copied = p = e;
	}
	return kmpkg_buf_put(out, s + copied, n - copied);
}

/* str.split(/\s+/) for strings whose only whitespace is ' '. */
struct splitter {
	const char *s;
	size_t n, pos;
	bool done;
};

static bool split_next(struct splitter *sp, size_t *b, size_t *e)
{
	if (sp->done)
		return false;
	*b = sp->pos;
	while (sp->pos < sp->n && sp->s[sp->pos] != ' ')
		sp->pos++;
	*e = sp->pos;
	if (sp->pos == sp->n)
		sp->done = true;
	while (sp->pos < sp->n && sp->s[sp->pos] == ' ')
		sp->pos++;
	return true;
}

/* CARET ^\^XRP$ on one word. */
static int replace_caret(const char *s, size_t n, struct kmpkg_buf *out)
{
	struct xrp x;

	if (n == 0 || s[0] != '^' || match_xrp(s, n, 1, false, &x) != n)
		return kmpkg_buf_put(out, s, n);
	if (span_is_x(s, x.id[0]))
		return 0;
	if (span_is_x(s, x.id[1]))
		return put_tpl(out, s, &x, ">=M.0.0 <A.0.0-0");
	if (span_is_x(s, x.id[2]))
		return put_tpl(out, s, &x, span_is_zero(s, x.id[0]) ? ">=M.m.0 <M.B.0-0" : ">=M.m.0 <A.0.0-0");
	if (x.pre[0] != x.pre[1]) {
		if (span_is_zero(s, x.id[0]))
			return put_tpl(out, s, &x,
				       span_is_zero(s, x.id[1]) ? ">=M.m.p-r <M.m.C-0" : ">=M.m.p-r <M.B.0-0");
		return put_tpl(out, s, &x, ">=M.m.p-r <A.0.0-0");
	}
	if (span_is_zero(s, x.id[0]))
		return put_tpl(out, s, &x, span_is_zero(s, x.id[1]) ? ">=M.m.p <M.m.C-0" : ">=M.m.p <M.B.0-0");
	return put_tpl(out, s, &x, ">=M.m.p <A.0.0-0");
}

/* TILDE ^~>?XRP$ on one word. */
static int replace_tilde(const char *s, size_t n, struct kmpkg_buf *out)
{
	struct xrp x;
	size_t i = 1;

	if (n == 0 || s[0] != '~')
		return kmpkg_buf_put(out, s, n);
	if (i < n && s[i] == '>')
		i++;
	if (match_xrp(s, n, i, false, &x) != n)
		return kmpkg_buf_put(out, s, n);
	if (span_is_x(s, x.id[0]))
		return 0;
	if (span_is_x(s, x.id[1]))
		return put_tpl(out, s, &x, ">=M.0.0 <A.0.0-0");
	if (span_is_x(s, x.id[2]))
		return put_tpl(out, s, &x, ">=M.m.0 <M.B.0-0");
	if (x.pre[0] != x.pre[1])
		return put_tpl(out, s, &x, ">=M.m.p-r <M.B.0-0");
	return put_tpl(out, s, &x, ">=M.m.p <M.B.0-0");
}

/* XRANGE ^GTLT\s?XRP$ on one word, then replaceXRange. */
static int replace_xrange(const char *s, size_t n, struct kmpkg_buf *out)
{
	struct xrp x;
	char gtlt[3] = "";
	size_t i = 0;
	bool xM, xm, xp;
	int err;

	if (i < n && (s[i] == '<' || s[i] == '>')) {
		gtlt[i] = s[i];
		i++;
	}
	if (i < n && s[i] == '=') {
		gtlt[i] = s[i];
		i++;
	}
	gtlt[i] = '\0';
	if (match_xrp(s, n, i, false, &x) != n)
		return kmpkg_buf_put(out, s, n);
	xM = span_is_x(s, x.id[0]);
	xm = xM || span_is_x(s, x.id[1]);
	xp = xm || span_is_x(s, x.id[2]);
	if (strcmp(gtlt, "=") == 0 && xp)
		gtlt[0] = '\0';
	if (xM)
		return kmpkg_buf_puts(out, strcmp(gtlt, ">") == 0 || strcmp(gtlt, "<") == 0 ? "<0.0.0-0" : "*");
	if (gtlt[0] && xp) {
		const char *tpl = xm ? "M.0.0" : "M.m.0";

		if (strcmp(gtlt, ">") == 0) {
			strcpy(gtlt, ">=");
			tpl = xm ? "A.0.0" : "M.B.0";
		} else if (strcmp(gtlt, "<=") == 0) {
			strcpy(gtlt, "<");
			tpl = xm ? "A.0.0" : "M.B.0";
		}
		if ((err = kmpkg_buf_puts(out, gtlt)) || (err = put_tpl(out, s, &x, tpl)))
			return err;
		return strcmp(gtlt, "<") == 0 ? kmpkg_buf_puts(out, "-0") : 0;
	}
	if (xm)
		return put_tpl(out, s, &x, ">=M.0.0 <A.0.0-0");
	if (xp)
		return put_tpl(out, s, &x, ">=M.m.0 <M.B.0-0");
	return kmpkg_buf_put(out, s, n);
}

/* replaceStars: trim, then drop the first match of STAR (<|>)?=?\s?\*. */
static int replace_stars(const char *s, size_t n, struct kmpkg_buf *out)
{
	size_t b = 0, e = n, k, p;
	const char *star;
	int err;

	sp_trim(s, &b, &e);
	star = memchr(s + b, '*', e - b);
	if (!star)
		return kmpkg_buf_put(out, s + b, e - b);
	k = (size_t)(star - s);
	p = k;
	if (p > b && s[p - 1] == ' ')
		p--;
	if (p > b && s[p - 1] == '=')
		p--;
	if (p > b && (s[p - 1] == '<' || s[p - 1] == '>'))
		p--;
	if ((err = kmpkg_buf_put(out, s + b, p - b)))
		return err;
	return kmpkg_buf_put(out, s + k + 1, e - k - 1);
}

typedef int (*word_fn)(const char *s, size_t n, struct kmpkg_buf *out);

/* s.split(/\s+/).map(fn).join(' '), after an optional trim. */
static int map_words(const char *s, size_t n, bool trim, word_fn fn, struct kmpkg_buf *out)
{
	struct splitter sp;
	size_t b = 0, e = n, wb, we;
	bool first = true;
	int err;

	if (trim)
		sp_trim(s, &b, &e);
	sp = (struct splitter){ s + b, e - b, 0, false };
	while (split_next(&sp, &wb, &we)) {
		if (!first && (err = kmpkg_buf_puts(out, " ")))
			return err;
		first = false;
		if ((err = fn(sp.s + wb, we - wb, out)))
			return err;
	}
	return 0;
}

/* parseComparator: carets, tildes, x-ranges, stars on one word of the part. */
static int parse_word(const char *s, size_t n, struct kmpkg_buf *out)
{
	struct kmpkg_buf c1 = KMPKG_BUF_INIT, c2 = KMPKG_BUF_INIT, c3 = KMPKG_BUF_INIT;
	int err;

	if ((err = kmpkg_buf_puts(&c1, "")) || (err = kmpkg_buf_puts(&c2, "")) || (err = kmpkg_buf_puts(&c3, "")))
		goto cleanup;
	if ((err = replace_caret(s, n, &c1)) || (err = map_words(c1.ptr, c1.len, true, replace_tilde, &c2)) ||
	    (err = map_words(c2.ptr, c2.len, false, replace_xrange, &c3)))
		goto cleanup;
	err = replace_stars(c3.ptr, c3.len, out);
cleanup:
	kmpkg_buf_release(&c1);
	kmpkg_buf_release(&c2);
	kmpkg_buf_release(&c3);
	return err;
}

static void comparator_release(struct comparator *c)
{
	kmpkg_semver_release(&c->v);
	free(c->value);
	c->value = NULL;
}

static void cset_release(struct cset *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		comparator_release(&set->c[i]);
	free(set->c);
	memset(set, 0, sizeof(*set));
}

/* new Comparator(word) after replaceGTE0: COMPARATOR ^GTLT\s?(FULLPLAIN)$|^$
 * then new SemVer(m[2]). Returns 0, 1 if invalid, or an error. */
static int parse_comparator(struct comparator *out, const char *s, size_t n)
{
	static const char *const names[] = { "", "", "<", "<=", ">", ">=" };
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	size_t i = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (n == 7 && memcmp(s, ">=0.0.0", 7) == 0)
		n = 0; /* replaceGTE0: >=0.0.0 is any */
	if (n == 0) {
		out->op = OP_ANY;
		return (out->value = strdup("")) ? 0 : nomem();
	}
	out->op = OP_EQ;
	if (s[i] == '<' || s[i] == '>')
		out->op = s[i++] == '<' ? OP_LT : OP_GT;
	if (i < n && s[i] == '=') {
		i++;
		if (out->op != OP_EQ)
			out->op++;
	}
	if (n - i > MAX_LENGTH)
		return 1;
	if ((err = parse_full(&out->v, s + i, n - i)))
		return err;
	if ((err = kmpkg_buf_puts(&b, names[out->op])) || (err = format_into(&b, &out->v, false))) {
		kmpkg_buf_release(&b);
		comparator_release(out);
		return err;
	}
	out->value = kmpkg_buf_detach(&b);
	return 0;
}

static int cset_push(struct cset *set, struct comparator *c)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 4;
		struct comparator *p = realloc(set->c, cap * sizeof(*p));

		if (!p)
			return nomem();
		set->c = p;
		set->cap = cap;
	}
	set->c[set->n++] = *c;
	return 0;
}

static bool is_null_set(const struct comparator *c)
{
	return strcmp(c->value, "<0.0.0-0") == 0;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* rangeMap: keep the first comparator of each value, in order; a null set
 * replaces the whole set; '' goes when anything else is left. */
static int cset_prune(struct cset *set)
{
	size_t *slots = NULL, nslots = 8, i, j, kept = 0;
	bool any = false;
	int err = 0;

	for (i = 0; i < set->n; i++) {
		if (is_null_set(&set->c[i])) {
			struct comparator keep = set->c[i];

			for (j = 0; j < set->n; j++)
				if (j != i)
					comparator_release(&set->c[j]);
			set->c[0] = keep;
			set->n = 1;
			return 0;
		}
	}
	while (nslots < set->n * 2)
		nslots *= 2;
	if (!(slots = malloc(nslots * sizeof(*slots))))
		return nomem();
	for (i = 0; i < nslots; i++)
		slots[i] = SIZE_MAX;
	for (i = 0; i < set->n; i++) {
		size_t h = (size_t)hash_str(set->c[i].value) & (nslots - 1);
		bool dup = false;

		while (slots[h] != SIZE_MAX) {
			if (strcmp(set->c[slots[h]].value, set->c[i].value) == 0) {
				dup = true;
				break;
			}
			h = (h + 1) & (nslots - 1);
		}
		if (dup) {
			comparator_release(&set->c[i]);
			continue;
		}
		set->c[kept] = set->c[i];
		slots[h] = kept++;
		any = any || set->c[kept - 1].op == OP_ANY;
	}
	set->n = kept;
	if (any && set->n > 1) {
		for (i = 0, kept = 0; i < set->n; i++) {
			if (set->c[i].op == OP_ANY)
				comparator_release(&set->c[i]);
			else
				set->c[kept++] = set->c[i];
		}
		set->n = kept;
	}
	free(slots);
	return err;
}

/* parseRange on one trimmed part. Returns 0, 1 if invalid (*bad gets the
 * offending comparator), or an error. */
static int part_parse(struct cset *out, const char *s, size_t n, char **bad)
{
	struct kmpkg_buf a = KMPKG_BUF_INIT, b = KMPKG_BUF_INIT, c = KMPKG_BUF_INIT, d = KMPKG_BUF_INIT;
	struct kmpkg_buf words = KMPKG_BUF_INIT;
	struct splitter sp;
	struct comparator cmp;
	size_t wb, we, pos, sep;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = kmpkg_buf_puts(&a, "")) || (err = kmpkg_buf_puts(&b, "")) || (err = kmpkg_buf_puts(&c, "")) ||
	    (err = kmpkg_buf_puts(&d, "")) || (err = kmpkg_buf_puts(&words, "")))
		goto cleanup;
	if ((err = hyphen_replace(s, n, &a)) || (err = comparator_trim(a.ptr, a.len, &b)) ||
	    (err = lone_trim(b.ptr, b.len, '~', &c)) || (err = lone_trim(c.ptr, c.len, '^', &d)))
		goto cleanup;

	/* range.split(' ').map(parseComparator).join(' ') */
	for (pos = 0;; pos = sep + 1) {
		const char *sp_at = memchr(d.ptr + pos, ' ', d.len - pos);

		sep = sp_at ? (size_t)(sp_at - d.ptr) : d.len;
		if (pos && (err = kmpkg_buf_puts(&words, " ")))
			goto cleanup;
		if ((err = parse_word(d.ptr + pos, sep - pos, &words)))
			goto cleanup;
		if (sep == d.len)
			break;
	}

	/* .split(/\s+/).map(replaceGTE0).map(c => new Comparator(c)) */
	sp = (struct splitter){ words.ptr, words.len, 0, false };
	while (split_next(&sp, &wb, &we)) {
		if ((err = parse_comparator(&cmp, words.ptr + wb, we - wb))) {
			if (err > 0 && !(*bad = strndup(words.ptr + wb, we - wb)))
				err = nomem();
			goto cleanup;
		}
		if ((err = cset_push(out, &cmp))) {
			comparator_release(&cmp);
			goto cleanup;
		}
	}
	err = cset_prune(out);
cleanup:
	if (err)
		cset_release(out);
	kmpkg_buf_release(&a);
	kmpkg_buf_release(&b);
	kmpkg_buf_release(&c);
	kmpkg_buf_release(&d);
	kmpkg_buf_release(&words);
	return err;
}

void kmpkg_semver_range_free(struct kmpkg_semver_range *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		cset_release(&r->sets[i]);
	free(r->sets);
	free(r);
}

static int range_push(struct kmpkg_semver_range *r, struct cset *set)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4;
		struct cset *p = realloc(r->sets, cap * sizeof(*p));

		if (!p)
			return nomem();
		r->sets = p;
		r->cap = cap;
	}
	r->sets[r->n++] = *set;
	return 0;
}

/* More than one set: null sets go (unless all are), and a lone "any" wins. */
static void range_prune(struct kmpkg_semver_range *r)
{
	size_t i, kept = 0;

	if (r->n <= 1)
		return;
	for (i = 0; i < r->n; i++)
		if (!is_null_set(&r->sets[i].c[0]))
			break;
	if (i == r->n) {
		for (i = 1; i < r->n; i++)
			cset_release(&r->sets[i]);
		r->n = 1;
		return;
	}
	for (i = 0; i < r->n; i++) {
		if (is_null_set(&r->sets[i].c[0]))
			cset_release(&r->sets[i]);
		else
			r->sets[kept++] = r->sets[i];
	}
	r->n = kept;
	if (r->n <= 1)
		return;
	for (i = 0; i < r->n; i++)
		if (r->sets[i].n == 1 && r->sets[i].c[0].op == OP_ANY)
			break;
	if (i == r->n)
		return;
	if (i != 0) {
		struct cset tmp = r->sets[0];

		r->sets[0] = r->sets[i];
		r->sets[i] = tmp;
	}
	for (i = 1; i < r->n; i++)
		cset_release(&r->sets[i]);
	r->n = 1;
}

int kmpkg_semver_range_parse(struct kmpkg_semver_range **out, const char *s)
{
	struct kmpkg_semver_range *r = NULL;
	struct kmpkg_buf norm = KMPKG_BUF_INIT;
	struct cset set;
	char ex[64], ex2[64];
	char *bad = NULL;
	size_t n, b, e, i, k, pos;
	int err;

	*out = NULL;
	if (!s)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", NULL, RANGE_NEXT, "no range given");
	n = strnlen(s, RANGE_MAX_LENGTH + 1);
	if (n > RANGE_MAX_LENGTH)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", NULL, RANGE_NEXT,
				       "invalid range '%s': longer than %d bytes", excerpt(ex, sizeof(ex), s),
				       RANGE_MAX_LENGTH);
	if (!(r = calloc(1, sizeof(*r)))) {
		err = nomem();
		goto cleanup;
	}

	/* this.raw = range.trim().replace(/\s+/g, ' ') */
	js_trim(s, n, &b, &e);
	if ((err = kmpkg_buf_grow(&norm, e - b)))
		goto cleanup;
	for (i = b; i < e;) {
		if ((k = js_space(s, e, i)) != 0) {
			while (i < e && (k = js_space(s, e, i)) != 0)
				i += k;
			norm.ptr[norm.len++] = ' ';
		} else {
			norm.ptr[norm.len++] = s[i++];
		}
	}
	norm.ptr[norm.len] = '\0';

	/* .split('||').map(r => this.parseRange(r.trim())) */
	for (pos = 0;;) {
		size_t end = pos, next;

		while (end < norm.len && !(norm.ptr[end] == '|' && end + 1 < norm.len && norm.ptr[end + 1] == '|'))
			end++;
		next = end + 2;
		b = pos;
		e = end;
		sp_trim(norm.ptr, &b, &e);
		if ((err = part_parse(&set, norm.ptr + b, e - b, &bad))) {
			if (err > 0)
				err = kmpkg_error_set(KMPKG_EUSAGE, "E_RANGE_INVALID", NULL, RANGE_NEXT,
						      "invalid range '%s': '%s' is not a comparator",
						      excerpt(ex, sizeof(ex), s), excerpt(ex2, sizeof(ex2), bad));
			goto cleanup;
		}
		if ((err = range_push(r, &set))) {
			cset_release(&set);
			goto cleanup;
		}
		if (end >= norm.len)
			break;
		pos = next;
	}
	range_prune(r);
	*out = r;
	r = NULL;
cleanup:
	free(bad);
	kmpkg_buf_release(&norm);
	kmpkg_semver_range_free(r);
	return err;
}

static bool comparator_test(const struct comparator *c, const struct kmpkg_semver *v)
{
	int d;

	if (c->op == OP_ANY)
		return true;
	d = kmpkg_semver_cmp(v, &c->v);
	switch (c->op) {
	case OP_EQ: return d == 0;
	case OP_LT: return d < 0;
	case OP_LE: return d <= 0;
	case OP_GT: return d > 0;
	default: return d >= 0;
	}
}

/* testSet, without includePrerelease. */
static bool set_test(const struct cset *set, const struct kmpkg_semver *v)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!comparator_test(&set->c[i], v))
			return false;
	if (!v->npre)
		return true;
	/* A pre-release only matches through a comparator that names a
	 * pre-release of the same [major, minor, patch]. */
	for (i = 0; i < set->n; i++) {
		const struct comparator *c = &set->c[i];

		if (c->op != OP_ANY && c->v.npre && c->v.major == v->major && c->v.minor == v->minor &&
		    c->v.patch == v->patch)
			return true;
	}
	return false;
}

bool kmpkg_semver_range_test(const struct kmpkg_semver_range *r, const struct kmpkg_semver *v)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (set_test(&r->sets[i], v))
			return true;
	return false;
}

char *kmpkg_semver_range_format(const struct kmpkg_semver_range *r)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	size_t i, j;
	int err = kmpkg_buf_puts(&b, "");

	for (i = 0; !err && i < r->n; i++) {
		if (i)
			err = kmpkg_buf_puts(&b, "||");
		for (j = 0; !err && j < r->sets[i].n; j++) {
			if (j)
				err = kmpkg_buf_puts(&b, " ");
			if (!err)
				err = kmpkg_buf_puts(&b, r->sets[i].c[j].value);
		}
	}
	if (err) {
		kmpkg_buf_release(&b);
		return NULL;
	}
	return kmpkg_buf_detach(&b);
}

int kmpkg_semver_satisfies(const char *version, const char *range)
{
	struct kmpkg_semver v = { 0 };
	struct kmpkg_semver_range *r = NULL;
	int err;

	if ((err = kmpkg_semver_parse(&v, version)) || (err = kmpkg_semver_range_parse(&r, range)))
		goto cleanup;
	err = kmpkg_semver_range_test(r, &v) ? 1 : 0;
cleanup:
	kmpkg_semver_range_free(r);
	kmpkg_semver_release(&v);
	return err;
}

int kmpkg_semver_compare(int *out, const char *a, const char *b)
{
	struct kmpkg_semver va = { 0 }, vb = { 0 };
	int err;

	*out = 0;
	if ((err = kmpkg_semver_parse(&va, a)) || (err = kmpkg_semver_parse(&vb, b)))
		goto cleanup;
	*out = kmpkg_semver_cmp(&va, &vb);
cleanup:
	kmpkg_semver_release(&va);
	kmpkg_semver_release(&vb);
	return err;
}

bool kmpkg_semver_valid(const char *version)
{
	struct kmpkg_semver v = { 0 };
	bool ok = kmpkg_semver_parse(&v, version) == 0;

	kmpkg_semver_release(&v);
	return ok;
}
