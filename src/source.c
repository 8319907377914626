/*
 * Sources: the git side (see include/kmpkg/source.h for the contract).
 *
 * Fetching is connect -> list the remote's refs -> pick the one asked for ->
 * download only that ref's history -> write refs/kmpkg/fetched ourselves from
 * the advertised id. Nothing else in the bare repository moves: no tags are
 * followed, no remote-tracking refs are written, and refs/kmpkg/trusted moves
 * only in kmpkg_source_trust. Everything is read from the object database.
 */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kmpkg/diag.h"
#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "kmpkg/semver.h"
#include "kmpkg/source.h"
#include "yamltree.h"

#define FETCHED_REF "refs/kmpkg/fetched"
#define TRUSTED_REF "refs/kmpkg/trusted"
#define META_FILE "kmpkg-source.yaml"
#define RETRUST_STEP "if the publisher rewrote history on purpose, re-trust it: kmpkg source remove %s && kmpkg source add %s URL"

struct kmpkg_source {
	git_repository *repo;
	char *name;
	char *path;
	bool inited; /* holds a git_libgit2_init reference */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static int oom(void)
{
	return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
}

static int git_fail(const char *fmt, const char *arg)
{
	const git_error *e = git_error_last();
	char what[512];

	snprintf(what, sizeof(what), fmt, arg ? arg : "");
	return kmpkg_error_set(KMPKG_EGENERIC, "E_SOURCE_GIT", NULL, NULL, "%s: %s", what,
			       e && e->message ? e->message : "libgit2 error");
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static bool is_hex_oid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < KMPKG_SOURCE_OID_HEX; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[i] == '\0';
}

/* Resolves a hex commit id that must name a commit present here. */
static int lookup_commit(git_commit **out, struct kmpkg_source *src, const char *hex)
{
	git_oid oid;

	if (!is_hex_oid(hex) || git_oid_fromstr(&oid, hex) != 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL,
				       "'%.80s' is not a 40-digit commit id", hex ? hex : "(null)");
	if (git_commit_lookup(out, src->repo, &oid) != 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL,
				       "commit %s is not in source %s", hex, src->name);
	return 0;
}

static void oid_hex(char out[KMPKG_SOURCE_OID_HEX + 1], const git_oid *oid)
{
	git_oid_tostr(out, KMPKG_SOURCE_OID_HEX + 1, oid);
}

/* mkdir -p for the directories above a source, 0755. */
static int mkdirs(const char *path)
{
	char *p = strdup(path);
	char *s;
	int err = 0;

	if (!p)
		return oom();
	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST) {
				err = kmpkg_error_errno(errno, "creating directory", p);
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return err;
}

/* ------------------------------------------------------------------ */
/* opening, deleting                                                    */

bool kmpkg_source_name_valid(const char *name)
{
	return kmpkg_manifest_name_valid(name);
}

char *kmpkg_source_path(const char *root, const char *name)
{
	return xasprintf("%s/kmpkg/sources/%s.git", root, name);
}

static int check_name(const char *name)
{
	if (!kmpkg_source_name_valid(name))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_NAME_INVALID", "NAME",
				       "choose a name of lowercase letters, digits and '-'",
				       "source name '%.80s' is not [a-z0-9][a-z0-9-]{0,62}", name ? name : "");
	return 0;
}

int kmpkg_source_open(struct kmpkg_source **out, const char *root, const char *name, bool create)
{
	struct kmpkg_source *src = NULL;
	char *dir = NULL;
	struct stat st;
	int err;

	*out = NULL;
	if ((err = check_name(name)) != 0)
		return err;
	src = calloc(1, sizeof(*src));
	if (!src || !(src->name = strdup(name)) || !(src->path = kmpkg_source_path(root, name))) {
		err = oom();
		goto cleanup;
	}
	git_libgit2_init();
	src->inited = true;
	if (stat(src->path, &st) != 0) {
		if (errno != ENOENT) {
			err = kmpkg_error_errno(errno, "opening source", src->path);
			goto cleanup;
		}
		if (!create) {
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_NOT_FOUND", "NAME",
					      "kmpkg source list shows the configured sources",
					      "no source named %s", name);
			goto cleanup;
		}
		if (!(dir = xasprintf("%s/kmpkg/sources", root))) {
			err = oom();
			goto cleanup;
		}
		if ((err = mkdirs(dir)) != 0)
			goto cleanup;
		if (git_repository_init(&src->repo, src->path, 1) != 0) {
			err = git_fail("creating bare repository %s", src->path);
			goto cleanup;
		}
	} else if (git_repository_open_bare(&src->repo, src->path) != 0) {
		err = git_fail("opening bare repository %s", src->path);
		goto cleanup;
	}
	*out = src;
	src = NULL;
	err = 0;
cleanup:
	kmpkg_source_close(src);
	free(dir);
	return err;
}

void kmpkg_source_close(struct kmpkg_source *src)
{
	if (!src)
		return;
	git_repository_free(src->repo);
	if (src->inited)
		git_libgit2_shutdown();
	free(src->name);
	free(src->path);
	free(src);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP ? rmdir(path) : unlink(path))
		return errno ? errno : EIO;
	return 0;
}

int kmpkg_source_delete(const char *root, const char *name)
{
	char *path = NULL;
	struct stat st;
	int err, rc;

	if ((err = check_name(name)) != 0)
		return err;
	if (!(path = kmpkg_source_path(root, name)))
		return oom();
	if (lstat(path, &st) != 0) {
		err = errno == ENOENT ? 0 : kmpkg_error_errno(errno, "removing source", path);
		goto cleanup;
	}
	rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (rc != 0)
		err = kmpkg_error_errno(rc > 0 ? rc : errno, "removing source", path);
cleanup:
	free(path);
	return err;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                 */

enum url_kind { URL_LOCAL, URL_GIT, URL_HTTP, URL_HTTPS, URL_SSH };

struct url_info {
	enum url_kind kind;
	char *url;   /* as stored in the remote (local paths made absolute) */
	char *host;  /* ssh: for the known_hosts check */
	int port;
};

static void url_info_release(struct url_info *u)
{
	free(u->url);
	free(u->host);
}

static int url_bad(const char *url, const char *why)
{
	return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_URL_INVALID", "URL",
			       "give a file://, git://, http(s):// or ssh:// URL, user@host:path, or a local path",
			       "source URL '%.200s': %s", url, why);
}

/* host[:port] from an authority (after any user@). */
static int parse_authority(struct url_info *u, const char *a, size_t n, int default_port)
{
	const char *at = memchr(a, '@', n);
	const char *colon;
	size_t hlen;

	if (at) {
		n -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	u->port = default_port;
	if (n > 0 && a[0] == '[') {
		const char *close = memchr(a, ']', n);

		if (!close)
			return -1;
		u->host = strndup(a + 1, (size_t)(close - a - 1));
		colon = close + 1 < a + n && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(a, ':', n);
		hlen = colon ? (size_t)(colon - a) : n;
		u->host = strndup(a, hlen);
	}
	if (!u->host)
		return -1;
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);

		if (end != a + n || p <= 0 || p > 65535)
			return -1;
		u->port = (int)p;
	}
	return u->host[0] ? 0 : -1;
}

static int url_prepare(struct url_info *out, const char *url)
{
	static const struct {
		const char *prefix;
		enum url_kind kind;
		int port;
	} schemes[] = {
		{ "file://", URL_LOCAL, 0 },     { "git://", URL_GIT, 9418 },
		{ "http://", URL_HTTP, 80 },     { "https://", URL_HTTPS, 443 },
		{ "ssh://", URL_SSH, 22 },
	};
	const char *sep;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!url || !*url)
		return url_bad("", "empty");
	for (i = 0; url[i]; i++)
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
			return url_bad(url, "contains a space or control character");
	sep = strstr(url, "://");
	if (sep) {
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (!strncmp(url, schemes[i].prefix, strlen(schemes[i].prefix)))
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0]))
			return url_bad(url, "unsupported scheme");
		out->kind = schemes[i].kind;
		if (out->kind != URL_LOCAL) {
			const char *a = sep + 3;
			size_t n = strcspn(a, "/");
			const char *at = memchr(a, '@', n);

			if (at && memchr(a, ':', (size_t)(at - a)))
				return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_URL_INVALID", "URL",
						       "remove the password from the URL and name an environment variable holding a token instead",
						       "the source URL has a password in it (not repeated here)");
			if (parse_authority(out, a, n, schemes[i].port) != 0) {
				url_info_release(out);
				return url_bad(url, "has no valid host");
			}
		}
		if (!(out->url = strdup(url)))
			return oom();
		return 0;
	}
	/* scp-like user@host:path (a ':' before any '/') */
	sep = strchr(url, ':');
	if (url[0] != '/' && url[0] != '.' && sep && !memchr(url, '/', (size_t)(sep - url))) {
		const char *at = memchr(url, '@', (size_t)(sep - url));
		const char *h = at ? at + 1 : url;

		out->kind = URL_SSH;
		out->port = 22;
		if (sep == h || !(out->host = strndup(h, (size_t)(sep - h))) || !(out->url = strdup(url))) {
			url_info_release(out);
			return out->host ? oom() : url_bad(url, "has no host");
		}
		return 0;
	}
	out->kind = URL_LOCAL;
	if (!(out->url = realpath(url, NULL)))
		return url_bad(url, "no such local repository");
	return 0;
}

/* ------------------------------------------------------------------ */
/* ssh host keys: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts          */

static bool host_matches_hashed(const char *entry, const char *host)
{
	/* |1|base64(salt)|base64(HMAC-SHA1(salt, host)) */
	unsigned char salt[64], want[64], got[EVP_MAX_MD_SIZE];
	unsigned int glen = 0;
	const char *s = entry + 3, *bar = strchr(s, '|');
	int sl, wl;

	if (!bar || (size_t)(bar - s) >= sizeof(salt) || strlen(bar + 1) >= sizeof(want))
		return false;
	sl = EVP_DecodeBlock(salt, (const unsigned char *)s, (int)(bar - s));
	wl = EVP_DecodeBlock(want, (const unsigned char *)bar + 1, (int)strlen(bar + 1));
	if (sl < 20 || wl < 20)
		return false;
	/* EVP_DecodeBlock keeps padding bytes: SHA-1 salt and hash are 20 bytes. */
	if (!HMAC(EVP_sha1(), salt, 20, (const unsigned char *)host, strlen(host), got, &glen) || glen != 20)
		return false;
	return memcmp(got, want, 20) == 0;
}

/* OpenSSH's match_pattern: '*' and '?' only ('[' is literal, as in
 * "[host]:2222"), case-insensitive. */
static bool wildcard_match(const char *p, const char *s)
{
	for (; *p; p++, s++) {
		if (*p == '*') {
			while (p[1] == '*')
				p++;
			if (!p[1])
				return true;
			for (; *s; s++)
				if (wildcard_match(p + 1, s))
					return true;
			return false;
		}
		if (!*s || (*p != '?' && tolower((unsigned char)*p) != tolower((unsigned char)*s)))
			return false;
	}
	return !*s;
}

static bool host_matches(char *patterns, const char *host)
{
	bool hit = false;
	char *save = NULL, *p;

	if (!strncmp(patterns, "|1|", 3))
		return host_matches_hashed(patterns, host);
	for (p = strtok_r(patterns, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		bool neg = p[0] == '!';

		if (wildcard_match(neg ? p + 1 : p, host)) {
			if (neg)
				return false;
			hit = true;
		}
	}
	return hit;
}

/* 1 when a line of file names host with exactly this key, -1 when revoked. */
static int known_hosts_file(const char *file, const char *host, const unsigned char *key, size_t klen)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (found >= 0 && getline(&line, &cap, f) > 0) {
		char *save = NULL, *f1, *f2, *f3;
		bool revoked = false;
		unsigned char *dec = NULL;
		int dl;
		size_t b64len;

		f1 = strtok_r(line, " \t\r\n", &save);
		if (!f1 || f1[0] == '#')
			continue;
		if (f1[0] == '@') {
			if (strcmp(f1, "@revoked"))
				continue; /* @cert-authority: certificates are not supported */
			revoked = true;
			f1 = strtok_r(NULL, " \t\r\n", &save);
		}
		f2 = strtok_r(NULL, " \t\r\n", &save);
		f3 = strtok_r(NULL, " \t\r\n", &save);
		if (!f1 || !f2 || !f3 || !host_matches(f1, host))
			continue;
		b64len = strlen(f3);
		if (b64len > 1 << 16 || !(dec = malloc(b64len)))
			continue;
		dl = EVP_DecodeBlock(dec, (const unsigned char *)f3, (int)b64len);
		if (dl > 0) {
			size_t pad = (b64len >= 1 && f3[b64len - 1] == '=') + (b64len >= 2 && f3[b64len - 2] == '=');

			if ((size_t)dl - pad == klen && !memcmp(dec, key, klen))
				found = revoked ? -1 : 1;
		}
		free(dec);
	}
	free(line);
	fclose(f);
	return found;
}

/* "host" on port 22, "[host]:port" otherwise, lowercase: known_hosts' form. */
static void known_hosts_name(char *out, size_t n, const char *host, int port)
{
	if (port == 22)
		snprintf(out, n, "%s", host);
	else
		snprintf(out, n, "[%s]:%d", host, port);
	for (char *c = out; *c; c++)
		*c = (char)tolower((unsigned char)*c);
}

#ifdef KMPKG_TESTING
int kmpkg_source__known_hosts_check(const char *file, const char *host, int port, const unsigned char *key,
				    size_t klen)
{
	char name[300];

	known_hosts_name(name, sizeof(name), host, port);
	return known_hosts_file(file, name, key, klen);
}
#endif

static int check_host_key(const git_cert_hostkey *hk, const struct url_info *u, char *msg, size_t msglen)
{
	char name[300];
	char *user = NULL;
	const char *home = getenv("HOME");
	int a = 0, b = 0;

	if (!(hk->type & GIT_CERT_SSH_RAW) || !hk->hostkey || !u->host) {
		snprintf(msg, msglen, "cannot check the ssh host key of %s", u->host ? u->host : "?");
		return -1;
	}
	known_hosts_name(name, sizeof(name), u->host, u->port);
	if (home && (user = xasprintf("%s/.ssh/known_hosts", home)))
		a = known_hosts_file(user, name, (const unsigned char *)hk->hostkey, hk->hostkey_len);
	free(user);
	if (a >= 0)
		b = known_hosts_file("/etc/ssh/ssh_known_hosts", name, (const unsigned char *)hk->hostkey,
				     hk->hostkey_len);
	if (a < 0 || b < 0) {
		snprintf(msg, msglen, "the ssh host key of %s is revoked in known_hosts", name);
		return -1;
	}
	if (a == 0 && b == 0) {
		snprintf(msg, msglen,
			 "the ssh host key of %s is not in ~/.ssh/known_hosts (connect once with ssh to check and record it)",
			 name);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* fetch                                                                */

struct fetch_ctx {
	struct kmpkg_source *src;
	const struct kmpkg_source_fetch_opts *opts;
	const struct url_info *url;
	int agent_tries, token_tries, user_tries;
	bool cancelled;
	char msg[512]; /* why a callback refused, for the error message */
};

static int on_progress(const git_indexer_progress *st, void *payload)
{
	struct fetch_ctx *c = payload;
	struct kmpkg_source_progress p;

	if (!c->opts || !c->opts->progress)
		return 0;
	p.total_objects = st->total_objects;
	p.received_objects = st->received_objects;
	p.indexed_objects = st->indexed_objects;
	p.local_objects = st->local_objects;
	p.total_deltas = st->total_deltas;
	p.indexed_deltas = st->indexed_deltas;
	p.received_bytes = st->received_bytes;
	if (c->opts->progress(&p, c->opts->progress_payload) != 0) {
		c->cancelled = true;
		return GIT_EUSER;
	}
	return 0;
}

static int on_credentials(git_credential **out, const char *url, const char *user_from_url,
			  unsigned int allowed, void *payload)
{
	struct fetch_ctx *c = payload;
	const char *env = c->opts ? c->opts->token_env : NULL;
	const char *tok;

	(void)url;
	if (allowed & GIT_CREDENTIAL_SSH_KEY) {
		if (c->agent_tries++ > 0) {
			snprintf(c->msg, sizeof(c->msg), "the server refused every key ssh-agent offered");
			return GIT_EAUTH;
		}
		return git_credential_ssh_key_from_agent(out, user_from_url ? user_from_url : "git");
	}
	if (allowed & GIT_CREDENTIAL_USERNAME) {
		if (c->user_tries++ > 0)
			return GIT_EAUTH;
		return git_credential_username_new(out, user_from_url ? user_from_url : "git");
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		if (!env || !*env) {
			snprintf(c->msg, sizeof(c->msg),
				 "the server asks for credentials and no token variable is configured for this source");
			return GIT_EAUTH;
		}
		tok = getenv(env);
		if (!tok || !*tok) {
			snprintf(c->msg, sizeof(c->msg), "the token variable %.100s is not set", env);
			return GIT_EAUTH;
		}
		if (c->token_tries++ > 0) {
			snprintf(c->msg, sizeof(c->msg), "the server refused the token in %.100s", env);
			return GIT_EAUTH;
		}
		return git_credential_userpass_plaintext_new(out, user_from_url ? user_from_url : "x-access-token",
							     tok);
	}
	snprintf(c->msg, sizeof(c->msg), "the server asks for a kind of credentials kmpkg does not provide");
	return GIT_EAUTH;
}

static int on_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
	struct fetch_ctx *c = payload;

	if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2) {
		if (check_host_key((const git_cert_hostkey *)cert, c->url, c->msg, sizeof(c->msg)) != 0)
			return GIT_ECERTIFICATE;
		return 0;
	}
	if (!valid) {
		snprintf(c->msg, sizeof(c->msg), "the TLS certificate of %.200s is not valid", host ? host : "?");
		return GIT_ECERTIFICATE;
	}
	return 0;
}

static int fetch_error(struct fetch_ctx *c, const char *what)
{
	const git_error *e = git_error_last();

	if (c->cancelled)
		return kmpkg_error_set(KMPKG_EGENERIC, "E_SOURCE_CANCELLED", NULL, NULL, "fetching source %s: cancelled",
				       c->src->name);
	return kmpkg_error_set(KMPKG_EGENERIC, "E_SOURCE_FETCH", "URL",
			       "check the URL, the network and the credentials, then run kmpkg source update again",
			       "%s %s: %s", what, c->url->url,
			       c->msg[0] ? c->msg : e && e->message ? e->message : "libgit2 error");
}

/* The advertised head that `ref` names (NULL: HEAD). */
static const git_remote_head *pick_head(const git_remote_head **heads, size_t n, const char *ref)
{
	char *want[2] = { NULL, NULL };
	const git_remote_head *hit = NULL;
	size_t i, w;

	if (!ref) {
		for (i = 0; i < n; i++)
			if (!strcmp(heads[i]->name, "HEAD"))
				return heads[i];
		return NULL;
	}
	if (!strncmp(ref, "refs/", 5)) {
		want[0] = strdup(ref);
	} else {
		want[0] = xasprintf("refs/heads/%s", ref);
		want[1] = xasprintf("refs/tags/%s", ref);
	}
	for (w = 0; w < 2 && !hit; w++)
		for (i = 0; want[w] && i < n && !hit; i++)
			if (!strcmp(heads[i]->name, want[w]))
				hit = heads[i];
	free(want[0]);
	free(want[1]);
	return hit;
}

static int check_ref(const char *ref)
{
	char *full;
	int valid = 0;

	if (!ref)
		return 0;
	full = strncmp(ref, "refs/", 5) ? xasprintf("refs/heads/%s", ref) : strdup(ref);
	if (!full)
		return oom();
	if (git_reference_name_is_valid(&valid, full) != 0)
		valid = 0;
	free(full);
	if (!valid || strstr(ref, "^{"))
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_URL_INVALID", "--ref", "give a branch or tag name",
				       "'%.200s' is not a valid git ref name", ref);
	return 0;
}

/*
 * Records url as remote "origin" in the bare repository's config (what an
 * operator sees with git config), and returns an anonymous remote for it to
 * fetch with. git_remote_lookup and insteadOf rewriting are avoided: with
 * PCRE2, libgit2 1.5 leaks a match block on each of their config regexes.
 */
static int setup_remote(git_remote **out, struct kmpkg_source *src, const char *url)
{
	git_remote_create_options co;
	git_config *cfg = NULL;
	git_buf cur = { NULL, 0, 0 };
	git_remote *r = NULL;
	int rc, err = 0;

	*out = NULL;
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	if (git_repository_config(&cfg, src->repo) != 0)
		return git_fail("reading the configuration of %s", src->name);
	rc = git_config_get_string_buf(&cur, cfg, "remote.origin.url");
	if (rc == GIT_ENOTFOUND) {
		co.repository = src->repo;
		co.name = "origin";
		co.flags = GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC | GIT_REMOTE_CREATE_SKIP_INSTEADOF;
		if (git_remote_create_with_opts(&r, url, &co) != 0) {
			err = git_fail("configuring remote %s", url);
			goto cleanup;
		}
		git_remote_free(r);
		r = NULL;
	} else if (rc != 0) {
		err = git_fail("reading remote of %s", src->name);
		goto cleanup;
	} else if (strcmp(cur.ptr, url) != 0 && git_remote_set_url(src->repo, "origin", url) != 0) {
		err = git_fail("configuring remote %s", url);
		goto cleanup;
	}
	/* anonymous (name NULL); insteadOf rules do not rewrite a source's URL */
	co.repository = src->repo;
	co.name = NULL;
	co.flags = GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC | GIT_REMOTE_CREATE_SKIP_INSTEADOF;
	if (git_remote_create_with_opts(&r, url, &co) != 0) {
		err = git_fail("opening remote %s", url);
		goto cleanup;
	}
	*out = r;
cleanup:
	git_buf_dispose(&cur);
	git_config_free(cfg);
	return err;
}

int kmpkg_source_fetch(char out[KMPKG_SOURCE_OID_HEX + 1], struct kmpkg_source *src, const char *url,
		       const struct kmpkg_source_fetch_opts *opts)
{
	struct url_info u;
	struct fetch_ctx ctx;
	git_remote *remote = NULL;
	git_remote_connect_options copts;
	git_fetch_options fopts;
	const git_remote_head **heads = NULL, *head;
	size_t nheads = 0;
	char *spec = NULL;
	git_strarray specs = { NULL, 0 };
	git_reference *ref = NULL;
	git_object *obj = NULL, *peeled = NULL;
	const char *want = opts ? opts->ref : NULL;
	int err;

	out[0] = '\0';
	memset(&ctx, 0, sizeof(ctx));
	git_remote_connect_options_init(&copts, GIT_REMOTE_CONNECT_OPTIONS_VERSION);
	git_fetch_options_init(&fopts, GIT_FETCH_OPTIONS_VERSION);
	if ((err = url_prepare(&u, url)) != 0)
		return err;
	if ((err = check_ref(want)) != 0)
		goto cleanup;
	ctx.src = src;
	ctx.opts = opts;
	ctx.url = &u;
	if ((err = setup_remote(&remote, src, u.url)) != 0)
		goto cleanup;

	copts.callbacks.credentials = on_credentials;
	copts.callbacks.certificate_check = on_certificate;
	copts.callbacks.transfer_progress = on_progress;
	copts.callbacks.payload = &ctx;
	copts.follow_redirects = GIT_REMOTE_REDIRECT_INITIAL;
	if (git_remote_connect_ext(remote, GIT_DIRECTION_FETCH, &copts) != 0) {
		err = fetch_error(&ctx, "connecting to");
		goto cleanup;
	}
	if (git_remote_ls(&heads, &nheads, remote) != 0) {
		err = fetch_error(&ctx, "listing refs of");
		goto cleanup;
	}
	if (!(head = pick_head(heads, nheads, want))) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_REF_NOT_FOUND", want ? "--ref" : "URL",
				      want ? "give a branch or tag the repository has" :
					     "the repository is empty: publish an index first, or give --ref",
				      want ? "%s has no branch or tag %s" : "%s has no HEAD%s", u.url, want ? want : "");
		goto cleanup;
	}
	/* The symbolic HEAD's target is what a refspec can name reliably. */
	if (!(spec = xasprintf("+%s:" FETCHED_REF, !strcmp(head->name, "HEAD") && head->symref_target ?
							     head->symref_target : head->name))) {
		err = oom();
		goto cleanup;
	}
	specs.strings = &spec;
	specs.count = 1;
	fopts.callbacks = copts.callbacks;
	fopts.prune = GIT_FETCH_NO_PRUNE;
	fopts.update_fetchhead = 0;
	fopts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fopts.follow_redirects = GIT_REMOTE_REDIRECT_INITIAL;
	if (git_remote_download(remote, &specs, &fopts) != 0) {
		err = fetch_error(&ctx, "fetching");
		goto cleanup;
	}
	git_remote_disconnect(remote);
	if (git_object_lookup(&obj, src->repo, &head->oid, GIT_OBJECT_ANY) != 0 ||
	    git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) != 0) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_REF_NOT_FOUND", want ? "--ref" : "URL", NULL,
				      "%s of %s does not name a commit", head->name, u.url);
		goto cleanup;
	}
	if (git_reference_create(&ref, src->repo, FETCHED_REF, git_object_id(peeled), 1, "kmpkg: fetch") != 0) {
		err = git_fail("recording the fetched commit of %s", src->name);
		goto cleanup;
	}
	oid_hex(out, git_object_id(peeled));
	err = 0;
cleanup:
	git_reference_free(ref);
	git_object_free(peeled);
	git_object_free(obj);
	free(spec);
	git_remote_free(remote);
	url_info_release(&u);
	return err;
}

/* ------------------------------------------------------------------ */
/* trust checks                                                         */

static int days_in_month(int64_t y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int kmpkg_source_parse_time(int64_t *out, const char *s)
{
	int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
	const char *p;

	if (!s || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return KMPKG_EUSAGE;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return KMPKG_EUSAGE;
	p = s + 10;
	if (*p) {
		if ((*p != 'T' && *p != 't' && *p != ' ') || !digits(p + 1, 2, &h) || p[3] != ':' ||
		    !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &se))
			return KMPKG_EUSAGE;
		if (h > 23 || mi > 59 || se > 60)
			return KMPKG_EUSAGE;
		p += 9;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return KMPKG_EUSAGE;
			while (isdigit((unsigned char)*p))
				p++;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p == '-' ? -1 : 1;
			if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
				return KMPKG_EUSAGE;
			p += 6;
		} else {
			return KMPKG_EUSAGE;
		}
		if (*p)
			return KMPKG_EUSAGE;
		if (se == 60)
			se = 59; /* a leap second expires with the second before it */
	}
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);
	return 0;
}

void kmpkg_source_meta_release(struct kmpkg_source_meta *m)
{
	if (!m)
		return;
	free(m->api_version);
	free(m->name);
	free(m->description);
	memset(m, 0, sizeof(*m));
}

void kmpkg_source_update_result_release(struct kmpkg_source_update_result *r)
{
	if (!r)
		return;
	kmpkg_source_meta_release(&r->meta);
	memset(r, 0, sizeof(*r));
}

static int meta_bad(const char *commit, const char *field, int line, int col, const char *what)
{
	return kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_MANIFEST", field,
			       "the source's publisher must fix " META_FILE,
			       META_FILE "@%.12s:%d:%d: %s", commit, line, col, what);
}

static int meta_string(char **out, const struct kmpkg_yamltree_node *root, const char *key, const char *commit)
{
	const struct kmpkg_yamltree_node *n = kmpkg_yamltree_get(root, key);
	char field[64], what[160];

	snprintf(field, sizeof(field), "/%s", key);
	if (!n) {
		snprintf(what, sizeof(what), "%s is missing", key);
		return meta_bad(commit, field, root->line, root->column, what);
	}
	if (n->type != KMPKG_YT_SCALAR || n->kind != KMPKG_YT_STR || n->len == 0) {
		snprintf(what, sizeof(what), "%s must be a non-empty string, not %s", key, kmpkg_yamltree_describe(n));
		return meta_bad(commit, field, n->line, n->column, what);
	}
	if (!(*out = strdup(n->str)))
		return oom();
	return 0;
}

/* Parses kmpkg-source.yaml of `commit` (already looked up). */
static int read_meta(struct kmpkg_source_meta *out, struct kmpkg_source *src, const char *hex)
{
	struct kmpkg_buf b = KMPKG_BUF_INIT;
	struct kmpkg_diags diags = KMPKG_DIAGS_INIT;
	struct kmpkg_yamltree *t = NULL;
	const struct kmpkg_yamltree_node *root, *n;
	int err;

	memset(out, 0, sizeof(*out));
	err = kmpkg_source_read_blob(&b, src, hex, META_FILE, KMPKG_SOURCE_META_MAX_BYTES);
	if (err) {
		const struct kmpkg_error *e = kmpkg_error_last();

		if (!strcmp(e->code, "E_SOURCE_PATH_NOT_FOUND"))
			err = meta_bad(hex, "", 0, 0, "missing: a source has " META_FILE " at its root");
		else if (!strcmp(e->code, "E_SOURCE_BLOB_TOO_LARGE"))
			err = meta_bad(hex, "", 0, 0, "larger than 64 KiB");
		goto cleanup;
	}
	err = kmpkg_yamltree_parse(&t, META_FILE, b.ptr ? b.ptr : "", b.len, "SOURCE", NULL, &diags);
	if (err == KMPKG_EUSAGE && diags.n > 0) {
		err = meta_bad(hex, diags.v[0].field, diags.v[0].line, diags.v[0].column, diags.v[0].message);
		goto cleanup;
	}
	if (err)
		goto cleanup;
	root = t->root;
	if (!root || root->type != KMPKG_YT_MAP) {
		err = meta_bad(hex, "", root ? root->line : 1, root ? root->column : 1, "must be a mapping");
		goto cleanup;
	}
	if ((err = meta_string(&out->api_version, root, "apiVersion", hex)) != 0 ||
	    (err = meta_string(&out->name, root, "name", hex)) != 0 ||
	    (err = meta_string(&out->description, root, "description", hex)) != 0)
		goto cleanup;
	if (strcmp(out->api_version, "kmpkg/v1") != 0) {
		n = kmpkg_yamltree_get(root, "apiVersion");
		err = meta_bad(hex, "/apiVersion", n->line, n->column, "apiVersion must be kmpkg/v1");
		goto cleanup;
	}
	if (!kmpkg_source_name_valid(out->name)) {
		n = kmpkg_yamltree_get(root, "name");
		err = meta_bad(hex, "/name", n->line, n->column, "name must be [a-z0-9][a-z0-9-]{0,62}");
		goto cleanup;
	}
	n = kmpkg_yamltree_get(root, "expires");
	if (n) {
		if (n->type != KMPKG_YT_SCALAR || (n->kind != KMPKG_YT_STR && n->kind != KMPKG_YT_NULL) ||
		    (n->kind == KMPKG_YT_STR && kmpkg_source_parse_time(&out->expires, n->str) != 0)) {
			err = meta_bad(hex, "/expires", n->line, n->column,
				       "expires must be an RFC 3339 timestamp (2026-01-31T00:00:00Z) or a date (2026-01-31)");
			goto cleanup;
		}
		out->has_expires = n->kind == KMPKG_YT_STR;
	}
	err = 0;
cleanup:
	if (err)
		kmpkg_source_meta_release(out);
	kmpkg_yamltree_free(t);
	kmpkg_diags_release(&diags);
	kmpkg_buf_release(&b);
	return err;
}

int kmpkg_source_check(struct kmpkg_source_meta *out, struct kmpkg_source *src, const char *trusted,
		       const char *commit, int64_t now)
{
	git_commit *newc = NULL, *oldc = NULL;
	char step[512], when[64];
	struct tm tm;
	time_t exp;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = lookup_commit(&newc, src, commit)) != 0)
		goto cleanup;
	if (trusted) {
		git_oid toid;

		if (!is_hex_oid(trusted) || git_oid_fromstr(&toid, trusted) != 0) {
			err = kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL,
					      "'%.80s' is not a 40-digit commit id", trusted);
			goto cleanup;
		}
		/* A trusted commit missing from the object database cannot be an
		 * ancestor of what was just fetched: the history was replaced. */
		if (!git_oid_equal(&toid, git_commit_id(newc)) &&
		    (git_commit_lookup(&oldc, src->repo, &toid) != 0 ||
		     git_graph_descendant_of(src->repo, git_commit_id(newc), &toid) != 1)) {
			snprintf(step, sizeof(step), RETRUST_STEP, src->name, src->name);
			err = kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_FORCE_PUSHED", NULL, step,
					      "source %s: commit %.12s does not descend from the trusted commit %.12s (history was rewritten); keeping %.12s",
					      src->name, commit, trusted, trusted);
			goto cleanup;
		}
	}
	if ((err = read_meta(out, src, commit)) != 0)
		goto cleanup;
	if (now == 0)
		now = (int64_t)time(NULL);
	if (out->has_expires && now >= out->expires) {
		exp = (time_t)out->expires;
		if (gmtime_r(&exp, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		else
			snprintf(when, sizeof(when), "%lld", (long long)out->expires);
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_EXPIRED", "/expires",
				      "the source's publisher must publish the index again with a later expires; kmpkg keeps using the last trusted index",
				      "source %s: the index at %.12s expired on %s", src->name, commit, when);
		goto cleanup;
	}
	err = 0;
cleanup:
	if (err)
		kmpkg_source_meta_release(out);
	git_commit_free(oldc);
	git_commit_free(newc);
	return err;
}

int kmpkg_source_update(struct kmpkg_source_update_result *out, struct kmpkg_source *src, const char *url,
			const struct kmpkg_source_fetch_opts *opts, const char *trusted)
{
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = kmpkg_source_fetch(out->commit, src, url, opts)) != 0)
		return err;
	if ((err = kmpkg_source_check(&out->meta, src, trusted, out->commit, opts ? opts->now : 0)) != 0)
		return err;
	out->changed = !trusted || strcasecmp(trusted, out->commit) != 0;
	return 0;
}

int kmpkg_source_trust(struct kmpkg_source *src, const char *commit)
{
	git_commit *c = NULL;
	git_reference *ref = NULL;
	int err;

	if ((err = lookup_commit(&c, src, commit)) != 0)
		return err;
	if (git_reference_create(&ref, src->repo, TRUSTED_REF, git_commit_id(c), 1, "kmpkg: trust") != 0)
		err = git_fail("recording the trusted commit of %s", src->name);
	git_reference_free(ref);
	git_commit_free(c);
	return err;
}

int kmpkg_source_trusted(char out[KMPKG_SOURCE_OID_HEX + 1], struct kmpkg_source *src)
{
	git_oid oid;
	int rc;

	out[0] = '\0';
	rc = git_reference_name_to_id(&oid, src->repo, TRUSTED_REF);
	if (rc == GIT_ENOTFOUND)
		return kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_NOT_FOUND", NULL, NULL,
				       "source %s has no trusted commit yet", src->name);
	if (rc != 0)
		return git_fail("reading the trusted commit of %s", src->name);
	oid_hex(out, &oid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* index walking                                                        */

static void entry_release(struct kmpkg_source_entry *e)
{
	free(e->path);
	free(e->name);
	free(e->version);
}

static void skips_release(struct kmpkg_source_skip *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].path);
		free(s[i].reason);
	}
	free(s);
}

void kmpkg_source_index_release(struct kmpkg_source_index *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->n; i++)
		entry_release(&idx->entries[i]);
	free(idx->entries);
	skips_release(idx->skipped, idx->nskipped);
	memset(idx, 0, sizeof(*idx));
}

void kmpkg_source_diff_release(struct kmpkg_source_diff *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		entry_release(&d->changes[i].entry);
	free(d->changes);
	skips_release(d->skipped, d->nskipped);
	memset(d, 0, sizeof(*d));
}

static int add_skip(struct kmpkg_source_skip **v, size_t *n, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int add_skip(struct kmpkg_source_skip **v, size_t *n, const char *path, const char *fmt, ...)
{
	struct kmpkg_source_skip *nv = realloc(*v, (*n + 1) * sizeof(**v));
	char *reason = NULL;
	va_list ap;
	int rc;

	if (!nv)
		return oom();
	*v = nv;
	va_start(ap, fmt);
	rc = vasprintf(&reason, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return oom();
	nv[*n].reason = reason;
	if (!(nv[*n].path = strdup(path))) {
		free(reason);
		return oom();
	}
	(*n)++;
	return 0;
}

/* Is the version segment a SemVer 2.0.0 version written canonically? */
static bool version_valid(const char *v)
{
	struct kmpkg_semver sv;
	char *canon;
	bool ok;

	if (!*v || v[0] == 'v' || isspace((unsigned char)v[0]) || kmpkg_semver_parse(&sv, v) != 0) {
		kmpkg_error_clear();
		return false;
	}
	canon = kmpkg_semver_format(&sv);
	ok = canon && !strcmp(canon, v);
	free(canon);
	kmpkg_semver_release(&sv);
	return ok;
}

/*
 * Validates one file under plugins/: on success fills *e (ok = 1); an invalid
 * one leaves a reason in why (ok = 0). Returns 0 or an error.
 */
static int classify(struct kmpkg_source_entry *e, int *ok, char *why, size_t whylen, struct kmpkg_source *src,
		    const char *path, unsigned int mode, const git_oid *id)
{
	const char *rest, *slash, *file;
	char name[80], version[300];
	size_t nlen, flen;
	git_odb *odb = NULL;
	git_object_t type;
	size_t size = 0;
	int err = 0;

	*ok = 0;
	memset(e, 0, sizeof(*e));
	if (strncmp(path, "plugins/", 8) != 0) {
		snprintf(why, whylen, "not under plugins/");
		return 0;
	}
	rest = path + 8;
	slash = strchr(rest, '/');
	if (!slash) {
		snprintf(why, whylen, "not in a plugin directory (plugins/<name>/<version>.yaml)");
		return 0;
	}
	file = slash + 1;
	nlen = (size_t)(slash - rest);
	if (nlen >= sizeof(name) || (memcpy(name, rest, nlen), name[nlen] = '\0', !kmpkg_source_name_valid(name))) {
		snprintf(why, whylen, "plugin name '%.80s' is not [a-z0-9][a-z0-9-]{0,62}",
			 nlen >= sizeof(name) ? "(too long)" : name);
		return 0;
	}
	if (strchr(file, '/')) {
		snprintf(why, whylen, "nested deeper than plugins/<name>/<version>.yaml");
		return 0;
	}
	flen = strlen(file);
	if (flen <= 5 || strcmp(file + flen - 5, ".yaml") != 0) {
		snprintf(why, whylen, "not a <version>.yaml file");
		return 0;
	}
	if (flen - 5 >= sizeof(version) ||
	    (memcpy(version, file, flen - 5), version[flen - 5] = '\0', !version_valid(version))) {
		snprintf(why, whylen, "'%.80s' is not a SemVer version", flen - 5 >= sizeof(version) ? "(too long)" : version);
		return 0;
	}
	if (mode == GIT_FILEMODE_LINK) {
		snprintf(why, whylen, "a symbolic link, not a file");
		return 0;
	}
	if (mode == GIT_FILEMODE_COMMIT) {
		snprintf(why, whylen, "a submodule, not a file");
		return 0;
	}
	if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE) {
		snprintf(why, whylen, "not a regular file");
		return 0;
	}
	if (git_repository_odb(&odb, src->repo) != 0 || git_odb_read_header(&size, &type, odb, id) != 0) {
		err = git_fail("reading %s", path);
		goto cleanup;
	}
	if (size > KMPKG_SOURCE_INDEX_MAX_BYTES) {
		snprintf(why, whylen, "larger than %d bytes", KMPKG_SOURCE_INDEX_MAX_BYTES);
		goto cleanup;
	}
	if (!(e->path = strdup(path)) || !(e->name = strdup(name)) || !(e->version = strdup(version))) {
		entry_release(e);
		memset(e, 0, sizeof(*e));
		err = oom();
		goto cleanup;
	}
	oid_hex(e->blob, id);
	e->size = size;
	*ok = 1;
cleanup:
	git_odb_free(odb);
	return err;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct kmpkg_source_entry *)a)->path, ((const struct kmpkg_source_entry *)b)->path);
}

static int cmp_change(const void *a, const void *b)
{
	const struct kmpkg_source_change *x = a, *y = b;
	int c = strcmp(x->entry.path, y->entry.path);

	/* a deletion before an addition of the same path (type changes) */
	return c ? c : (int)y->kind - (int)x->kind;
}

static int tree_of(git_tree **out, struct kmpkg_source *src, const char *hex)
{
	git_commit *c = NULL;
	int err;

	*out = NULL;
	if (!hex)
		return 0;
	if ((err = lookup_commit(&c, src, hex)) != 0)
		return err;
	if (git_commit_tree(out, c) != 0)
		err = git_fail("reading the tree of %s", hex);
	git_commit_free(c);
	return err;
}

static int list_add(struct kmpkg_source_index *idx, size_t *cap, struct kmpkg_source *src, const char *path,
		    unsigned int mode, const git_oid *id)
{
	struct kmpkg_source_entry e;
	char why[256];
	int ok, err;

	if ((err = classify(&e, &ok, why, sizeof(why), src, path, mode, id)) != 0)
		return err;
	if (!ok)
		return add_skip(&idx->skipped, &idx->nskipped, path, "%s", why);
	if (idx->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct kmpkg_source_entry *nv = realloc(idx->entries, ncap * sizeof(*nv));

		if (!nv) {
			entry_release(&e);
			return oom();
		}
		idx->entries = nv;
		*cap = ncap;
	}
	idx->entries[idx->n++] = e;
	return 0;
}

int kmpkg_source_index_list(struct kmpkg_source_index *out, struct kmpkg_source *src, const char *commit)
{
	git_tree *root = NULL, *plugins = NULL, *dir = NULL;
	const git_tree_entry *pe;
	char *path = NULL;
	size_t i, j, cap = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = tree_of(&root, src, commit)) != 0)
		goto cleanup;
	pe = git_tree_entry_byname(root, "plugins");
	if (!pe) {
		err = 0;
		goto cleanup;
	}
	if (git_tree_entry_type(pe) != GIT_OBJECT_TREE) {
		err = add_skip(&out->skipped, &out->nskipped, "plugins", "not a directory");
		goto cleanup;
	}
	if (git_tree_lookup(&plugins, src->repo, git_tree_entry_id(pe)) != 0) {
		err = git_fail("reading plugins/ of %s", commit);
		goto cleanup;
	}
	for (i = 0; i < git_tree_entrycount(plugins); i++) {
		const git_tree_entry *ne = git_tree_entry_byindex(plugins, i);
		const char *pname = git_tree_entry_name(ne);

		free(path);
		if (!(path = xasprintf("plugins/%s", pname))) {
			err = oom();
			goto cleanup;
		}
		if (git_tree_entry_type(ne) != GIT_OBJECT_TREE) {
			if ((err = list_add(out, &cap, src, path, git_tree_entry_filemode(ne), git_tree_entry_id(ne))) != 0)
				goto cleanup;
			continue;
		}
		if (!kmpkg_source_name_valid(pname)) {
			if ((err = add_skip(&out->skipped, &out->nskipped, path,
					    "plugin name '%.80s' is not [a-z0-9][a-z0-9-]{0,62}", pname)) != 0)
				goto cleanup;
			continue;
		}
		git_tree_free(dir);
		dir = NULL;
		if (git_tree_lookup(&dir, src->repo, git_tree_entry_id(ne)) != 0) {
			err = git_fail("reading %s", path);
			goto cleanup;
		}
		for (j = 0; j < git_tree_entrycount(dir); j++) {
			const git_tree_entry *fe = git_tree_entry_byindex(dir, j);
			char *fpath = xasprintf("plugins/%s/%s", pname, git_tree_entry_name(fe));

			if (!fpath) {
				err = oom();
				goto cleanup;
			}
			if (git_tree_entry_type(fe) == GIT_OBJECT_TREE)
				err = add_skip(&out->skipped, &out->nskipped, fpath,
					       "a directory inside plugins/<name>/ (index files are plugins/<name>/<version>.yaml)");
			else
				err = list_add(out, &cap, src, fpath, git_tree_entry_filemode(fe), git_tree_entry_id(fe));
			free(fpath);
			if (err)
				goto cleanup;
		}
	}
	if (out->n > 1)
		qsort(out->entries, out->n, sizeof(*out->entries), cmp_entry);
	err = 0;
cleanup:
	if (err)
		kmpkg_source_index_release(out);
	free(path);
	git_tree_free(dir);
	git_tree_free(plugins);
	git_tree_free(root);
	return err;
}

static int diff_push(struct kmpkg_source_diff *d, size_t *cap, enum kmpkg_source_change_kind kind,
		     struct kmpkg_source_entry *e, const char *old_blob)
{
	struct kmpkg_source_change *c;

	if (d->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct kmpkg_source_change *nv = realloc(d->changes, ncap * sizeof(*nv));

		if (!nv) {
			entry_release(e);
			return oom();
		}
		d->changes = nv;
		*cap = ncap;
	}
	c = &d->changes[d->n++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->entry = *e;
	if (old_blob)
		snprintf(c->old_blob, sizeof(c->old_blob), "%s", old_blob);
	memset(e, 0, sizeof(*e));
	return 0;
}

int kmpkg_source_index_diff(struct kmpkg_source_diff *out, struct kmpkg_source *src, const char *old_commit,
			    const char *new_commit)
{
	git_tree *ot = NULL, *nt = NULL;
	git_diff *diff = NULL;
	git_diff_options dopts;
	char *ps[] = { "plugins/" };
	struct kmpkg_source_entry oe, ne;
	char owhy[256], nwhy[256];
	size_t i, cap = 0;
	int err, ook, nok;

	memset(out, 0, sizeof(*out));
	memset(&oe, 0, sizeof(oe));
	memset(&ne, 0, sizeof(ne));
	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	if ((err = tree_of(&ot, src, old_commit)) != 0 || (err = tree_of(&nt, src, new_commit)) != 0)
		goto cleanup;
	if (!nt) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL, "no new commit given");
		goto cleanup;
	}
	dopts.pathspec.strings = ps;
	dopts.pathspec.count = 1;
	dopts.flags |= GIT_DIFF_SKIP_BINARY_CHECK;
	if (git_diff_tree_to_tree(&diff, src->repo, ot, nt, &dopts) != 0) {
		err = git_fail("comparing the index with %s", new_commit);
		goto cleanup;
	}
	for (i = 0; i < git_diff_num_deltas(diff); i++) {
		const git_diff_delta *dd = git_diff_get_delta(diff, i);
		bool has_old = dd->status == GIT_DELTA_DELETED || dd->status == GIT_DELTA_MODIFIED;
		bool has_new = dd->status == GIT_DELTA_ADDED || dd->status == GIT_DELTA_MODIFIED;

		ook = nok = 0;
		if (has_old && (err = classify(&oe, &ook, owhy, sizeof(owhy), src, dd->old_file.path,
					       dd->old_file.mode, &dd->old_file.id)) != 0)
			goto cleanup;
		if (has_new && (err = classify(&ne, &nok, nwhy, sizeof(nwhy), src, dd->new_file.path,
					       dd->new_file.mode, &dd->new_file.id)) != 0)
			goto cleanup;
		if (has_new && !nok &&
		    (err = add_skip(&out->skipped, &out->nskipped, dd->new_file.path, "%s", nwhy)) != 0)
			goto cleanup;
		if (ook && nok) {
			char old_blob[KMPKG_SOURCE_OID_HEX + 1];

			snprintf(old_blob, sizeof(old_blob), "%s", oe.blob);
			entry_release(&oe);
			memset(&oe, 0, sizeof(oe));
			if (strcmp(old_blob, ne.blob) != 0) {
				if ((err = diff_push(out, &cap, KMPKG_SOURCE_MODIFIED, &ne, old_blob)) != 0)
					goto cleanup;
			}
		} else if (ook) {
			if ((err = diff_push(out, &cap, KMPKG_SOURCE_DELETED, &oe, NULL)) != 0)
				goto cleanup;
		} else if (nok) {
			if ((err = diff_push(out, &cap, KMPKG_SOURCE_ADDED, &ne, NULL)) != 0)
				goto cleanup;
		}
		entry_release(&oe);
		entry_release(&ne);
		memset(&oe, 0, sizeof(oe));
		memset(&ne, 0, sizeof(ne));
	}
	if (out->n > 1)
		qsort(out->changes, out->n, sizeof(*out->changes), cmp_change);
	err = 0;
cleanup:
	entry_release(&oe);
	entry_release(&ne);
	if (err)
		kmpkg_source_diff_release(out);
	git_diff_free(diff);
	git_tree_free(ot);
	git_tree_free(nt);
	return err;
}

/* ------------------------------------------------------------------ */
/* blobs                                                                */

static int path_ok(const char *path)
{
	const char *p = path;

	if (!path || !*path || *path == '/')
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
		else
			break;
	}
	return path[strlen(path) - 1] != '/';
}

static int read_blob_oid(struct kmpkg_buf *out, struct kmpkg_source *src, const git_oid *id, const char *what,
			 size_t max)
{
	git_odb *odb = NULL;
	git_blob *blob = NULL;
	git_object_t type;
	size_t size = 0;
	int err;

	if (git_repository_odb(&odb, src->repo) != 0 || git_odb_read_header(&size, &type, odb, id) != 0) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_PATH_NOT_FOUND", NULL, NULL, "no blob %s in source %s",
				      what, src->name);
		goto cleanup;
	}
	if (type != GIT_OBJECT_BLOB) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_PATH_NOT_FOUND", NULL, NULL, "%s is not a file", what);
		goto cleanup;
	}
	if (size > max) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_BLOB_TOO_LARGE", NULL, NULL,
				      "%s in source %s is %zu bytes, over the limit of %zu", what, src->name, size, max);
		goto cleanup;
	}
	if (git_blob_lookup(&blob, src->repo, id) != 0) {
		err = git_fail("reading %s", what);
		goto cleanup;
	}
	if ((size_t)git_blob_rawsize(blob) != size) {
		err = kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_BLOB_TOO_LARGE", NULL, NULL, "%s changed size while read", what);
		goto cleanup;
	}
	if (kmpkg_buf_put(out, git_blob_rawcontent(blob), size) != 0) {
		err = oom();
		goto cleanup;
	}
	err = 0;
cleanup:
	git_blob_free(blob);
	git_odb_free(odb);
	return err;
}

int kmpkg_source_read_blob(struct kmpkg_buf *out, struct kmpkg_source *src, const char *commit, const char *path,
			   size_t max)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	int err;

	if (!path_ok(path))
		return kmpkg_error_set(KMPKG_EVERIFY, "E_SOURCE_PATH_INVALID", NULL, NULL,
				       "'%.200s' is not a relative path inside the source", path ? path : "");
	if ((err = tree_of(&tree, src, commit)) != 0)
		goto cleanup;
	if (!tree) {
		err = kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL, "no commit given");
		goto cleanup;
	}
	if (git_tree_entry_bypath(&e, tree, path) != 0 || git_tree_entry_type(e) != GIT_OBJECT_BLOB ||
	    git_tree_entry_filemode(e) == GIT_FILEMODE_LINK) {
		err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_SOURCE_PATH_NOT_FOUND", NULL, NULL,
				      "no file %.200s in commit %.12s of source %s", path, commit, src->name);
		goto cleanup;
	}
	err = read_blob_oid(out, src, git_tree_entry_id(e), path, max);
cleanup:
	git_tree_entry_free(e);
	git_tree_free(tree);
	return err;
}

int kmpkg_source_read_blob_id(struct kmpkg_buf *out, struct kmpkg_source *src, const char *blob, size_t max)
{
	git_oid oid;

	if (!is_hex_oid(blob) || git_oid_fromstr(&oid, blob) != 0)
		return kmpkg_error_set(KMPKG_EUSAGE, "E_SOURCE_COMMIT_INVALID", NULL, NULL,
				       "'%.80s' is not a 40-digit object id", blob ? blob : "(null)");
	return read_blob_oid(out, src, &oid, blob, max);
}
