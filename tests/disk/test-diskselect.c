/* SPDX-License-Identifier: Apache-2.0 */
/* Disks by rule (diskselect.c): the selector parser (every field, operator and unit; every kind of
 * bad term), the facts read from a fake /sys and /dev tree (ATA with a VPD serial, NVMe, virtio-blk,
 * USB, virtio-scsi, MMC, a reader without medium; CD, loop and zram devices never listed), and
 * disk_select(): one match, none, several, the boot medium and the disk already chosen left out,
 * every disk listed with the fields a selector can use before the one error line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ftw.h>
#include <sys/stat.h>

#include "diskselect.h"
#include "log.h"
#include "util.h"

static char *tmpdir;
static char *root;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void mkparents(char *p, size_t from) {
        for (char *s = strchr(p + from, '/'); s; s = strchr(s + 1, '/')) {
                *s = 0;
                assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
                *s = '/';
        }
}

static void put_file(const char *rel, const void *data, size_t len) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", root, rel);
        assert_non_null(p);
        mkparents(p, strlen(root) + 1);
        assert_int_equal(write_file_atomic(p, data, len, 0644), 0);
}

static void put(const char *rel, const char *text) {
        put_file(rel, text, strlen(text));
}

static void put_link(const char *rel, const char *target) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", root, rel);
        assert_non_null(p);
        mkparents(p, strlen(root) + 1);
        assert_int_equal(symlink(target, p), 0);
}

/* One whole disk: its device directory (below sys/devices/), /sys/block/<name> pointing there, a
 * /dev node (a plain file will do: nothing opens it here), attributes name=value under the disk's
 * directory ("device/model=..."), udev's links. */
static void disk(const char *name, const char *devpath, const char *const *attrs, const char *by_id,
                 const char *const *by_path) {
        _cleanup_free_ char *dir = strdup_printf("sys/devices/%s/block/%s", devpath, name);
        _cleanup_free_ char *link = strdup_printf("sys/block/%s", name);
        _cleanup_free_ char *target = strdup_printf("../devices/%s/block/%s", devpath, name);
        _cleanup_free_ char *dev = strdup_printf("dev/%s", name);
        _cleanup_free_ char *up = strdup_printf("../../%s", name);
        for (size_t i = 0; attrs && attrs[i]; i++) {
                const char *eq = strchr(attrs[i], '=');
                assert_non_null(eq);
                _cleanup_free_ char *f = strdup_printf("%s/%.*s", dir, (int)(eq - attrs[i]), attrs[i]);
                _cleanup_free_ char *v = strdup_printf("%s\n", eq + 1);
                put(f, v);
        }
        put_link(link, target);
        put(dev, "");
        if (by_id) {
                _cleanup_free_ char *l = strdup_printf("dev/disk/by-id/%s", by_id);
                put_link(l, up);
        }
        for (size_t i = 0; by_path && by_path[i]; i++) {
                _cleanup_free_ char *l = strdup_printf("dev/disk/by-path/%s", by_path[i]);
                put_link(l, up);
        }
}

#define GIB(n) ((uint64_t)(n) << 30)

static int setup(void **state) {
        const char *base = getenv("TMPDIR");
        tmpdir = strdup_printf("%s/hia-diskselect-XXXXXX", isempty(base) ? "/tmp" : base);
        assert_non_null(tmpdir);
        assert_non_null(mkdtemp(tmpdir));
        root = strdup_printf("%s/root", tmpdir);
        assert_int_equal(mkdir(root, 0755), 0);

        /* sda: AHCI port 1, a 300 GiB spinning disk, serial in VPD page 0x80 (space-padded). */
        disk("sda", "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
             (const char *const[]){ "size=629145600", "removable=0", "ro=0", "queue/rotational=1",
                                    "device/model=QEMU HARDDISK   ", "device/vendor=ATA     ", NULL },
             "ata-QEMU_HARDDISK_node1-sda", (const char *const[]){ "pci-0000:00:1f.2-ata-1", "pci-0000:00:1f.2-ata-1.0", NULL });
        static const char vpd[] = "\x00\x80\x00\x0c  node1-sda ";
        put_file("sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/device/vpd_pg80", vpd,
                 sizeof vpd - 1);
        /* sdb: AHCI port 2, a 100 GiB SSD with a WWN (by-id wwn- and ata- names: ata- shown). */
        disk("sdb", "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0",
             (const char *const[]){ "size=209715200", "removable=0", "ro=0", "queue/rotational=0",
                                    "device/model=Samsung SSD 870", "device/vendor=ATA", "device/wwid=naa.5002538e40a1b2c3",
                                    NULL },
             "wwn-0x5002538e40a1b2c3", (const char *const[]){ "pci-0000:00:1f.2-ata-2.0", NULL });
        put_link("dev/disk/by-id/ata-Samsung_SSD_870_S5Y1NX0R", "../../sdb");
        put_link("dev/disk/by-id/lvm-pv-uuid-0aBcDe-fGhI-jKlM", "../../sdb"); /* what it holds: not shown */
        put_link("dev/disk/by-id/nvme-eui.002538b111b2c3d4", "../../nvme0n1");
        static const char vpd_b[] = "\x00\x80\x00\x08S5Y1NX0R";
        put_file("sys/devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb/device/vpd_pg80", vpd_b,
                 sizeof vpd_b - 1);
        /* nvme0n1: 2 TB NVMe. */
        disk("nvme0n1", "pci0000:00/0000:00:04.0/nvme/nvme0",
             (const char *const[]){ "size=3907029168", "removable=0", "ro=0", "queue/rotational=0",
                                    "device/model=Samsung SSD 980 PRO 2TB", "device/serial=S6B0NL0T", "wwid=eui.002538b111b2c3d4", NULL },
             "nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T", (const char *const[]){ "pci-0000:00:04.0-nvme-1", NULL });
        /* vda: virtio-blk, 20 GB, serial as an attribute of the disk. */
        disk("vda", "pci0000:00/0000:00:05.0/virtio2",
             (const char *const[]){ "size=39062500", "removable=0", "ro=0", "queue/rotational=1", "serial=data1",
                                    "device/vendor=0x1af4", NULL },
             "virtio-data1", (const char *const[]){ "pci-0000:00:05.0", "virtio-pci-0000:00:05.0", NULL });
        /* sdc: a USB stick. */
        disk("sdc", "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0",
             (const char *const[]){ "size=62500000", "removable=1", "ro=0", "queue/rotational=1",
                                    "device/model=Cruzer Blade", "device/vendor=SanDisk", NULL },
             "usb-SanDisk_Cruzer_Blade_4C53-0:0", (const char *const[]){ "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0", NULL });
        /* sdd: virtio-scsi, 100 GiB like sdb. */
        disk("sdd", "pci0000:00/0000:00:06.0/virtio3/host2/target2:0:0/2:0:0:0",
             (const char *const[]){ "size=209715200", "removable=0", "ro=0", "queue/rotational=1",
                                    "device/model=QEMU HARDDISK", "device/vendor=QEMU", NULL },
             "scsi-0QEMU_QEMU_HARDDISK_drive-scsi0", (const char *const[]){ "pci-0000:00:06.0-scsi-0:0:0:0", NULL });
        /* mmcblk0: eMMC, 8 GB, read-only. */
        disk("mmcblk0", "platform/soc/mmc_host/mmc0/mmc0:0001",
             (const char *const[]){ "size=15625000", "removable=0", "ro=1", "queue/rotational=0", "device/serial=0x1234abcd", NULL },
             NULL, NULL);
        /* sde: a card reader without a card (size 0). */
        disk("sde", "pci0000:00/0000:00:14.0/usb2/2-2/2-2:1.0/host7/target7:0:0/7:0:0:0",
             (const char *const[]){ "size=0", "removable=1", "ro=0", "device/model=SD Reader", NULL }, NULL, NULL);
        /* Never disks: the CD drive, a loop device, zram, a device-mapper volume. */
        disk("sr0", "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0",
             (const char *const[]){ "size=2097152", "removable=1", "device/model=QEMU DVD-ROM", NULL }, NULL, NULL);
        disk("loop0", "virtual", (const char *const[]){ "size=2097152", NULL }, NULL, NULL);
        disk("zram0", "virtual", (const char *const[]){ "size=2097152", NULL }, NULL, NULL);
        disk("dm-0", "virtual", (const char *const[]){ "size=2097152", NULL }, NULL, NULL);
        return 0;
}

static int teardown(void **state) {
        (void)nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(tmpdir);
        free(root);
        return 0;
}

/* --- The parser --------------------------------------------------------------------------------- */

static void parse_ok(const char *text, size_t n_terms, struct disk_selector *ret) {
        _cleanup_free_ char *error = NULL;
        int r = disk_selector_parse(text, ret, &error);
        if (r < 0)
                print_message("%s: %s\n", text, strempty(error));
        assert_int_equal(r, 0);
        assert_null(error);
        assert_int_equal(ret->n_terms, n_terms);
        assert_string_equal(ret->text, text);
}

static uint64_t size_of(const char *text) {
        _cleanup_(disk_selector_done) struct disk_selector s = {};
        parse_ok(text, 1, &s);
        assert_int_equal(s.terms[0].field, DS_SIZE);
        return s.terms[0].bytes;
}

static void test_parse_terms(void **state) {
        _cleanup_(disk_selector_done) struct disk_selector s = {};
        parse_ok("size>=100G,size<=2T,size>1Ki,size<3TB,size=512,size!=0,rotational=false,removable=true,"
                 "model=SAMSUNG*,vendor!=ATA,serial=S4?X*,wwn=*5000c500*,bus=nvme|ata,path=pci-0000:00:1f.2-*",
                 14, &s);
        static const struct { enum ds_field f; enum ds_op op; } want[] = {
                { DS_SIZE, DS_GE },       { DS_SIZE, DS_LE },      { DS_SIZE, DS_GT },    { DS_SIZE, DS_LT },
                { DS_SIZE, DS_EQ },       { DS_SIZE, DS_NE },      { DS_ROTATIONAL, DS_EQ }, { DS_REMOVABLE, DS_EQ },
                { DS_MODEL, DS_EQ },      { DS_VENDOR, DS_NE },    { DS_SERIAL, DS_EQ },  { DS_WWN, DS_EQ },
                { DS_BUS, DS_EQ },        { DS_PATH, DS_EQ },
        };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_int_equal(s.terms[i].field, want[i].f);
                assert_int_equal(s.terms[i].op, want[i].op);
        }
        assert_int_equal(s.terms[0].bytes, UINT64_C(100000000000));
        assert_int_equal(s.terms[1].bytes, UINT64_C(2000000000000));
        assert_int_equal(s.terms[2].bytes, 1024);
        assert_int_equal(s.terms[3].bytes, UINT64_C(3000000000000));
        assert_false(s.terms[6].flag);
        assert_true(s.terms[7].flag);
        assert_string_equal(s.terms[8].pattern, "SAMSUNG*");
        assert_string_equal(s.terms[12].pattern, "nvme|ata");
        assert_string_equal(s.terms[13].pattern, "pci-0000:00:1f.2-*");

        /* Units: K M G T (and KB ...) in powers of 1000, Ki Mi Gi Ti (and KiB ...) in powers of 1024. */
        assert_int_equal(size_of("size>=0"), 0);
        assert_int_equal(size_of("size>=100B"), 100);
        assert_int_equal(size_of("size>=5K"), 5000);
        assert_int_equal(size_of("size>=5KB"), 5000);
        assert_int_equal(size_of("size>=7M"), 7000000);
        assert_int_equal(size_of("size>=7MB"), 7000000);
        assert_int_equal(size_of("size>=60G"), UINT64_C(60000000000));
        assert_int_equal(size_of("size>=60GB"), UINT64_C(60000000000));
        assert_int_equal(size_of("size>=60Gi"), GIB(60));
        assert_int_equal(size_of("size>=60GiB"), GIB(60));
        assert_int_equal(size_of("size>=512Mi"), UINT64_C(512) << 20);
        assert_int_equal(size_of("size>=2Ti"), UINT64_C(2) << 40);
        assert_int_equal(size_of("size>=2TiB"), UINT64_C(2) << 40);
        assert_int_equal(size_of("size>=18446744073709551615"), UINT64_MAX);
        /* Booleans as the rest of the configuration spells them; bus names in any case. */
        _cleanup_(disk_selector_done) struct disk_selector b = {};
        parse_ok("rotational=0,removable=yes,bus=NVMe|virtio|usb|mmc|scsi", 3, &b);
        assert_false(b.terms[0].flag);
        assert_true(b.terms[1].flag);
}

static void parse_bad(const char *text, const char *needle) {
        struct disk_selector s = {};
        _cleanup_free_ char *error = NULL;
        assert_int_equal(disk_selector_parse(text, &s, &error), -EINVAL);
        assert_null(s.terms);
        assert_non_null(error);
        if (!strstr(error, needle))
                print_message("%s: \"%s\" lacks \"%s\"\n", text ? text : "(null)", error, needle);
        assert_non_null(strstr(error, needle));
}

static void test_parse_bad(void **state) {
        parse_bad(NULL, "it is empty");
        parse_bad("", "it is empty");
        parse_bad("/dev/sda", "does not start with /");
        parse_bad("sda", "term \"sda\" is not field=value");
        parse_bad("size", "term \"size\" is not field=value");
        parse_bad("size~1G", "term \"size~1G\" is not field=value");
        parse_bad("=1G", "unknown field \"\" in \"=1G\"");
        parse_bad("colour=red", "unknown field \"colour\" in \"colour=red\": use size, rotational");
        parse_bad("Size=1G", "term \"Size=1G\" is not field=value");
        parse_bad("size>=", "term \"size>=\" has no value");
        parse_bad("model=", "term \"model=\" has no value");
        parse_bad("size>=1.5T", "\"1.5T\" in \"size>=1.5T\" is not a size");
        parse_bad("size>=G", "\"G\" in \"size>=G\" is not a size");
        parse_bad("size>=-1", "is not a size");
        parse_bad("size>=100X", "is not a size");
        parse_bad("size>=100 G", "is not a size");
        parse_bad("size=>1G", "\">1G\" in \"size=>1G\" is not a size");
        parse_bad("size>=18446744073709551616", "is not a size");
        parse_bad("size>=18446744073709551615K", "is not a size");
        parse_bad("size>=17179869184Gi", "is not a size");
        parse_bad("rotational>true", "\"rotational\" takes = or != only");
        parse_bad("model<=A", "\"model\" takes = or != only");
        parse_bad("removable=maybe", "\"maybe\" in \"removable=maybe\" is not true or false");
        parse_bad("bus=sata", "unknown bus \"sata\" in \"bus=sata\"");
        parse_bad("bus=nvme|", "unknown bus \"\" in \"bus=nvme|\"");
        parse_bad("size>=1G,,bus=ata", "an empty term");
        parse_bad(",size>=1G", "an empty term");
        parse_bad("size>=1G,", "an empty term");
        parse_bad("model=A\tB", "a character other than printable ASCII");
        parse_bad("model=\xc3\xa9", "a character other than printable ASCII");
        /* Without ret_error: still -EINVAL. */
        struct disk_selector s = {};
        assert_int_equal(disk_selector_parse("colour=red", &s, NULL), -EINVAL);
        assert_true(disk_selector_is("size>=1G"));
        assert_true(disk_selector_is("sda"));
        assert_false(disk_selector_is("/dev/sda"));
        assert_false(disk_selector_is(""));
        assert_false(disk_selector_is(NULL));
}

/* --- The facts ---------------------------------------------------------------------------------- */

static const struct disk_facts *find(const struct disk_facts *l, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].sysname, name))
                        return &l[i];
        fail_msg("no %s", name);
        return NULL;
}

static void test_facts(void **state) {
        struct disk_facts *l = NULL;
        size_t n = 0;
        assert_int_equal(disk_facts_list(root, &l, &n), 0);
        /* Sorted, and no CD, loop, zram or device-mapper device. */
        static const char *const names[] = { "mmcblk0", "nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "vda" };
        assert_int_equal(n, ELEMENTSOF(names));
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i].sysname, names[i]);

        const struct disk_facts *a = find(l, n, "sda");
        assert_int_equal(a->size, GIB(300));
        assert_int_equal(a->rotational, 1);
        assert_int_equal(a->removable, 0);
        assert_string_equal(a->model, "QEMU HARDDISK");
        assert_string_equal(a->vendor, "ATA");
        assert_string_equal(a->serial, "node1-sda");
        assert_null(a->wwn);
        assert_string_equal(a->bus, "ata");
        assert_string_equal(a->by_id, "/dev/disk/by-id/ata-QEMU_HARDDISK_node1-sda");
        assert_int_equal(strv_length(a->by_path), 2);
        assert_string_equal(a->by_path[0], "pci-0000:00:1f.2-ata-1");
        assert_string_equal(a->by_path[1], "pci-0000:00:1f.2-ata-1.0");
        _cleanup_free_ char *node = strdup_printf("%s/dev/sda", root);
        assert_string_equal(a->node, node);

        const struct disk_facts *b = find(l, n, "sdb");
        assert_string_equal(b->serial, "S5Y1NX0R");
        assert_string_equal(b->wwn, "naa.5002538e40a1b2c3");
        assert_string_equal(b->by_id, "/dev/disk/by-id/ata-Samsung_SSD_870_S5Y1NX0R"); /* not the wwn- or lvm- name */
        assert_string_equal(find(l, n, "nvme0n1")->by_id, "/dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T");
        assert_int_equal(b->rotational, 0);

        assert_string_equal(find(l, n, "nvme0n1")->bus, "nvme");
        assert_string_equal(find(l, n, "nvme0n1")->wwn, "eui.002538b111b2c3d4");
        assert_string_equal(find(l, n, "vda")->bus, "virtio");
        assert_string_equal(find(l, n, "vda")->serial, "data1");
        assert_string_equal(find(l, n, "sdc")->bus, "usb");
        assert_int_equal(find(l, n, "sdc")->removable, 1);
        assert_string_equal(find(l, n, "sdd")->bus, "scsi");
        assert_string_equal(find(l, n, "mmcblk0")->bus, "mmc");
        assert_true(find(l, n, "mmcblk0")->read_only);
        assert_int_equal(find(l, n, "sde")->size, 0);
        assert_int_equal(find(l, n, "sde")->rotational, -1); /* no queue/rotational: unknown */

        /* The line the listings print: every field a selector can use. */
        _cleanup_free_ char *line = disk_facts_format(b);
        assert_string_equal(line, "/dev/sdb size=107374182400 (100 GiB) rotational=false removable=false bus=ata "
                                  "model=\"Samsung SSD 870\" vendor=ATA serial=S5Y1NX0R wwn=naa.5002538e40a1b2c3 "
                                  "path=pci-0000:00:1f.2-ata-2.0 by-id /dev/disk/by-id/ata-Samsung_SSD_870_S5Y1NX0R");
        _cleanup_free_ char *line2 = disk_facts_format(find(l, n, "sde"));
        assert_string_equal(line2, "/dev/sde size=0 (0 B) rotational=- removable=true bus=usb model=\"SD Reader\" vendor=- "
                                   "serial=- wwn=- path=- by-id -");
        disk_facts_free(l, n);
}

/* --- Matching ----------------------------------------------------------------------------------- */

static char *capture;

static void capture_start(void) {
        free(capture);
        capture = strdup_printf("%s/log-XXXXXX", tmpdir);
        assert_non_null(capture);
        int fd = mkstemp(capture);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(log_set_capture_file(capture), 0);
}

static char *captured(void) {
        char *text = NULL;
        assert_int_equal(read_full_file(capture, &text, NULL), 0);
        return text;
}

/* Picks with disk_select, once (no waiting); returns the sysname chosen, or NULL with *ret_r. */
static char *pick(const char *text, const struct ds_exclude *excl, size_t n_excl, int *ret_r, char ***ret_listing) {
        _cleanup_free_ char *node = NULL;
        capture_start();
        int r = disk_select(root, "install.data_disk", text, excl, n_excl, 0, &node, ret_listing);
        if (ret_r)
                *ret_r = r;
        if (r < 0) {
                assert_null(node);
                return NULL;
        }
        assert_non_null(node);
        assert_memory_equal(node, root, strlen(root));
        return strdup(node + strlen(root) + strlen("/dev/"));
}

static void expect_pick(const char *text, const char *want) {
        int r;
        _cleanup_free_ char *got = pick(text, NULL, 0, &r, NULL);
        if (!got || !streq(got, want))
                print_message("%s: got %s (%d), want %s\n", text, strempty(got), r, want);
        assert_non_null(got);
        assert_string_equal(got, want);
}

static void test_one_match(void **state) {
        expect_pick("bus=nvme", "nvme0n1");
        expect_pick("rotational=false,size>=1T", "nvme0n1");
}

static void test_fields(void **state) {
        expect_pick("serial=S5Y1*", "sdb");           /* ATA serial from VPD page 0x80 */
        expect_pick("model=samsung ssd 870", "sdb");  /* any case */
        expect_pick("path=pci-0000:00:1f.2-ata-2.0", "sdb");
        expect_pick("path=*ata-2*", "sdb");
        expect_pick("wwn=naa.5002538e*", "sdb");
        expect_pick("removable=true", "sdc");         /* sde is removable too, but has no medium */
        expect_pick("bus=usb", "sdc");
        expect_pick("vendor=sandisk", "sdc");
        expect_pick("bus=scsi", "sdd");
        expect_pick("bus=virtio", "vda");
        expect_pick("serial=data1", "vda");
        expect_pick("vendor=0x1af4", "vda");
        expect_pick("bus=ata,rotational=true", "sda");
        expect_pick("size=300Gi", "sda");
        expect_pick("size=107374182400,bus!=ata", "sdd");
        expect_pick("model=QEMU*,bus=ata|usb", "sda");
        expect_pick("size>=20G,size<=20GB", "vda");
}

static void expect_log(const char *log, const char *needle) {
        if (!strstr(log, needle))
                print_message("the log lacks \"%s\":\n%s\n", needle, log);
        assert_non_null(strstr(log, needle));
}

static void test_no_match(void **state) {
        int r;
        _cleanup_free_ char *got = pick("size>=10T", NULL, 0, &r, NULL);
        assert_null(got);
        assert_int_equal(r, -ENODEV);
        _cleanup_free_ char *log = captured();
        /* Every disk, one line each, with every field a selector can use; then the error. */
        expect_log(log, "The disks this machine has (\"match\": install.data_disk \"size>=10T\" holds for it):");
        expect_log(log, "/dev/sda size=322122547200 (300 GiB) rotational=true removable=false bus=ata model=\"QEMU HARDDISK\" "
                        "vendor=ATA serial=node1-sda wwn=- path=pci-0000:00:1f.2-ata-1|pci-0000:00:1f.2-ata-1.0 "
                        "by-id /dev/disk/by-id/ata-QEMU_HARDDISK_node1-sda\n");
        expect_log(log, "/dev/nvme0n1 size=2000398934016 (1.8 TiB) rotational=false removable=false bus=nvme "
                        "model=\"Samsung SSD 980 PRO 2TB\" vendor=- serial=S6B0NL0T wwn=eui.002538b111b2c3d4 "
                        "path=pci-0000:00:04.0-nvme-1 by-id /dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T\n");
        expect_log(log, "/dev/mmcblk0 size=8000000000 (7.5 GiB) rotational=false removable=false bus=mmc model=- vendor=- "
                        "serial=0x1234abcd wwn=- path=- by-id - (never chosen: read-only)\n");
        expect_log(log, "/dev/sde size=0 (0 B) rotational=- removable=true bus=usb model=\"SD Reader\" vendor=- serial=- "
                        "wwn=- path=- by-id - (never chosen: no medium (size 0))\n");
        expect_log(log, "/dev/vda size=20000000000 (18.6 GiB)");
        expect_log(log, "/dev/sdb size=");
        expect_log(log, "/dev/sdc size=");
        expect_log(log, "/dev/sdd size=");
        assert_null(strstr(log, "/dev/sr0"));
        assert_null(strstr(log, "/dev/loop0"));
        assert_null(strstr(log, "/dev/zram0"));
        assert_null(strstr(log, "/dev/dm-0"));
        assert_null(strstr(log, "match /dev/"));
        /* The last error (the FAILED line's text) names the selector and how many matched. */
        assert_string_equal(log_last_error(),
                            "install.data_disk \"size>=10T\" matched no disk (8 listed above): exactly one must match. "
                            "Change the selector, or name the disk by its /dev/disk/by-id path.");
        /* Unknown fields never match; read-only and empty disks are never chosen. */
        free(pick("wwn=*,serial=0x12*", NULL, 0, &r, NULL));
        assert_int_equal(r, -ENODEV);
        free(pick("bus=mmc", NULL, 0, &r, NULL));
        assert_int_equal(r, -ENODEV);
        free(pick("model=SD Reader", NULL, 0, &r, NULL));
        assert_int_equal(r, -ENODEV);
        /* A missing /sys/block. */
        _cleanup_free_ char *node = NULL;
        assert_int_equal(disk_select("/nonexistent", "install.device", "bus=ata", NULL, 0, 0, &node, NULL), -ENOENT);
        assert_null(node);
}

static void test_many_matches(void **state) {
        int r;
        _cleanup_free_ char *got = pick("size=100Gi", NULL, 0, &r, NULL);
        assert_null(got);
        assert_int_equal(r, -ENOTUNIQ);
        _cleanup_free_ char *log = captured();
        expect_log(log, "match /dev/sdb size=107374182400");
        expect_log(log, "match /dev/sdd size=107374182400");
        assert_null(strstr(log, "match /dev/sda"));
        assert_string_equal(log_last_error(),
                            "install.data_disk \"size=100Gi\" matched 2 disks (/dev/sdb, /dev/sdd): exactly one must match. "
                            "Add a term that tells them apart (serial=..., path=...), or name the disk by its /dev/disk/by-id path.");
        free(pick("wwn=*", NULL, 0, &r, NULL));
        assert_int_equal(r, -ENOTUNIQ);
        free(pick("wwn!=*", NULL, 0, &r, NULL)); /* sda, sdc, sdd, vda: no WWN */
        assert_int_equal(r, -ENOTUNIQ);
        assert_non_null(strstr(log_last_error(), "matched 4 disks (/dev/sda, /dev/sdc, /dev/sdd, /dev/vda)"));
}

static void test_exclusions(void **state) {
        int r;
        char **listing = NULL;
        /* The disk install.device chose is left out: the other 100 GiB disk is the one. */
        const struct ds_exclude chosen[] = { { "sdb", "chosen by install.device" } };
        _cleanup_free_ char *got = pick("size=100Gi", chosen, 1, &r, &listing);
        assert_int_equal(r, 0);
        assert_string_equal(got, "sdd");
        /* Every disk, the chosen one marked; the plan prints these lines. */
        assert_int_equal(strv_length(listing), 8);
        assert_string_equal(listing[3], "  /dev/sdb size=107374182400 (100 GiB) rotational=false removable=false bus=ata "
                                        "model=\"Samsung SSD 870\" vendor=ATA serial=S5Y1NX0R wwn=naa.5002538e40a1b2c3 "
                                        "path=pci-0000:00:1f.2-ata-2.0 by-id /dev/disk/by-id/ata-Samsung_SSD_870_S5Y1NX0R "
                                        "(never chosen: chosen by install.device)");
        assert_memory_equal(listing[5], "* /dev/sdd size=107374182400", 28);
        for (size_t i = 0; i < 8; i++)
                assert_true(i == 5 || listing[i][0] == ' ');
        strv_free(listing);
        _cleanup_free_ char *log = captured();
        expect_log(log, "install.data_disk \"size=100Gi\" chose /dev/sdd size=107374182400");

        /* The medium the installer runs from is never chosen, even when it is the only match. */
        const struct ds_exclude media[] = { { "sdc", "the medium the installer runs from" },
                                            { "nvme0n1", "the medium the installer runs from" } };
        free(pick("bus=nvme", media, 2, &r, NULL));
        assert_int_equal(r, -ENODEV);
        _cleanup_free_ char *log2 = captured();
        expect_log(log2, "/dev/nvme0n1 size=2000398934016 (1.8 TiB) rotational=false removable=false bus=nvme "
                         "model=\"Samsung SSD 980 PRO 2TB\" vendor=- serial=S6B0NL0T wwn=eui.002538b111b2c3d4 "
                         "path=pci-0000:00:04.0-nvme-1 by-id /dev/disk/by-id/nvme-Samsung_SSD_980_PRO_2TB_S6B0NL0T "
                         "(never chosen: the medium the installer runs from)\n");
        free(pick("removable=true", media, 2, &r, NULL));
        assert_int_equal(r, -ENODEV);
        /* Without the exclusions both are found. */
        expect_pick("bus=nvme", "nvme0n1");
}

static void test_bad_selector(void **state) {
        _cleanup_free_ char *node = NULL;
        capture_start();
        assert_int_equal(disk_select(root, "install.device", "colour=red", NULL, 0, 0, &node, NULL), -EINVAL);
        assert_null(node);
        assert_non_null(strstr(log_last_error(), "install.device \"colour=red\" is not a disk selector: unknown field \"colour\""));
}

/* No match at first: disk_select looks again until its deadline (a disk appearing late). */
static void test_waits_for_late_disks(void **state) {
        _cleanup_free_ char *node = NULL;
        capture_start();
        assert_int_equal(disk_select(root, "install.device", "bus=scsi,size>=1T", NULL, 0, now_usec() + 600000, &node, NULL),
                         -ENODEV);
        _cleanup_free_ char *log = captured();
        expect_log(log, "Waiting up to 1 s for a disk matching install.device \"bus=scsi,size>=1T\".");
        expect_log(log, "matched no disk");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_terms),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_facts),
                cmocka_unit_test(test_one_match),
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_no_match),
                cmocka_unit_test(test_many_matches),
                cmocka_unit_test(test_exclusions),
                cmocka_unit_test(test_bad_selector),
                cmocka_unit_test(test_waits_for_late_disks),
        };
        int r = cmocka_run_group_tests(tests, setup, teardown);
        free(capture);
        return r;
}
