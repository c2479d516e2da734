/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation of the effective configuration: every rule that can be checked without the machine
 * (Harvester v1.1's own rules, REFERENCE.md section 2, plus ours). Machine checks (the disk exists
 * and is large enough, the interfaces exist) belong to the stages that use them.
 */
#pragma once

#include <stdbool.h>

#include "config.h"
struct diags;

/* Adds one problem per broken rule to d, each with its key path and where it was set. 0 or -ENOMEM. */
int config_validate(const struct config *c, struct diags *d);

/* Syntax checks shared with the parsers. */
bool valid_mac(const char *s);          /* aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff, hex, any case */
bool valid_ipv4(const char *s);         /* dotted quad, no leading zeros, no spaces */
bool valid_ip(const char *s);           /* IPv4 or IPv6 */
/* Letters, digits, '.', '_', '-' and the characters of extra; not empty: what the node's shell-read
 * files (ifcfg, sed expressions, modprobe lines) can hold unquoted. */
bool valid_word(const char *s, const char *extra);
bool valid_ifname(const char *s);       /* 1-15 of letters, digits, '.', '_', '-', '@'; not "." or ".." */
bool valid_console_name(const char *s); /* [/dev/]ttyS0,115200n8: letters, digits, ".,_-" */
/* A crypt(3) hash of a method the installed OS supports, well formed: SHA-512 ($6$) or SHA-256
 * ($5$) crypt (optional rounds=N$, salt 1-16, hash 86 or 43), yescrypt ($y$), bcrypt ($2b$, $2a$,
 * $2y$, cost 04-31). Anything else given as os.password is clear text. */
bool valid_crypt_hash(const char *s);

/* os.additional_kernel_arguments: at most this many bytes. */
#define KERNEL_ARGS_MAX 1024
/* What GRUB's script parser or the kernel line cannot take in kernel arguments (static text that
 * completes "os.additional_kernel_arguments ..."), or NULL: control characters, characters GRUB
 * expands or treats as syntax, single quotes, an unbalanced double quote, more than KERNEL_ARGS_MAX. */
const char *kernel_args_problem(const char *s);

/* The node's cloud-config holds at most 64 files: the agent's own (at most 15), one per management
 * interface and the os.write_files (tests/config/test-dryrun.c renders the largest). */
#define CONFIG_MAX_WRITE_FILES 40
#define CONFIG_MAX_INTERFACES 8
bool valid_dns1123_subdomain(const char *s);
bool valid_label_key(const char *s);    /* [prefix/]name, as Kubernetes */
bool valid_label_value(const char *s);
bool valid_token(const char *s);        /* letters, digits, space and OWASP special characters */
bool valid_octal_mode(const char *s);   /* "644", "0644", "0755", "1777": at most 07777 */
bool valid_checksum(const char *s);     /* sha512:<128 hex> or sha256:<64 hex> */
bool valid_cidr4(const char *s);        /* a.b.c.d/n */
/* http:// or https:// with a host, or file:// (allow_file). */
bool valid_url(const char *s, bool allow_file);

/*
 * Normalises server_url as Harvester does: "10.0.0.1" -> "https://10.0.0.1:443"; "https://h"
 * -> "https://h:443"; a trailing "/" is dropped. Other ports, paths, queries and non-https schemes
 * are refused: *ret_error (static text) says why and -EINVAL is returned. 0, -EINVAL or -ENOMEM.
 */
int normalize_server_url(const char *in, char **ret, const char **ret_error);

/* persistent_partition_size: a positive number with the unit Mi or Gi ("150Gi"), in bytes.
 * 0 or -EINVAL/-ERANGE. */
int parse_partition_size(const char *s, uint64_t *ret);
