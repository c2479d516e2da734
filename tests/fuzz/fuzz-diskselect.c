/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the disk selector parser (install.device / install.data_disk given by rule) and the
 * matcher over a few disks made in memory (every field known, every field unknown), and the line
 * the listings print. libFuzzer entry point; tests/fuzz/replay.c runs it over the seed corpus in
 * normal builds.
 */
#include <stdint.h>
#include <stdio.h>

#include "diskselect.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 4096)
                return 0;
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        struct disk_selector s = {};
        char *error = NULL;
        int r = disk_selector_parse(text, &s, &error);
        if (r >= 0) {
                if (error || s.n_terms == 0 || !s.text || strcmp(s.text, text) != 0)
                        abort(); /* success leaves no message and holds every term */
                static char sda[] = "sda", sda_node[] = "/dev/sda", model[] = "QEMU HARDDISK", vendor[] = "ATA",
                            serial[] = "node1-sda", wwn[] = "naa.5000c500a1b2c3d4",
                            by_id[] = "/dev/disk/by-id/ata-QEMU_HARDDISK_node1-sda", path1[] = "pci-0000:00:1f.2-ata-1",
                            path2[] = "pci-0000:00:1f.2-ata-1.0", nvme[] = "nvme0n1", nvme_node[] = "/dev/nvme0n1",
                            sdz[] = "sdz", sdz_node[] = "/dev/sdz";
                char *paths[] = { path1, path2, NULL };
                const struct disk_facts disks[] = {
                        { .sysname = sda, .node = sda_node, .size = UINT64_C(322122547200), .rotational = 1,
                          .removable = 0, .model = model, .vendor = vendor, .serial = serial, .wwn = wwn, .bus = "ata",
                          .by_id = by_id, .by_path = paths, .excluded = NULL },
                        { .sysname = nvme, .node = nvme_node, .size = UINT64_MAX, .rotational = 0, .removable = 0,
                          .bus = "nvme", .excluded = "the medium the installer runs from" },
                        { .sysname = sdz, .node = sdz_node, .rotational = -1, .removable = -1 },
                };
                for (size_t i = 0; i < ELEMENTSOF(disks); i++) {
                        (void)disk_selector_match(&s, &disks[i]);
                        char *line = disk_facts_format(&disks[i]);
                        free(line);
                }
                disk_selector_done(&s);
        } else if (r == -EINVAL && !error) {
                abort(); /* every syntax error says what is wrong */
        }
        free(error);
        free(text);
        return 0;
}
