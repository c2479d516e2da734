/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <unistd.h>

#include "firmware.h"
#include "util.h"

bool firmware_is_efi(void) {
        _cleanup_free_ char *p = strdup_printf("%s/sys/firmware/efi", getenv("HARVESTER_INSTALL_FACTS_ROOT") ?: "");
        /* Out of memory: the kernel's own answer (the fake root is for tests only). */
        return access(p ? p : "/sys/firmware/efi", F_OK) == 0;
}

const char *firmware_name(bool efi) {
        return efi ? "UEFI" : "legacy BIOS";
}
