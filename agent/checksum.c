/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <strings.h>

#include "checksum.h"
#include "util.h"

const char *checksum_algo_name(enum checksum_algo a) {
        return a == CHECKSUM_SHA256 ? "sha256" : "sha512";
}

size_t checksum_algo_hex_len(enum checksum_algo a) {
        return a == CHECKSUM_SHA256 ? 64 : 128;
}

static int algo_from_hex_len(size_t len, enum checksum_algo *ret) {
        if (len == 128)
                *ret = CHECKSUM_SHA512;
        else if (len == 64)
                *ret = CHECKSUM_SHA256;
        else
                return -EINVAL;
        return 0;
}

static bool is_hex(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

/* Stores len hex characters from s, lowercased, when they form a digest of a known length. */
static int set_hex(struct checksum *c, const char *s, size_t len) {
        enum checksum_algo a;
        if (algo_from_hex_len(len, &a) < 0 || !is_hex(s, len))
                return -EINVAL;
        c->algo = a;
        for (size_t i = 0; i < len; i++)
                c->hex[i] = (char)tolower((unsigned char)s[i]);
        c->hex[len] = 0;
        return 0;
}

int checksum_parse(const char *s, struct checksum *ret) {
        if (!s)
                return -EINVAL;
        while (isspace((unsigned char)*s))
                s++;
        size_t len = strlen(s);
        while (len > 0 && isspace((unsigned char)s[len - 1]))
                len--;

        static const struct {
                const char *prefix;
                enum checksum_algo algo;
        } table[] = { { "sha512:", CHECKSUM_SHA512 }, { "sha256:", CHECKSUM_SHA256 } };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                size_t k = strlen(table[i].prefix);
                if (len < k || strncasecmp(s, table[i].prefix, k) != 0)
                        continue;
                struct checksum c;
                if (set_hex(&c, s + k, len - k) < 0 || c.algo != table[i].algo)
                        return -EINVAL;
                *ret = c;
                return 0;
        }
        return -EINVAL;
}

static const char *last_component(const char *name, size_t len, size_t *ret_len) {
        const char *b = name;
        for (size_t i = 0; i < len; i++)
                if (name[i] == '/')
                        b = name + i + 1;
        *ret_len = len - (size_t)(b - name);
        return b;
}

/* Splits one line into digest and name. Returns 0 and sets the pointers, or -EINVAL when the line
 * is neither "<hex> [ *]<name>" nor "ALGO (<name>) = <hex>". */
static int split_line(const char *line, size_t len, const char **hex, size_t *hex_len,
                      const char **name, size_t *name_len) {
        size_t i = 0;
        while (i < len && !isspace((unsigned char)line[i]))
                i++;
        if (i == 0 || i == len)
                return -EINVAL;

        /* BSD style: "SHA512 (name) = hex": a word that is not a digest, then " (". */
        if (i + 1 < len && line[i] == ' ' && line[i + 1] == '(' && !is_hex(line, i)) {
                size_t open = i + 1; /* the '(' */
                for (size_t k = len >= 4 ? len - 4 : 0; k > open; k--)
                        if (memcmp(line + k, ") = ", 4) == 0) {
                                *name = line + open + 1;
                                *name_len = k - open - 1;
                                *hex = line + k + 4;
                                *hex_len = len - k - 4;
                                return *name_len > 0 ? 0 : -EINVAL;
                        }
                return -EINVAL;
        }

        /* GNU style: "hex  name" (text mode) or "hex *name" (binary mode). */
        *hex = line;
        *hex_len = i;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
        if (i < len && line[i] == '*')
                i++;
        if (i == len)
                return -EINVAL;
        *name = line + i;
        *name_len = len - i;
        return 0;
}

int checksum_list_find(const char *text, const char *filename, struct checksum *ret) {
        struct checksum found[2] = {}; /* by algorithm */
        bool have[2] = {}, conflict[2] = {}, malformed = false;
        size_t want_len;
        const char *want = last_component(filename, strlen(filename), &want_len);

        for (const char *line = text; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                const char *next = nl ? nl + 1 : NULL;

                while (len > 0 && isspace((unsigned char)line[len - 1]))
                        len--;
                while (len > 0 && isspace((unsigned char)*line)) {
                        line++;
                        len--;
                }
                const char *hex, *name;
                size_t hex_len, name_len, base_len;
                if (len == 0 || line[0] == '#' ||
                    split_line(line, len, &hex, &hex_len, &name, &name_len) < 0) {
                        line = next;
                        continue;
                }
                const char *base = last_component(name, name_len, &base_len);
                if (base_len != want_len || memcmp(base, want, want_len) != 0) {
                        line = next;
                        continue;
                }
                struct checksum c;
                if (set_hex(&c, hex, hex_len) < 0) {
                        malformed = true;
                        line = next;
                        continue;
                }
                if (have[c.algo] && !checksum_equal(&found[c.algo], &c))
                        conflict[c.algo] = true;
                found[c.algo] = c;
                have[c.algo] = true;
                line = next;
        }

        for (int a = CHECKSUM_SHA512; a >= CHECKSUM_SHA256; a--) {
                if (!have[a])
                        continue;
                if (conflict[a])
                        return -ENOTUNIQ;
                *ret = found[a];
                return 0;
        }
        return malformed ? -EINVAL : -ENOENT;
}

char *checksum_format(const struct checksum *c) {
        return strdup_printf("%s:%s", checksum_algo_name(c->algo), c->hex);
}

bool checksum_equal(const struct checksum *a, const struct checksum *b) {
        return a->algo == b->algo && strcasecmp(a->hex, b->hex) == 0;
}

static void curl_urlp(CURLU **u) {
        if (*u)
                curl_url_cleanup(*u);
}

int checksum_url_filename(const char *url, char **ret) {
        __attribute__((cleanup(curl_urlp))) CURLU *u = curl_url();
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
                return -EINVAL;
        char *path = NULL;
        CURLUcode rc = curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
        if (rc == CURLUE_OUT_OF_MEMORY)
                return -ENOMEM;
        if (rc != CURLUE_OK || !path)
                return -EINVAL;
        size_t len, n = strlen(path);
        const char *base = last_component(path, n, &len);
        char *r = len > 0 && !memchr(base, 0, len) ? strndup(base, len) : NULL;
        int e = len == 0 ? -EINVAL : r ? 0 : -ENOMEM;
        curl_free(path);
        if (e < 0)
                return e;
        *ret = r;
        return 0;
}

int checksum_compute(enum checksum_algo algo, const void *data, size_t len, struct checksum *ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        const EVP_MD *type = algo == CHECKSUM_SHA256 ? EVP_sha256() : EVP_sha512();
        if (EVP_Digest(data, len, md, &n, type, NULL) != 1)
                return -EIO;
        ret->algo = algo;
        for (unsigned i = 0; i < n; i++)
                snprintf(ret->hex + 2 * i, 3, "%02x", md[i]);
        return 0;
}
