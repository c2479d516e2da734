/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>

#include "template.h"

/* The templates of agent/templates/, generated into the build by agent/templates/embed.py. */
struct tmpl_builtin_file {
        const char *name;
        const char *text;
};
extern const struct tmpl_builtin_file tmpl_builtin_files[];
extern const size_t tmpl_builtin_count;

const char *tmpl_builtin(const char *name) {
        for (size_t i = 0; i < tmpl_builtin_count; i++)
                if (streq(tmpl_builtin_files[i].name, name))
                        return tmpl_builtin_files[i].text;
        return NULL;
}

/* ---- Splitting the template into text and actions ---- */

enum kind { K_TEXT, K_OUT, K_IF, K_ELSE, K_END, K_RANGE };

struct tok {
        enum kind kind;
        const char *s; /* text, or the action's words (keyword removed) */
        size_t n;
        size_t other, end; /* if/range: index of its else (or end) and of its end */
};

struct ctx {
        const struct tmpl_var *vars;
        size_t n_vars;
        unsigned flags;
        FILE *out;
        const char *err;
        struct {
                const char *name; /* without '$' */
                size_t len;
                const char *s;
        } bound[16];
        size_t n_bound;
};

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool word_is(const char *s, size_t n, const char *w) {
        size_t l = strlen(w);
        return n >= l && memcmp(s, w, l) == 0 && (n == l || is_space(s[l]));
}

static int tok_push(struct tok **t, size_t *n, size_t *alloc, struct tok x) {
        if (*n == *alloc) {
                size_t a = *alloc ? *alloc * 2 : 32;
                struct tok *m = reallocarray(*t, a, sizeof **t);
                if (!m)
                        return -ENOMEM;
                *t = m;
                *alloc = a;
        }
        (*t)[(*n)++] = x;
        return 0;
}

static int tokenize(struct ctx *x, const char *tmpl, struct tok **ret, size_t *ret_n) {
        _cleanup_free_ struct tok *t = NULL;
        size_t n = 0, alloc = 0, stack[32], depth = 0;
        const char *p = tmpl;
        bool trim_next = false;
        int r;

        for (;;) {
                const char *open = strstr(p, "{{");
                const char *text_end = open ? open : p + strlen(p);
                if (trim_next)
                        while (p < text_end && is_space(*p))
                                p++;
                trim_next = false;

                /* "{{- " trims the white space before the action. */
                const char *a = open ? open + 2 : NULL;
                const char *keep_end = text_end;
                if (a && a[0] == '-' && is_space(a[1])) {
                        while (keep_end > p && is_space(keep_end[-1]))
                                keep_end--;
                        a += 2;
                }
                if (keep_end > p) {
                        r = tok_push(&t, &n, &alloc, (struct tok) { K_TEXT, p, (size_t)(keep_end - p) });
                        if (r < 0)
                                return r;
                }
                if (!open)
                        break;

                const char *close = strstr(a, "}}");
                if (!close) {
                        x->err = "\"{{\" without a closing \"}}\"";
                        return -EINVAL;
                }
                const char *e = close;
                if (e - a >= 2 && e[-1] == '-' && is_space(e[-2])) {
                        trim_next = true;
                        e -= 2;
                }
                while (a < e && is_space(*a))
                        a++;
                while (e > a && is_space(e[-1]))
                        e--;
                p = close + 2;

                size_t len = (size_t)(e - a);
                if (len >= 4 && a[0] == '/' && a[1] == '*' && e[-2] == '*' && e[-1] == '/')
                        continue; /* a comment */

                struct tok k = { K_OUT, a, len };
                static const struct {
                        const char *word;
                        enum kind kind;
                } keywords[] = { { "if", K_IF }, { "else", K_ELSE }, { "end", K_END }, { "range", K_RANGE } };
                for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                        if (word_is(a, len, keywords[i].word)) {
                                size_t wl = strlen(keywords[i].word);
                                k = (struct tok) { keywords[i].kind, a + wl, len - wl };
                                while (k.n > 0 && is_space(*k.s)) {
                                        k.s++;
                                        k.n--;
                                }
                                break;
                        }
                if (k.kind != K_OUT && !(x->flags & TMPL_ACTIONS)) {
                        x->err = "only {{.Field}} actions are supported here";
                        return -EINVAL;
                }
                if ((k.kind == K_ELSE || k.kind == K_END) && k.n > 0) {
                        x->err = "{{else}} and {{end}} take nothing after them";
                        return -EINVAL;
                }
                if (k.kind == K_IF || k.kind == K_RANGE) {
                        if (depth == ELEMENTSOF(stack)) {
                                x->err = "if/range nested too deeply";
                                return -EINVAL;
                        }
                        stack[depth++] = n;
                } else if (k.kind == K_ELSE) {
                        if (depth == 0 || t[stack[depth - 1]].other) {
                                x->err = "{{else}} outside an {{if}} or {{range}}";
                                return -EINVAL;
                        }
                        t[stack[depth - 1]].other = n;
                } else if (k.kind == K_END) {
                        if (depth == 0) {
                                x->err = "{{end}} without an {{if}} or {{range}}";
                                return -EINVAL;
                        }
                        struct tok *o = &t[stack[--depth]];
                        if (!o->other)
                                o->other = n;
                        o->end = n;
                }
                r = tok_push(&t, &n, &alloc, k);
                if (r < 0)
                        return r;
        }
        if (depth > 0) {
                x->err = "an {{if}} or {{range}} without its {{end}}";
                return -EINVAL;
        }
        *ret = TAKE_PTR(t);
        *ret_n = n;
        return 0;
}

/* ---- Pipelines ---- */

enum lt { L_END, L_FIELD, L_VAR, L_STR, L_IDENT, L_PIPE, L_COMMA, L_DECL, L_BAD };

struct lex {
        const char *p, *e;
        const char *s; /* the token's text: name without '.' or '$', string contents with quotes */
        size_t n;
};

static bool ident_char(char c) {
        return isalnum((unsigned char)c) || c == '_';
}

static enum lt lex_next(struct lex *l) {
        while (l->p < l->e && is_space(*l->p))
                l->p++;
        if (l->p >= l->e)
                return L_END;
        const char *s = l->p;
        if (*s == '|' || *s == ',') {
                l->p++;
                return *s == '|' ? L_PIPE : L_COMMA;
        }
        if (*s == ':' && s + 1 < l->e && s[1] == '=') {
                l->p += 2;
                return L_DECL;
        }
        if (*s == '"') {
                const char *q = s + 1;
                while (q < l->e && *q != '"') {
                        if (*q == '\\')
                                q++;
                        q++;
                }
                if (q >= l->e)
                        return L_BAD;
                l->s = s + 1;
                l->n = (size_t)(q - s - 1);
                l->p = q + 1;
                return L_STR;
        }
        enum lt kind = *s == '.' ? L_FIELD : *s == '$' ? L_VAR : L_IDENT;
        const char *q = kind == L_IDENT ? s : s + 1;
        const char *start = q;
        while (q < l->e && ident_char(*q))
                q++;
        if (q == start || (kind != L_FIELD && isdigit((unsigned char)*start)) ||
            (q < l->e && !is_space(*q) && !strchr("|,:", *q)))
                return L_BAD;
        l->s = start;
        l->n = (size_t)(q - start);
        l->p = q;
        return kind;
}

/* A value: a string (maybe owned) or a map. */
struct val {
        const char *s;
        const struct kvmap *map;
        char *owned;
};

static void val_done(struct val *v) {
        free(v->owned);
        *v = (struct val) {};
}

static void val_set_owned(struct val *v, char *s) {
        val_done(v);
        v->owned = s;
        v->s = s;
}

static int unquote(struct ctx *x, const char *s, size_t n, struct val *ret) {
        char *o = malloc(n + 1), *w = o;
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '\\') {
                        c = s[++i];
                        c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                        if (!strchr("\n\t\\\"", c)) {
                                free(o);
                                x->err = "only \\n, \\t, \\\\ and \\\" escapes in a string constant";
                                return -EINVAL;
                        }
                }
                *w++ = c;
        }
        *w = 0;
        val_set_owned(ret, o);
        return 0;
}

static int operand(struct ctx *x, enum lt t, struct lex *l, struct val *ret) {
        *ret = (struct val) {};
        if (t == L_STR) {
                if (!(x->flags & TMPL_ACTIONS)) {
                        x->err = "only {{.Field}} actions are supported here";
                        return -EINVAL;
                }
                return unquote(x, l->s, l->n, ret);
        }
        if (t == L_VAR) {
                for (size_t i = x->n_bound; i-- > 0;)
                        if (x->bound[i].len == l->n && memcmp(x->bound[i].name, l->s, l->n) == 0) {
                                ret->s = x->bound[i].s;
                                return 0;
                        }
                x->err = "a $variable that no {{range}} declares";
                return -EINVAL;
        }
        if (t == L_FIELD) {
                for (size_t i = 0; i < x->n_vars; i++)
                        if (strlen(x->vars[i].name) == l->n && memcmp(x->vars[i].name, l->s, l->n) == 0) {
                                ret->s = x->vars[i].str;
                                ret->map = x->vars[i].map;
                                return 0;
                        }
                if (x->flags & TMPL_STRICT) {
                        x->err = "a field the template's data does not have";
                        return -EINVAL;
                }
                return 0; /* missingkey=zero */
        }
        x->err = "expected a .Field, a $variable or a string";
        return -EINVAL;
}

/* Go's printf with %s and %% only, one argument per %s. */
static int do_printf(struct ctx *x, const char *fmt, struct val *args, size_t n_args, struct val *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, used = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (const char *p = fmt; *p; p++) {
                if (*p != '%') {
                        fputc(*p, f);
                        continue;
                }
                p++;
                if (*p == '%')
                        fputc('%', f);
                else if (*p == 's' && used < n_args && !args[used].map)
                        fputs(strempty(args[used++].s), f);
                else {
                        fclose(f);
                        x->err = "printf: only %s (one string argument each) and %%";
                        return -EINVAL;
                }
        }
        if (used != n_args) {
                fclose(f);
                x->err = "printf: more arguments than %s";
                return -EINVAL;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        val_set_owned(ret, TAKE_PTR(buf));
        return 0;
}

static int do_yaml(struct ctx *x, struct val *v) {
        if (v->map || !utf8_valid(strempty(v->s))) {
                x->err = v->map ? "yaml: a map is not a string" : "yaml: a value that is not valid UTF-8";
                return -EINVAL;
        }
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fputs_quoted(f, strempty(v->s));
        if (fclose(f) != 0)
                return -ENOMEM;
        val_set_owned(v, TAKE_PTR(buf));
        return 0;
}

/* printf "fmt" [operands...] [piped value]: the lexer sits after "printf". */
static int call_printf(struct ctx *x, struct lex *l, struct val *piped, enum lt *next, struct val *ret) {
        struct val fmt = {}, args[8] = {};
        size_t n = 0;
        int r;
        enum lt t = lex_next(l);
        if (t != L_STR) {
                x->err = "printf needs a format string";
                return -EINVAL;
        }
        r = unquote(x, l->s, l->n, &fmt);
        while (r >= 0 && (t = lex_next(l)) != L_END && t != L_PIPE) {
                if (n == ELEMENTSOF(args) - 1) {
                        x->err = "printf: too many arguments";
                        r = -EINVAL;
                        break;
                }
                r = operand(x, t, l, &args[n]);
                if (r >= 0)
                        n++;
        }
        if (r >= 0 && piped) {
                args[n++] = *piped;
                *piped = (struct val) {};
        }
        if (r >= 0)
                r = do_printf(x, fmt.s, args, n, ret);
        val_done(&fmt);
        for (size_t i = 0; i < n; i++)
                val_done(&args[i]);
        *next = t;
        return r;
}

static int pipeline(struct ctx *x, const char *s, size_t n, struct val *ret) {
        struct lex l = { s, s + n };
        struct val v = {};
        int r;
        enum lt t = lex_next(&l);

        if (t == L_IDENT && l.n == 6 && memcmp(l.s, "printf", 6) == 0 && (x->flags & TMPL_ACTIONS))
                r = call_printf(x, &l, NULL, &t, &v);
        else if (t == L_FIELD || t == L_VAR || t == L_STR) {
                r = operand(x, t, &l, &v);
                t = lex_next(&l);
        } else {
                x->err = t == L_END ? "an empty action" : "only {{.Field}} actions are supported here";
                return -EINVAL;
        }
        while (r >= 0 && t == L_PIPE) {
                if (!(x->flags & TMPL_ACTIONS)) {
                        x->err = "only {{.Field}} actions are supported here";
                        r = -EINVAL;
                        break;
                }
                t = lex_next(&l);
                if (t == L_IDENT && l.n == 4 && memcmp(l.s, "yaml", 4) == 0) {
                        r = do_yaml(x, &v);
                        t = lex_next(&l);
                } else if (t == L_IDENT && l.n == 6 && memcmp(l.s, "printf", 6) == 0) {
                        struct val out = {};
                        r = call_printf(x, &l, &v, &t, &out);
                        val_done(&v);
                        v = out;
                } else {
                        x->err = "only the functions yaml and printf";
                        r = -EINVAL;
                }
        }
        if (r >= 0 && t != L_END) {
                x->err = "unexpected words in an action";
                r = -EINVAL;
        }
        if (r < 0) {
                val_done(&v);
                return r;
        }
        *ret = v;
        return 0;
}

/* ---- Execution ---- */

static bool truthy(const struct val *v) {
        return v->map ? v->map->n > 0 : !isempty(v->s);
}

static int exec(struct ctx *x, const struct tok *t, size_t from, size_t to);

static int cmp_kv_ptr(const void *a, const void *b) {
        return strcmp((*(const struct kv *const *)a)->key, (*(const struct kv *const *)b)->key);
}

static int range_syntax_error(struct ctx *x) {
        x->err = "range must read {{range $key, $value := .Map}}";
        return -EINVAL;
}

/* range $k, $v := PIPELINE */
static int exec_range(struct ctx *x, const struct tok *t, size_t i) {
        struct lex l = { t[i].s, t[i].s + t[i].n };
        const char *kn, *vn;
        size_t kl, vl;
        if (lex_next(&l) != L_VAR)
                return range_syntax_error(x);
        kn = l.s, kl = l.n;
        if (lex_next(&l) != L_COMMA || lex_next(&l) != L_VAR)
                return range_syntax_error(x);
        vn = l.s, vl = l.n;
        if (lex_next(&l) != L_DECL)
                return range_syntax_error(x);

        struct val v = {};
        int r = pipeline(x, l.p, (size_t)(l.e - l.p), &v);
        if (r < 0)
                return r;
        if (!v.map && !isempty(v.s)) {
                val_done(&v);
                x->err = "range over a value that is not a map";
                return -EINVAL;
        }
        if (x->n_bound + 2 > ELEMENTSOF(x->bound)) {
                val_done(&v);
                x->err = "range nested too deeply";
                return -EINVAL;
        }
        size_t items = v.map ? v.map->n : 0;
        if (items == 0) {
                val_done(&v);
                if (t[i].other != t[i].end)
                        return exec(x, t, t[i].other + 1, t[i].end); /* {{range}}..{{else}}..{{end}} */
                return 0;
        }
        /* Go ranges over a map in key order. */
        _cleanup_free_ const struct kv **sorted = calloc(items, sizeof *sorted);
        if (!sorted) {
                val_done(&v);
                return -ENOMEM;
        }
        for (size_t k = 0; k < items; k++)
                sorted[k] = &v.map->items[k];
        qsort(sorted, items, sizeof *sorted, cmp_kv_ptr);
        for (size_t k = 0; k < items && r >= 0; k++) {
                size_t b = x->n_bound;
                x->bound[b].name = kn, x->bound[b].len = kl, x->bound[b].s = sorted[k]->key;
                x->bound[b + 1].name = vn, x->bound[b + 1].len = vl, x->bound[b + 1].s = sorted[k]->value;
                x->n_bound += 2;
                r = exec(x, t, i + 1, t[i].other);
                x->n_bound -= 2;
        }
        val_done(&v);
        return r;
}

static int exec(struct ctx *x, const struct tok *t, size_t from, size_t to) {
        int r;
        for (size_t i = from; i < to; i++) {
                struct val v = {};
                switch (t[i].kind) {
                case K_TEXT:
                        fwrite(t[i].s, 1, t[i].n, x->out);
                        break;
                case K_OUT:
                        r = pipeline(x, t[i].s, t[i].n, &v);
                        if (r < 0)
                                return r;
                        if (v.map) {
                                val_done(&v);
                                x->err = "a map cannot be printed";
                                return -EINVAL;
                        }
                        fputs(strempty(v.s), x->out);
                        val_done(&v);
                        break;
                case K_IF:
                        r = pipeline(x, t[i].s, t[i].n, &v);
                        if (r < 0)
                                return r;
                        bool yes = truthy(&v);
                        val_done(&v);
                        if (yes)
                                r = exec(x, t, i + 1, t[i].other);
                        else if (t[i].other != t[i].end)
                                r = exec(x, t, t[i].other + 1, t[i].end);
                        if (r < 0)
                                return r;
                        i = t[i].end;
                        break;
                case K_RANGE:
                        r = exec_range(x, t, i);
                        if (r < 0)
                                return r;
                        i = t[i].end;
                        break;
                case K_ELSE:
                case K_END:
                        /* only reached through the indexes above */
                        break;
                }
        }
        return 0;
}

int tmpl_render(const char *tmpl, const struct tmpl_var *vars, size_t n, unsigned flags, char **ret,
                const char **ret_error) {
        struct ctx x = { .vars = vars, .n_vars = n, .flags = flags };
        _cleanup_free_ struct tok *toks = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t n_toks = 0, len = 0;
        int r;

        r = tokenize(&x, strempty(tmpl), &toks, &n_toks);
        if (r >= 0) {
                x.out = open_memstream(&buf, &len);
                if (!x.out)
                        return -ENOMEM;
                r = exec(&x, toks, 0, n_toks);
                bool failed = ferror(x.out);
                if (fclose(x.out) != 0 || failed)
                        r = r < 0 ? r : -ENOMEM;
        }
        if (r < 0) {
                if (r == -EINVAL && ret_error)
                        *ret_error = x.err ?: "invalid template";
                return r;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}
