/*
 * The bounded YAML reader (src/yamltree.h). libyaml's document loader has no
 * limits (nesting 40k deep costs seconds, aliases expand, duplicate keys and
 * extra documents pass silently), so this reads events one at a time and
 * stops at the first thing it refuses: the work done on hostile input is
 * bounded by the limits, not by the input.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kmpkg/error.h"
#include "kmpkg/manifest.h"
#include "yamltree.h"

struct builder {
	const char *file;
	const char *prefix;
	const struct kmpkg_yamltree_limits *lim;
	struct kmpkg_diags *d;
	const char *data;
	size_t len;
	struct kmpkg_yamltree *t;
	struct kmpkg_yamltree_node *cur; /* innermost open collection */
	size_t depth;
	int docs;
};

/* A pending mapping key waits in keys[n] (cap is always > n for mappings
 * with a pending key); pending marks it. */
#define PENDING(map) ((map)->keys && (map)->n < (map)->cap && (map)->keys[(map)->n])

static const struct kmpkg_yamltree_limits default_limits = {
	KMPKG_MANIFEST_MAX_BYTES, KMPKG_MANIFEST_MAX_DEPTH, KMPKG_MANIFEST_MAX_SCALAR,
	KMPKG_YAMLTREE_MAX_NODES,
};

static void node_free(struct kmpkg_yamltree_node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++) {
		if (n->keys)
			node_free(n->keys[i]);
		node_free(n->items[i]);
	}
	if (n->keys && n->n < n->cap)
		node_free(n->keys[n->n]); /* a key whose value never came */
	free(n->keys);
	free(n->items);
	free(n->slots);
	free(n->str);
	free(n);
}

void kmpkg_yamltree_free(struct kmpkg_yamltree *t)
{
	if (!t)
		return;
	node_free(t->root);
	free(t);
}

/* Line and column (1-based, in characters) of a byte offset. */
static void offset_pos(const char *data, size_t len, size_t off, int *line, int *col)
{
	size_t i;
	int l = 1, c = 1;

	for (i = 0; i < off && i < len; i++) {
		if (data[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)data[i] & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static int put_escaped(struct kmpkg_buf *b, const char *s)
{
	int err = 0;

	for (; *s && !err; s++) {
		if (*s == '~')
			err = kmpkg_buf_puts(b, "~0");
		else if (*s == '/')
			err = kmpkg_buf_puts(b, "~1");
		else
			err = kmpkg_buf_put(b, s, 1);
	}
	return err;
}

/* The key naming node inside its mapping parent. */
static const struct kmpkg_yamltree_node *key_of(const struct kmpkg_yamltree_node *node)
{
	const struct kmpkg_yamltree_node *p = node->parent;

	if (node->is_key)
		return node;
	return p->keys[node->index];
}

int kmpkg_yamltree_path(struct kmpkg_buf *b, const struct kmpkg_yamltree_node *node)
{
	int err;

	if (!node || !node->parent)
		return kmpkg_buf_puts(b, "");
	if ((err = kmpkg_yamltree_path(b, node->parent)) != 0)
		return err;
	if (node->parent->type == KMPKG_YT_SEQ)
		return kmpkg_buf_printf(b, "/%zu", node->index);
	if ((err = kmpkg_buf_puts(b, "/")) != 0)
		return err;
	return put_escaped(b, key_of(node)->str);
}

/* The pointer of the node the parser is about to produce: the open
 * collection's, plus the pending key or the next index. */
static int here_path(struct kmpkg_buf *b, const struct builder *bd)
{
	const struct kmpkg_yamltree_node *p = bd->cur;
	int err;

	if (!p)
		return kmpkg_buf_puts(b, "");
	if ((err = kmpkg_yamltree_path(b, p)) != 0)
		return err;
	if (p->type == KMPKG_YT_SEQ)
		return kmpkg_buf_printf(b, "/%zu", p->n);
	if (!PENDING(p))
		return 0; /* a key: its mapping */
	if ((err = kmpkg_buf_puts(b, "/")) != 0)
		return err;
	return put_escaped(b, p->keys[p->n]->str);
}

/* Stands for "the node being read" in refuse(). */
static const struct kmpkg_yamltree_node here_node;
#define HERE (&here_node)

/* Adds the reader's one finding; returns KMPKG_EUSAGE (or EGENERIC). */
static int refuse(struct builder *bd, const char *code, const struct kmpkg_yamltree_node *at,
		  int line, int col, const char *required, const char *actual, const char *next,
		  const char *msg)
{
	struct kmpkg_buf path = KMPKG_BUF_INIT;
	int err;

	if (at == HERE)
		err = here_path(&path, bd);
	else
		err = at ? kmpkg_yamltree_path(&path, at) : 0;
	if (err) {
		kmpkg_buf_release(&path);
		return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
	}
	err = kmpkg_diags_add(bd->d, KMPKG_SEV_ERROR, code, path.ptr ? path.ptr : "", bd->file, line,
			      col, required, actual, next, "%s", msg);
	kmpkg_buf_release(&path);
	return err ? err : KMPKG_EUSAGE;
}

static bool plain_int(const char *s)
{
	if (strncmp(s, "0x", 2) == 0 && s[2])
		return strspn(s + 2, "0123456789abcdefABCDEF") == strlen(s + 2);
	if (strncmp(s, "0o", 2) == 0 && s[2])
		return strspn(s + 2, "01234567") == strlen(s + 2);
	if (*s == '-' || *s == '+')
		s++;
	return *s && strspn(s, "0123456789") == strlen(s);
}

static bool plain_float(const char *s)
{
	const char *p = s;
	bool digits = false;

	if (*p == '-' || *p == '+')
		p++;
	if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF"))
		return true;
	if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN")))
		return true;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* YAML 1.2 core schema resolution of a plain, untagged scalar. */
static enum kmpkg_yamltree_kind resolve_plain(const char *s)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	static const char *const bools[] = { "true", "True", "TRUE", "false", "False", "FALSE" };
	size_t i;

	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (!strcmp(s, nulls[i]))
			return KMPKG_YT_NULL;
	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
		if (!strcmp(s, bools[i]))
			return KMPKG_YT_BOOL;
	if (plain_int(s))
		return KMPKG_YT_INT;
	if (plain_float(s))
		return KMPKG_YT_FLOAT;
	return KMPKG_YT_STR;
}

#define STD_TAG "tag:yaml.org,2002:"

/* Only the non-specific tag "!" and the core schema's own tags, each on the
 * kind of node it names; sets *kind for scalars. */
static bool tag_ok(const char *tag, enum kmpkg_yamltree_type type, enum kmpkg_yamltree_kind *kind)
{
	static const struct {
		const char *name;
		enum kmpkg_yamltree_kind kind;
	} scalars[] = {
		{ "str", KMPKG_YT_STR }, { "int", KMPKG_YT_INT }, { "float", KMPKG_YT_FLOAT },
		{ "bool", KMPKG_YT_BOOL }, { "null", KMPKG_YT_NULL },
	};
	size_t i;

	if (!tag)
		return true;
	if (!strcmp(tag, "!")) {
		*kind = KMPKG_YT_STR;
		return true;
	}
	if (strncmp(tag, STD_TAG, strlen(STD_TAG)) != 0)
		return false;
	tag += strlen(STD_TAG);
	if (type == KMPKG_YT_MAP)
		return !strcmp(tag, "map");
	if (type == KMPKG_YT_SEQ)
		return !strcmp(tag, "seq");
	for (i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
		if (!strcmp(tag, scalars[i].name)) {
			*kind = scalars[i].kind;
			return true;
		}
	}
	return false;
}

static int nomem(void)
{
	return kmpkg_error_set(KMPKG_EGENERIC, "E_NOMEM", NULL, NULL, "out of memory");
}

static size_t hash(const char *s, size_t len)
{
	size_t h = 1469598103934665603ULL, i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* The slot of key (str, len) in map's index: its own or the free one to use. */
static size_t *slot_of(const struct kmpkg_yamltree_node *map, const char *str, size_t len)
{
	size_t i = hash(str, len) & (map->nslots - 1);

	for (;;) {
		size_t *s = &map->slots[i];

		if (*s == 0)
			return s;
		if (map->keys[*s - 1]->len == len && !memcmp(map->keys[*s - 1]->str, str, len))
			return s;
		i = (i + 1) & (map->nslots - 1);
	}
}

/* Looks key up in map's index, and records it there (as pair p->n) when new. */
static int key_index(struct kmpkg_yamltree_node *map, const struct kmpkg_yamltree_node *key,
		     const struct kmpkg_yamltree_node **dup)
{
	size_t *s, i;

	*dup = NULL;
	if ((map->n + 1) * 2 > map->nslots) {
		size_t nslots = map->nslots ? map->nslots * 2 : 16;
		size_t *slots = calloc(nslots, sizeof(*slots));

		if (!slots)
			return nomem();
		free(map->slots);
		map->slots = slots;
		map->nslots = nslots;
		for (i = 0; i < map->n; i++)
			*slot_of(map, map->keys[i]->str, map->keys[i]->len) = i + 1;
	}
	s = slot_of(map, key->str, key->len);
	if (*s) {
		*dup = map->keys[*s - 1];
		return 0;
	}
	*s = map->n + 1; /* valid once attach() stores the key at keys[n] */
	return 0;
}

/*
 * Hangs a new node under the open collection. The node is set up (parent,
 * index) before any check so that a refusal can name its pointer; on failure
 * the caller still owns it.
 */
static int attach(struct builder *bd, struct kmpkg_yamltree_node *node)
{
	struct kmpkg_yamltree_node *p = bd->cur;
	const struct kmpkg_yamltree_node *dup = NULL;
	int err;

	node->parent = p;
	if (!p) {
		bd->t->root = node;
		return 0;
	}
	node->index = p->n;
	if (p->type == KMPKG_YT_MAP && !PENDING(p)) {
		node->is_key = true;
		if (node->type != KMPKG_YT_SCALAR) {
			node->is_key = false;
			node->parent = NULL; /* its pointer would need a key it does not have */
			return refuse(bd, "YAML_KEY_NOT_SCALAR", p, node->line, node->column, "a string key",
				      kmpkg_yamltree_describe(node), "write the key as a plain string",
				      "mapping keys must be scalars");
		}
		if ((err = key_index(p, node, &dup)) != 0)
			return err;
		if (dup) {
			char msg[160];

			snprintf(msg, sizeof(msg), "duplicate key '%.100s' (first at line %d, column %d)",
				 node->str, dup->line, dup->column);
			return refuse(bd, "YAML_DUPLICATE_KEY", node, node->line, node->column, NULL,
				      NULL, "remove one of the two entries", msg);
		}
	}
	if (p->n + 1 >= p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		struct kmpkg_yamltree_node **items = realloc(p->items, cap * sizeof(*items));

		if (!items)
			return nomem();
		p->items = items;
		if (p->type == KMPKG_YT_MAP) {
			struct kmpkg_yamltree_node **keys = realloc(p->keys, cap * sizeof(*keys));

			if (!keys)
				return nomem();
			memset(keys + p->cap, 0, (cap - p->cap) * sizeof(*keys));
			p->keys = keys;
		}
		p->cap = cap;
	}
	if (p->type == KMPKG_YT_SEQ) {
		p->items[p->n++] = node;
	} else if (node->is_key) {
		p->keys[p->n] = node;
	} else {
		p->items[p->n++] = node;
	}
	return 0;
}

static int new_node(struct builder *bd, struct kmpkg_yamltree_node **out, enum kmpkg_yamltree_type type,
		    const yaml_mark_t *mark)
{
	struct kmpkg_yamltree_node *n;

	*out = NULL;
	if (bd->t->nnodes >= bd->lim->max_nodes) {
		char req[64];

		snprintf(req, sizeof(req), "<= %zu nodes", bd->lim->max_nodes);
		return refuse(bd, "YAML_TOO_MANY_NODES", HERE, (int)mark->line + 1, (int)mark->column + 1,
			      req, NULL, "shorten the document", "the document has too many nodes");
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return nomem();
	n->type = type;
	n->line = (int)mark->line + 1;
	n->column = (int)mark->column + 1;
	bd->t->nnodes++;
	*out = n;
	return 0;
}

static int refuse_at_mark(struct builder *bd, const char *code, const yaml_mark_t *mark, const char *next,
			  const char *msg)
{
	return refuse(bd, code, HERE, (int)mark->line + 1, (int)mark->column + 1, NULL, NULL, next, msg);
}

static int on_scalar(struct builder *bd, const yaml_event_t *ev)
{
	struct kmpkg_yamltree_node *n = NULL;
	const char *value = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	enum kmpkg_yamltree_kind kind = KMPKG_YT_STR;
	int err;

	if (ev->data.scalar.anchor)
		return refuse_at_mark(bd, "YAML_ALIAS", &ev->start_mark, "write the value out in full",
				      "anchors and aliases are not allowed");
	if (!tag_ok((const char *)ev->data.scalar.tag, KMPKG_YT_SCALAR, &kind))
		return refuse(bd, "YAML_TAG", HERE, (int)ev->start_mark.line + 1,
			      (int)ev->start_mark.column + 1, "no tag or a standard one (!!str, !!int, ...)",
			      (const char *)ev->data.scalar.tag, "remove the tag", "unsupported tag");
	if (len > bd->lim->max_scalar) {
		char req[64], act[64];

		snprintf(req, sizeof(req), "<= %zu bytes", bd->lim->max_scalar);
		snprintf(act, sizeof(act), "%zu bytes", len);
		return refuse(bd, "YAML_SCALAR_TOO_LONG", HERE, (int)ev->start_mark.line + 1,
			      (int)ev->start_mark.column + 1, req, act, "shorten the value",
			      "scalar value too long");
	}
	if (memchr(value, '\0', len))
		return refuse_at_mark(bd, "YAML_NUL", &ev->start_mark, "remove the NUL character (\\0)",
				      "NUL character in a scalar value");
	if ((err = new_node(bd, &n, KMPKG_YT_SCALAR, &ev->start_mark)) != 0)
		return err;
	n->str = malloc(len + 1);
	if (!n->str) {
		err = nomem();
		goto fail;
	}
	memcpy(n->str, value, len);
	n->str[len] = '\0';
	n->len = len;
	if (!ev->data.scalar.tag)
		kind = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(n->str) : KMPKG_YT_STR;
	n->kind = kind;
	if ((err = attach(bd, n)) != 0)
		goto fail;
	return 0;
fail:
	node_free(n);
	return err;
}

static int on_start(struct builder *bd, const yaml_event_t *ev, enum kmpkg_yamltree_type type)
{
	struct kmpkg_yamltree_node *n = NULL;
	const yaml_char_t *anchor, *tag;
	enum kmpkg_yamltree_kind kind = KMPKG_YT_STR;
	int err;

	if (type == KMPKG_YT_MAP) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	} else {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	}
	if (anchor)
		return refuse_at_mark(bd, "YAML_ALIAS", &ev->start_mark, "write the value out in full",
				      "anchors and aliases are not allowed");
	if (!tag_ok((const char *)tag, type, &kind))
		return refuse(bd, "YAML_TAG", HERE, (int)ev->start_mark.line + 1,
			      (int)ev->start_mark.column + 1, "no tag or a standard one (!!map, !!seq)",
			      (const char *)tag, "remove the tag", "unsupported tag");
	if ((err = new_node(bd, &n, type, &ev->start_mark)) != 0)
		return err;
	if ((err = attach(bd, n)) != 0)
		goto fail;
	if (bd->depth + 1 > bd->lim->max_depth) {
		char req[64];

		snprintf(req, sizeof(req), "<= %zu levels", bd->lim->max_depth);
		/* n is attached: the tree frees it */
		return refuse(bd, "YAML_TOO_DEEP", n, n->line, n->column, req, NULL,
			      "flatten the document", "nesting too deep");
	}
	bd->depth++;
	bd->cur = n;
	return 0;
fail:
	node_free(n); /* attach failed: not in the tree */
	return err;
}

static int syntax_error(struct builder *bd, const yaml_parser_t *p)
{
	char msg[512];
	int line, col;

	if (p->error == YAML_MEMORY_ERROR)
		return nomem();
	if (p->error == YAML_READER_ERROR) {
		offset_pos(bd->data, bd->len, p->problem_offset, &line, &col);
		snprintf(msg, sizeof(msg), "invalid input: %s", p->problem ? p->problem : "unreadable");
	} else {
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		if (p->context)
			snprintf(msg, sizeof(msg), "%s (line %d, column %d): %s", p->context,
				 (int)p->context_mark.line + 1, (int)p->context_mark.column + 1,
				 p->problem ? p->problem : "syntax error");
		else
			snprintf(msg, sizeof(msg), "%s", p->problem ? p->problem : "syntax error");
	}
	return refuse(bd, "YAML_SYNTAX", NULL, line, col, NULL, NULL, "fix the YAML syntax", msg);
}

int kmpkg_yamltree_too_large(const char *file, const char *doc_prefix, size_t size, size_t max,
			     struct kmpkg_diags *d)
{
	char code[64], req[64], act[64];
	int err;

	snprintf(code, sizeof(code), "%s_TOO_LARGE", doc_prefix);
	snprintf(req, sizeof(req), "<= %zu bytes", max);
	snprintf(act, sizeof(act), "%zu bytes", size);
	err = kmpkg_diags_add(d, KMPKG_SEV_ERROR, code, "", file, 1, 1, req, act,
			      "shorten the file (it is read whole and refused above the limit)",
			      "file too large: %zu bytes, the limit is %zu", size, max);
	return err ? err : KMPKG_EUSAGE;
}

int kmpkg_yamltree_parse(struct kmpkg_yamltree **out, const char *file, const char *data, size_t len,
			 const char *doc_prefix, const struct kmpkg_yamltree_limits *limits,
			 struct kmpkg_diags *d)
{
	struct builder bd = { 0 };
	yaml_parser_t parser;
	yaml_event_t ev;
	bool parser_ready = false, done = false;
	const char *nul;
	char code[64];
	int err = 0, line, col;

	*out = NULL;
	bd.file = file;
	bd.prefix = doc_prefix;
	bd.lim = limits ? limits : &default_limits;
	bd.d = d;
	bd.data = data;
	bd.len = len;
	bd.t = calloc(1, sizeof(*bd.t));
	if (!bd.t)
		return nomem();

	if (len > bd.lim->max_bytes) {
		err = kmpkg_yamltree_too_large(file, doc_prefix, len, bd.lim->max_bytes, d);
		goto cleanup;
	}
	/* libyaml would call a raw NUL a reader error; name it plainly. */
	if ((nul = memchr(data, '\0', len)) != NULL) {
		offset_pos(data, len, (size_t)(nul - data), &line, &col);
		err = refuse(&bd, "YAML_NUL", NULL, line, col, NULL, NULL,
			     "remove the NUL byte (is this a YAML text file?)", "NUL byte in the input");
		goto cleanup;
	}
	if (!yaml_parser_initialize(&parser)) {
		err = nomem();
		goto cleanup;
	}
	parser_ready = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	while (!done && !err) {
		if (!yaml_parser_parse(&parser, &ev)) {
			err = syntax_error(&bd, &parser);
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (bd.docs++ > 0)
				err = refuse(&bd, "YAML_MULTIPLE_DOCUMENTS", NULL, (int)ev.start_mark.line + 1,
					     (int)ev.start_mark.column + 1, "one document", NULL,
					     "keep one document per file (remove the second '---')",
					     "more than one YAML document");
			break;
		case YAML_ALIAS_EVENT:
			err = refuse_at_mark(&bd, "YAML_ALIAS", &ev.start_mark, "write the value out in full",
					     "anchors and aliases are not allowed");
			break;
		case YAML_SCALAR_EVENT:
			err = on_scalar(&bd, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			err = on_start(&bd, &ev, KMPKG_YT_SEQ);
			break;
		case YAML_MAPPING_START_EVENT:
			err = on_start(&bd, &ev, KMPKG_YT_MAP);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			bd.cur = bd.cur ? bd.cur->parent : NULL;
			bd.depth--;
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	if (!err && !bd.t->root) {
		snprintf(code, sizeof(code), "%s_EMPTY", doc_prefix);
		err = refuse(&bd, code, NULL, 1, 1, NULL, NULL, "write the document",
			     "the document is empty");
	}

cleanup:
	if (parser_ready)
		yaml_parser_delete(&parser);
	if (err) {
		kmpkg_yamltree_free(bd.t);
		return err;
	}
	*out = bd.t;
	return 0;
}

struct kmpkg_yamltree_node *kmpkg_yamltree_get(const struct kmpkg_yamltree_node *map, const char *key)
{
	size_t i, len = strlen(key);

	if (!map || map->type != KMPKG_YT_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (map->keys[i]->len == len && !memcmp(map->keys[i]->str, key, len))
			return map->items[i];
	return NULL;
}

const struct kmpkg_yamltree_node *kmpkg_yamltree_find(const struct kmpkg_yamltree_node *root,
						      const char *pointer, bool *exact)
{
	const struct kmpkg_yamltree_node *cur = root;
	struct kmpkg_buf seg = KMPKG_BUF_INIT;
	const char *p = pointer;

	*exact = false;
	if (!root)
		return NULL;
	while (*p == '/') {
		const char *end = strchr(p + 1, '/');
		size_t n = end ? (size_t)(end - p - 1) : strlen(p + 1), i;
		const struct kmpkg_yamltree_node *next = NULL;

		kmpkg_buf_clear(&seg);
		for (i = 0; i < n; i++) {
			char c = p[1 + i];

			if (c == '~' && i + 1 < n && (p[2 + i] == '0' || p[2 + i] == '1')) {
				c = p[2 + i] == '0' ? '~' : '/';
				i++;
			}
			if (kmpkg_buf_put(&seg, &c, 1) != 0)
				goto out;
		}
		if (cur->type == KMPKG_YT_MAP) {
			next = kmpkg_yamltree_get(cur, seg.ptr ? seg.ptr : "");
		} else if (cur->type == KMPKG_YT_SEQ && seg.len > 0 &&
			   strspn(seg.ptr, "0123456789") == seg.len) {
			unsigned long long idx = strtoull(seg.ptr, NULL, 10);

			if (idx < cur->n)
				next = cur->items[idx];
		}
		if (!next)
			goto out;
		cur = next;
		p += 1 + n;
	}
	*exact = *p == '\0';
out:
	kmpkg_buf_release(&seg);
	return cur;
}

const char *kmpkg_yamltree_describe(const struct kmpkg_yamltree_node *node)
{
	if (node->type == KMPKG_YT_MAP)
		return "mapping";
	if (node->type == KMPKG_YT_SEQ)
		return "sequence";
	switch (node->kind) {
	case KMPKG_YT_INT: return "integer";
	case KMPKG_YT_FLOAT: return "float";
	case KMPKG_YT_BOOL: return "boolean";
	case KMPKG_YT_NULL: return "null";
	default: return "string";
	}
}

int kmpkg_yamltree_read_file(char **out, size_t *len, size_t *total, const char *path, size_t max)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd = -1, err = 0;

	*out = NULL;
	*len = *total = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			err = kmpkg_error_set(KMPKG_ENOTFOUND, "E_NOT_FOUND", NULL, "check the path",
					      "%s: no such file", path);
		else
			err = kmpkg_error_errno(errno, "open", path);
		goto cleanup;
	}
	if (fstat(fd, &st) != 0) {
		err = kmpkg_error_errno(errno, "stat", path);
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		err = kmpkg_error_set(KMPKG_ERESOURCE, "E_IO", NULL, "name a file, not a directory",
				      "%s: is a directory", path);
		goto cleanup;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		*total = (size_t)st.st_size;
		goto cleanup;
	}
	data = malloc(max + 2);
	if (!data) {
		err = nomem();
		goto cleanup;
	}
	/* Bounded even for FIFOs and devices: one byte past the limit is enough. */
	while (got <= max) {
		ssize_t r = read(fd, data + got, max + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			struct pollfd pfd = { fd, POLLIN, 0 };

			poll(&pfd, 1, -1);
			continue;
		}
		if (r < 0) {
			err = kmpkg_error_errno(errno, "read", path);
			goto cleanup;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*total = got;
	if (got > max)
		goto cleanup;
	data[got] = '\0';
	*out = data;
	*len = got;
	data = NULL;
cleanup:
	free(data);
	if (fd >= 0)
		close(fd);
	return err;
}
