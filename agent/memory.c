/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Installed memory: the kernel's memory blocks (/sys/devices/system/memory/memoryN, each
 * block_size_bytes, "online" ones counted) cover every byte of RAM the kernel manages, including what
 * it reserved for itself, so their sum is the installed memory (8 GiB on an 8 GiB machine, while
 * MemTotal shows 7.7 GiB). Without memory blocks (no memory hotplug support in the kernel), MemTotal
 * rounded up to the next GiB (see memory.h).
 */
#include <dirent.h>
#include <inttypes.h>

#include "log.h"
#include "memory.h"

static char *path_join(const char *root, const char *path) {
        return strdup_printf("%s%s", strempty(root), path);
}

/* Finds "Key:   12345 kB" in meminfo; 0, -ENOENT or -EINVAL. */
static int meminfo_get(const char *text, const char *key, uint64_t *ret) {
        size_t k = strlen(key);
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                if (strncmp(l, key, k) != 0 || l[k] != ':')
                        continue;
                char *end;
                errno = 0;
                unsigned long long v = strtoull(l + k + 1, &end, 10);
                if (errno != 0 || end == l + k + 1)
                        return -EINVAL;
                while (*end == ' ' || *end == '\t')
                        end++;
                if (strncmp(end, "kB", 2) == 0) {
                        if (v > UINT64_MAX / 1024)
                                return -ERANGE;
                        v *= 1024;
                } else if (*end != '\n' && *end != 0)
                        return -EINVAL;
                *ret = v;
                return 0;
        }
        return -ENOENT;
}

uint64_t memory_installed_from_memtotal(uint64_t memtotal_bytes) {
        const uint64_t gib = UINT64_C(1) << 30;
        if (memtotal_bytes > UINT64_MAX - gib)
                return memtotal_bytes;
        return (memtotal_bytes + gib - 1) / gib * gib;
}

/* Sum of online memory blocks; 0 and *n = 0 when the kernel shows none. */
static int memory_blocks(const char *root, uint64_t *ret, unsigned *ret_n) {
        _cleanup_free_ char *dir = path_join(root, "/sys/devices/system/memory");
        _cleanup_free_ char *bs_path = path_join(root, "/sys/devices/system/memory/block_size_bytes");
        _cleanup_free_ char *bs_text = NULL;
        if (!dir || !bs_path)
                return -ENOMEM;
        int r = read_full_file(bs_path, &bs_text, NULL);
        if (r == -ENOENT) {
                *ret = 0;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long long block_size = strtoull(bs_text, &end, 16); /* hex, without "0x" */
        if (errno != 0 || end == bs_text || (*end != '\n' && *end != 0) || block_size == 0)
                return -EINVAL;

        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        uint64_t total = 0;
        unsigned n = 0;
        struct dirent *de;
        r = 0;
        while ((de = readdir(d))) {
                unsigned idx;
                char tail;
                if (sscanf(de->d_name, "memory%u%c", &idx, &tail) != 1)
                        continue;
                _cleanup_free_ char *state_path = strdup_printf("%s/%s/state", dir, de->d_name);
                _cleanup_free_ char *state = NULL;
                if (!state_path) {
                        r = -ENOMEM;
                        break;
                }
                /* A block without a readable state file is counted: the kernel lists it, so it is RAM. */
                if (read_full_file(state_path, &state, NULL) >= 0 && strncmp(state, "online", 6) != 0)
                        continue;
                if (total > UINT64_MAX - block_size) {
                        r = -ERANGE;
                        break;
                }
                total += block_size;
                n++;
        }
        closedir(d);
        if (r < 0)
                return r;
        *ret = total;
        *ret_n = n;
        return 0;
}

int memory_read(const char *root, struct memory_info *ret) {
        _cleanup_free_ char *path = path_join(root, "/proc/meminfo");
        _cleanup_free_ char *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = read_full_file(path, &text, NULL);
        if (r < 0)
                return r;

        struct memory_info m = {};
        r = meminfo_get(text, "MemTotal", &m.memtotal_bytes);
        if (r < 0)
                return r == -ENOENT ? -EINVAL : r;
        /* MemAvailable exists since Linux 3.14; before that MemFree is the honest lower bound. */
        r = meminfo_get(text, "MemAvailable", &m.available_bytes);
        if (r == -ENOENT)
                r = meminfo_get(text, "MemFree", &m.available_bytes);
        if (r < 0)
                return r == -ENOENT ? -EINVAL : r;

        uint64_t blocks = 0;
        r = memory_blocks(root, &blocks, &m.n_blocks);
        if (r < 0)
                return r;
        /* Blocks cover all managed RAM, so they can only be >= MemTotal; anything else means they do
         * not describe this machine's memory (offline blocks, a partial view): do not trust them. */
        if (m.n_blocks > 0 && blocks >= m.memtotal_bytes) {
                m.installed_bytes = blocks;
                m.from_blocks = true;
        } else
                m.installed_bytes = memory_installed_from_memtotal(m.memtotal_bytes);

        *ret = m;
        return 0;
}

int memory_check(const struct config *c, const char *root) {
        struct memory_info m;
        char inst[32], total[32], need[32];
        int r = memory_read(root, &m);
        if (r < 0)
                return log_error_errno(r, "Cannot read the memory size from %s/proc/meminfo and "
                                          "%s/sys/devices/system/memory: %s",
                                       strempty(root), strempty(root), strerror(-r));
        format_bytes(inst, sizeof(inst), m.installed_bytes);
        format_bytes(total, sizeof(total), m.memtotal_bytes);
        format_bytes(need, sizeof(need), MEMORY_FLOOR_BYTES);
        const char *how = m.from_blocks ? "from the kernel's memory blocks" : "MemTotal rounded up to a whole GiB";

        if (m.installed_bytes >= MEMORY_FLOOR_BYTES) {
                log_info("Memory: %s installed (%s; MemTotal %s), %s needed: ok.", inst, how, total, need);
                return 0;
        }
        if (c && c->install.skipchecks) {
                log_warning("Memory: %s installed (%s; MemTotal %s), less than the %s Harvester needs; "
                            "going on because install.skipchecks is set.", inst, how, total, need);
                return 0;
        }
        return log_error_errno(ENOMEM,
                               "Not enough memory: %s installed (%s; MemTotal %s), at least %s needed "
                               "(the ISO is held in memory during the install). Add memory, or set "
                               "install.skipchecks on a test rig.", inst, how, total, need);
}

int memory_check_iso_fits(const struct memory_info *m, uint64_t iso_size) {
        char avail[32], need[32], iso[32], inst[32], reserve[32];
        uint64_t needed = iso_size > UINT64_MAX - MEMORY_INSTALLER_RESERVE_BYTES
                                  ? UINT64_MAX : iso_size + MEMORY_INSTALLER_RESERVE_BYTES;
        format_bytes(avail, sizeof(avail), m->available_bytes);
        format_bytes(need, sizeof(need), needed);
        format_bytes(iso, sizeof(iso), iso_size);
        format_bytes(inst, sizeof(inst), m->installed_bytes);
        format_bytes(reserve, sizeof(reserve), MEMORY_INSTALLER_RESERVE_BYTES);
        if (m->available_bytes >= needed) {
                log_info("Memory for the ISO: %s needed (ISO %s + %s for the installer), %s available: ok.",
                         need, iso, reserve, avail);
                return 0;
        }
        return log_error_errno(ENOSPC,
                               "The ISO does not fit in memory: %s needed (ISO %s + %s for the "
                               "installer), %s available of %s installed. Add memory (install.skipchecks "
                               "does not lift this check).", need, iso, reserve, avail, inst);
}
