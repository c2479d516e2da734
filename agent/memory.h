/* SPDX-License-Identifier: Apache-2.0 */
/* Memory preflight: the seed's 8 GB floor, judged on installed memory, and room for the ISO in tmpfs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct memory_info {
        uint64_t installed_bytes; /* physical memory installed (memory blocks / DMI), best estimate */
        uint64_t memtotal_bytes;  /* MemTotal from /proc/meminfo */
        uint64_t available_bytes; /* MemAvailable from /proc/meminfo */
};

/* Reads <root>/proc/meminfo and <root>/sys/devices/system/memory (root "" or NULL for the live system). */
int memory_read(const char *root, struct memory_info *ret);

/* The 8 GB floor. Prints one line naming found and needed memory. skipchecks turns a failure into a
 * warning. Returns 0 or -ENOMEM (message printed). */
int memory_check(const struct config *c, const char *root);

/* Does an ISO of iso_size bytes fit in tmpfs with 1 GiB left for the installer? Holds even with
 * skipchecks. Returns 0 or -ENOSPC (message printed with memory found, needed and ISO size). */
int memory_check_iso_fits(const struct memory_info *m, uint64_t iso_size);
