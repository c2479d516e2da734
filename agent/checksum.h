/* SPDX-License-Identifier: Apache-2.0 */
/* Expected checksums: "sha512:<hex>" / "sha256:<hex>" strings and Harvester's checksum lists. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum checksum_algo {
        CHECKSUM_SHA256,
        CHECKSUM_SHA512,
};

#define CHECKSUM_HEX_MAX 128

struct checksum {
        enum checksum_algo algo;
        char hex[CHECKSUM_HEX_MAX + 1]; /* lowercase */
};

/* "sha256" / "sha512" (also the OpenSSL digest name). */
const char *checksum_algo_name(enum checksum_algo a);
/* Length of the hex digest: 64 / 128. */
size_t checksum_algo_hex_len(enum checksum_algo a);

/* Parses "sha512:<128 hex>" or "sha256:<64 hex>" (prefix and hex in any case, surrounding white
 * space ignored). 0 or -EINVAL (unknown algorithm, wrong length, not hex). */
int checksum_parse(const char *s, struct checksum *ret);

/*
 * Finds the entry for filename in a checksum list as Harvester releases publish it (the output of
 * sha512sum/sha256sum: "<hex>  <name>" or "<hex> *<name>" lines; BSD-style "SHA512 (<name>) = <hex>"
 * lines are understood too; blank lines and "#" comments are skipped). Names are compared by their
 * last path component, so "./dist/x.iso" matches "x.iso". The algorithm follows the hex length
 * (128: SHA-512, 64: SHA-256); when a file is listed with both, SHA-512 wins.
 * 0, -ENOENT (not listed), -EINVAL (the line for filename has a malformed digest), -ENOTUNIQ (listed
 * twice with different digests of the same algorithm).
 */
int checksum_list_find(const char *text, const char *filename, struct checksum *ret);

/* "sha512:<hex>" in a new string, NULL on allocation failure. */
char *checksum_format(const struct checksum *c);
/* The digest of a buffer in memory (the configuration pinned by install.config_checksum). 0 or -EIO. */
int checksum_compute(enum checksum_algo algo, const void *data, size_t len, struct checksum *ret);
bool checksum_equal(const struct checksum *a, const struct checksum *b);

/* The file name a URL points at: the last component of its path, percent-decoded, without query or
 * fragment ("https://h/r/v1.1.2/harvester-v1.1.2-amd64.iso?x=1" -> "harvester-v1.1.2-amd64.iso").
 * 0, -EINVAL (not a URL, or its path ends in "/"), -ENOMEM. */
int checksum_url_filename(const char *url, char **ret);
