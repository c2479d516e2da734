/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NVRAM boot entry elemental b918db38 creates at install (pkg/utils/grub.go): Boot####
 * "elemental-shim" -> HD(COS_GRUB)/File(\EFI\elemental\shim.efi), first in BootOrder, older
 * entries of that name removed. Without it a server whose boot order lists the network first
 * PXE-boots into the automatic install again after every reboot.
 */
#include <ctype.h>
#include <efivar/efiboot.h>
#include <efivar/efivar.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "bootentry.h"
#include "install.h"
#include "log.h"
#include "util.h"

#define EFIVARS_DIR "/sys/firmware/efi/efivars"
#define EFIVARFS_MAGIC_ 0xde5e81e4
#define LOAD_OPTION_ACTIVE_ 0x00000001 /* UEFI 2.x, 3.1.3: the option is active (efibootmgr defines it itself) */
#define BOOT_VAR_ATTRS (EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS)

int boot_entry_load_option(const uint8_t *dp, size_t dp_len, const char *desc, uint8_t **ret, size_t *ret_len) {
        ssize_t n = efi_loadopt_create(NULL, 0, LOAD_OPTION_ACTIVE_, (efidp)dp, (ssize_t)dp_len,
                                       (unsigned char *)desc, NULL, 0);
        if (n <= 0)
                return errno > 0 ? -errno : -EINVAL;
        _cleanup_free_ uint8_t *buf = calloc(1, (size_t)n);
        if (!buf)
                return -ENOMEM;
        ssize_t k = efi_loadopt_create(buf, n, LOAD_OPTION_ACTIVE_, (efidp)dp, (ssize_t)dp_len, (unsigned char *)desc,
                                       NULL, 0);
        if (k != n)
                return errno > 0 ? -errno : -EINVAL;
        *ret = TAKE_PTR(buf);
        *ret_len = (size_t)n;
        return 0;
}

int boot_entry_option_desc(const uint8_t *data, size_t len, char *buf, size_t buflen) {
        /* attributes (4), path length (2), UCS-2 description ending in 0, path, optional data */
        if (len < 8 || buflen == 0)
                return -EINVAL;
        size_t o = 0;
        for (size_t i = 6; i + 1 < len; i += 2) {
                uint16_t ch = (uint16_t)(data[i] | data[i + 1] << 8);
                if (ch == 0) {
                        buf[o] = 0;
                        return 0;
                }
                if (o + 1 < buflen)
                        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        buf[0] = 0;
        return -EINVAL; /* no terminating 0 */
}

size_t boot_order_prepend(const uint16_t *order, size_t n, uint16_t entry, const uint16_t *drop, size_t n_drop,
                          uint16_t *out) {
        size_t k = 0;
        out[k++] = entry;
        for (size_t i = 0; i < n; i++) {
                bool skip = order[i] == entry;
                for (size_t j = 0; j < n_drop && !skip; j++)
                        skip = order[i] == drop[j];
                if (!skip)
                        out[k++] = order[i];
        }
        return k;
}

int boot_entry_free_number(const uint16_t *used, size_t n) {
        for (uint32_t num = 0; num <= 0xffff; num++) {
                bool taken = false;
                for (size_t i = 0; i < n && !taken; i++)
                        taken = used[i] == num;
                if (!taken)
                        return (int)num;
        }
        return -ENOSPC;
}

/* libefivar picks how it reaches the variables once, when it is loaded: efivarfs must be mounted
 * before the agent starts (systemd does it; the module's initqueue hook does it in hook mode).
 * Mounting it later does not help, so there is no mount here. 1: usable, 0: no UEFI variable
 * services (a BIOS boot, or a kernel without them: no efivars directory). */
static int efivars_ready(void) {
        if (access(EFIVARS_DIR, F_OK) < 0)
                return 0;
        return efi_variables_supported() ? 1 : 0;
}

int boot_entry_check(void) {
        if (access(EFIVARS_DIR, F_OK) < 0 || efi_variables_supported())
                return 0;
        struct statfs sf;
        bool mounted = statfs(EFIVARS_DIR, &sf) == 0 && (uint32_t)sf.f_type == EFIVARFS_MAGIC_;
        log_error("The UEFI boot entry cannot be made: the kernel offers EFI variables but %s was %s when the agent "
                  "started (libefivar looks for it only then). The installer must mount it first: "
                  "mount -t efivarfs efivarfs %s.",
                  EFIVARS_DIR, mounted ? "mounted after that" : "not mounted", EFIVARS_DIR);
        return -ENOTSUP;
}

static bool is_boot_var(const char *name) {
        if (strlen(name) != 8 || strncmp(name, "Boot", 4) != 0)
                return false;
        for (int i = 4; i < 8; i++)
                if (!isxdigit((unsigned char)name[i]))
                        return false;
        return true;
}

/* "what: Boot0001 "UEFI PXEv4 (MAC:...)", Boot0002 ..." on one line (the descriptions read back). */
static void log_boot_order(const char *what, const uint16_t *order, size_t n) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return;
        efi_guid_t global = EFI_GLOBAL_GUID;
        for (size_t i = 0; i < n; i++) {
                char var[16], desc[128] = "?";
                _cleanup_free_ uint8_t *data = NULL;
                size_t size = 0;
                uint32_t a = 0;
                snprintf(var, sizeof var, "Boot%04X", order[i]);
                if (efi_get_variable(global, var, &data, &size, &a) >= 0)
                        (void)boot_entry_option_desc(data, size, desc, sizeof desc);
                fprintf(f, "%s%s \"%s\"", i > 0 ? ", " : "", var, desc);
        }
        if (fclose(f) == 0)
                log_info("%s: %s", what, n > 0 ? buf : "(empty)");
}

int boot_entry_install(const char *disk, int partition, const char *loader, const char *name) {
        _cleanup_free_ uint8_t *dp = NULL, *opt = NULL, *order_data = NULL;
        _cleanup_free_ uint16_t *used = NULL, *stale = NULL, *order = NULL;
        size_t n_used = 0, n_stale = 0, opt_len = 0, order_size = 0;
        uint32_t attrs = 0;
        char var[16];
        int r;

        if (efivars_ready() == 0) {
                log_warning("No UEFI variables (a BIOS boot?): no boot entry \"%s\" made; the disk boots through "
                            "EFI/BOOT/BOOTX64.EFI where the firmware tries it.", name);
                return 0;
        }

        /* HD(partition of disk)/File(loader), as efibootmgr -d disk -p partition -l loader. */
        ssize_t n = efi_generate_file_device_path_from_esp(NULL, 0, disk, partition, loader, EFIBOOT_ABBREV_HD);
        if (n <= 0)
                return log_error_errno(errno > 0 ? errno : EIO, "Cannot make the UEFI device path of %s on %s partition %d: %s",
                                       loader, disk, partition, strerror(errno > 0 ? errno : EIO));
        dp = calloc(1, (size_t)n);
        if (!dp)
                return log_oom();
        if (efi_generate_file_device_path_from_esp(dp, n, disk, partition, loader, EFIBOOT_ABBREV_HD) != n)
                return log_error_errno(errno > 0 ? errno : EIO, "Cannot make the UEFI device path of %s on %s: %s",
                                       loader, disk, strerror(errno > 0 ? errno : EIO));
        r = boot_entry_load_option(dp, (size_t)n, name, &opt, &opt_len);
        if (r < 0)
                return log_error_errno(r, "Cannot make the UEFI load option \"%s\": %s", name, strerror(-r));

        /* The Boot#### entries: numbers in use, and the stale ones of our name. */
        efi_guid_t *guid = NULL;
        char *vname = NULL;
        efi_guid_t global = EFI_GLOBAL_GUID;
        while ((r = efi_get_next_variable_name(&guid, &vname)) > 0) {
                if (efi_guid_cmp(guid, &global) != 0 || !is_boot_var(vname))
                        continue;
                uint16_t num = (uint16_t)strtoul(vname + 4, NULL, 16);
                uint16_t *u = reallocarray(used, n_used + 1, sizeof *used);
                if (!u)
                        return log_oom();
                used = u;
                used[n_used++] = num;
                _cleanup_free_ uint8_t *data = NULL;
                size_t size = 0;
                uint32_t a = 0;
                char desc[128];
                if (efi_get_variable(global, vname, &data, &size, &a) < 0)
                        continue;
                if (boot_entry_option_desc(data, size, desc, sizeof desc) == 0 && streq(desc, name)) {
                        u = reallocarray(stale, n_stale + 1, sizeof *stale);
                        if (!u)
                                return log_oom();
                        stale = u;
                        stale[n_stale++] = num;
                }
        }
        if (r < 0)
                return log_error_errno(errno > 0 ? errno : EIO, "Cannot list the UEFI variables: %s",
                                       strerror(errno > 0 ? errno : EIO));
        for (size_t i = 0; i < n_stale; i++) {
                snprintf(var, sizeof var, "Boot%04X", stale[i]);
                if (efi_del_variable(global, var) < 0)
                        return log_error_errno(errno, "Cannot remove the old boot entry %s \"%s\": %s", var, name,
                                               strerror(errno));
                log_info("Removed the old boot entry %s \"%s\".", var, name);
        }

        /* Stale numbers are free again; the lowest free number wins. */
        size_t n_live = 0;
        for (size_t i = 0; i < n_used; i++) {
                bool gone = false;
                for (size_t j = 0; j < n_stale && !gone; j++)
                        gone = used[i] == stale[j];
                if (!gone)
                        used[n_live++] = used[i];
        }
        int num = boot_entry_free_number(used, n_live);
        if (num < 0)
                return log_error_errno(ENOSPC, "No free Boot#### number for \"%s\".", name);
        snprintf(var, sizeof var, "Boot%04X", (unsigned)num);
        if (efi_set_variable(global, var, opt, opt_len, BOOT_VAR_ATTRS, 0644) < 0)
                return log_error_errno(errno, "Cannot write the boot entry %s \"%s\": %s", var, name, strerror(errno));

        if (efi_get_variable(global, "BootOrder", &order_data, &order_size, &attrs) < 0) {
                if (errno != ENOENT)
                        return log_error_errno(errno, "Cannot read BootOrder: %s", strerror(errno));
                order_size = 0;
        }
        size_t n_order = order_size / 2;
        order = calloc(n_order + 1, sizeof *order);
        if (!order)
                return log_oom();
        _cleanup_free_ uint16_t *old = calloc(n_order + 1, sizeof *old);
        if (!old)
                return log_oom();
        if (n_order > 0)
                memcpy(old, order_data, n_order * 2);
        log_boot_order("BootOrder before", old, n_order);
        size_t k = boot_order_prepend(old, n_order, (uint16_t)num, stale, n_stale, order);
        if (efi_set_variable(global, "BootOrder", (uint8_t *)order, k * 2, BOOT_VAR_ATTRS, 0644) < 0)
                return log_error_errno(errno, "Cannot write BootOrder: %s", strerror(errno));
        log_info("UEFI boot entry %s \"%s\" -> %s on %s partition %d, first in BootOrder.", var, name, loader, disk,
                 partition);
        log_boot_order("BootOrder now", order, k);
        return 0;
}
