/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The effective configuration: the harvester.* kernel arguments over the YAML file at
 * install.config_url (or --config FILE), merged, bound to this struct, normalised and validated.
 * Every later stage reads only this struct. Keys are Harvester's scheme_version 1 schema
 * (docs: README.md "Configuration keys"); strings are NULL when not given, strvs are
 * NULL-terminated (NULL when empty), kvmaps keep insertion order.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "node.h"
#include "util.h"

struct net_interface {
        char *name;
        char *hw_addr;
};

struct mgmt_interface {
        struct net_interface *interfaces;
        size_t n_interfaces;
        char *method;             /* "dhcp" | "static" (lowercased); default "dhcp" */
        char *ip;
        char *subnet_mask;
        char *gateway;
        struct kvmap bond_options; /* default: mode=active-backup, miimon=100 */
        int64_t mtu;              /* 0 = unset, else 576..9000 */
        int64_t vlan_id;          /* 0/1 untagged, up to 4094 */
        bool default_route;       /* accepted for compatibility; has no effect (as in v1.1) */
};

struct write_file {
        char *path;
        char *content;
        char *encoding;
        char *owner;
        char *permissions; /* octal string, e.g. "0644" */
};

struct header {
        char *key;
        char **values;
};

struct webhook {
        char *event;  /* STARTED | SUCCEEDED | FAILED */
        char *method; /* uppercased; default GET */
        char *url;    /* template: {{.Hostname}} {{.MACAddr}} {{.IPAddrV4}} {{.IPAddrV6}} */
        char *payload;
        struct header *headers;
        size_t n_headers;
        bool insecure;
        char *basic_auth_user;
        char *basic_auth_password; /* secret */
};

struct os_config {
        char *hostname;
        char **ssh_authorized_keys;
        char *password; /* secret: clear text, or a well-formed crypt hash (valid_crypt_hash()) */
        char **ntp_servers;
        char **dns_nameservers;
        struct kvmap labels;
        char **modules;
        struct kvmap sysctls;
        struct kvmap environment;
        struct write_file *write_files;
        size_t n_write_files;
        char **after_install_chroot_commands;
        char **persistent_state_paths;
        char *additional_kernel_arguments;
        bool sshd_sftp;
        bool sshd_disable_password_auth;
};

struct install_config {
        bool automatic;
        char *mode; /* create | join | install */
        struct mgmt_interface management_interface;
        char *vip;
        char *vip_mode; /* static | dhcp (lowercased) */
        char *vip_hw_addr;
        char *device;
        char *data_disk;
#define ISO_MIRRORS_MAX 16
        char **iso_urls;        /* install.iso_url: one URL or a list of mirrors of the same file, tried
                                 * in order (a download resumes on the next one: download.h) */
        char *iso_checksum;     /* "sha512:<hex>" or "sha256:<hex>" */
        char *iso_checksum_url; /* a "<hex>  <filename>" list, as Harvester releases publish */
        char *config_url;
        int64_t config_url_timeout; /* seconds; default 600 */
        char *config_checksum;      /* "sha256:<hex>"/"sha512:<hex>": the pinned content of config_url
                                     * (kernel command line only) */
        char *tty;
        bool force_efi, force_gpt, force_mbr, silent, poweroff, no_format, debug, skipchecks;
        char *role; /* default | management | worker | witness */
        bool wipe_all_disks;
        char **wipe_disks_list;
        char *persistent_partition_size;     /* as written, e.g. "150Gi" */
        uint64_t persistent_partition_bytes; /* parsed; 0 when not given */
        struct webhook *webhooks;
        size_t n_webhooks;
        struct node *addons;    /* kept as a tree, passed through */
        struct node *harvester; /* chart values, kept as a tree, passed through */
        char *cluster_pod_cidr;
        char *cluster_service_cidr;
        char *cluster_dns;
};

/* dracut arguments the agent honours (not part of the YAML schema). */
struct boot_args {
        bool noverifyssl;   /* rd.noverifyssl */
        char **consoles;    /* console= values in order, e.g. "tty1", "ttyS0,115200n8" */
        int rd_shell;       /* rd.shell: -1 not given, 0 off (halt on failure), 1 on */
        bool automatic;     /* harvester.install.automatic=true was on the command line */
};

struct config {
        int64_t scheme_version;
        char *server_url; /* normalised to https://host:443 */
        char *token;      /* secret */
        char **sans;
        struct kvmap system_settings;
        char *runtime_version;
        char *rancher_version;
        struct os_config os;
        struct install_config install;

        struct boot_args boot;
        struct node *tree;   /* the merged document, for positions in messages */
        char *source_name;   /* where the file came from: a path or the config_url (userinfo removed) */
        char **where_cache;  /* strings returned by config_where(), owned here */
};

struct config_source {
        const char *cmdline_file; /* NULL: /proc/cmdline + the dracut cmdline.d/<name>.conf files */
        const char *config_file;  /* NULL: fetch install.config_url when set */
        /* On the node (run): install.iso_url and install.iso_checksum_url get their ${mac}, ${uuid},
         * ... expanded (urltemplate.h). install.config_url is expanded whenever it is fetched. */
        bool expand_urls;
};

/*
 * Builds the effective configuration. Problems are printed (every one of them, each as
 * "key.path: what is wrong (where)"); warnings for unknown keys too. Returns 0, or
 * -EINVAL when the configuration is invalid, -ENOMEM, or another negative errno when the
 * command line or config_url could not be read (the message says which and why):
 * -EREMOTEIO when install.config_url could not be fetched (exit code EXIT_CONFIG_URL), the
 * errno of the file otherwise (--cmdline FILE, --config FILE, /proc/cmdline).
 */
int config_load(const struct config_source *src, struct config **ret);
/*
 * The core of config_load() without files, network or printing, for tests and fuzzing: the kernel
 * command line text and the YAML text (NULL: none; source_name names it in messages) become a
 * configuration. Problems and warnings go to d (struct diags, schema.h), nothing is logged.
 * Returns 0 with *ret set even when d holds problems (check diags_errors(d)); -EINVAL when the YAML
 * is unusable (not YAML, not a mapping: the problem is in d); -ENOMEM.
 */
struct diags;
int config_from_text(const char *cmdline, const char *yaml, size_t yaml_len, const char *source_name,
                     struct diags *d, struct config **ret);
/*
 * Gives every management interface set only by hw_addr the name of the NIC with that MAC (any case,
 * ':' or '-'), read from net_dir/<name>/address (run passes /sys/class/net; tests a fake tree); with
 * several, the lowest ifindex, as v1.1.2. Logs each name found. 0; -ENODEV when no NIC has the MAC
 * (the message names the MAC and every NIC present with its MAC); -errno when net_dir cannot be read.
 */
int config_resolve_interfaces(struct config *c, const char *net_dir);
/* True when an interface is given only by hw_addr (still to be resolved on the node). */
bool config_has_mac_only_interfaces(const struct config *c);
void config_free(struct config *c);
static inline void config_freep(struct config **c) { config_free(*c); }
#define _cleanup_config_ __attribute__((cleanup(config_freep)))

/* Registers every secret of c with the log (token, os.password, webhook passwords, URL userinfo). */
void config_register_secrets(const struct config *c);

/* Prints the effective configuration, snake_case keys, defaults filled in; secrets as
 * "<redacted>" unless show_secrets. 0 or -errno. */
int config_print(const struct config *c, FILE *f, bool json, bool show_secrets);

/* Where a key path was set, for messages: "config-create.yaml:12:8", "kernel command line"
 * or "default". Returns a static-lifetime or c-owned string. */
const char *config_where(const struct config *c, const char *path);
