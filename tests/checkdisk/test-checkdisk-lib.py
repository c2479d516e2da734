#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""qemu/check_disk_lib.py without root: the YAML reader on the agent's golden files and on the
constructs libyaml's emitter can write, the layout arithmetic against REFERENCE.md section 3, the
server URL normalisation, the forms a secret is searched in, the crypt check (suite unit)."""
import os
import subprocess
import sys
import unittest

TESTS = os.environ.get("TESTS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = os.path.dirname(TESTS)
GOLDEN = os.path.join(TESTS, "install", "golden")
sys.path.insert(0, os.path.join(TOP, "qemu"))

import check_disk_lib as L  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
SKIPPED = []  # why a case could not run here


def golden(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as f:
        return f.read()


def rancherd(custom):
    for step in custom["stages"]["initramfs"]:
        for f in step.get("files") or []:
            if f["path"] == "/etc/rancher/rancherd/config.yaml":
                return f
    raise AssertionError("no rancherd config")


class Yaml(unittest.TestCase):
    def test_golden_create(self):
        c = L.parse_yaml(golden("create-90_custom.yaml"))
        self.assertEqual(c["name"], "Harvester Configuration")
        init = c["stages"]["initramfs"][0]
        self.assertEqual(init["hostname"], "node1")
        self.assertEqual(init["users"]["rancher"]["passwd"], "$6$abcdefgh12345678$0123456789")
        f = rancherd(c)
        self.assertEqual(f["permissions"], "384")
        rd = L.parse_yaml(f["content"])
        self.assertEqual(rd["role"], "cluster-init")
        self.assertEqual(rd["token"], 'tok"en\\with:specials#1')
        self.assertNotIn("server", rd)
        self.assertEqual(rd["labels"], ["harvesterhci.io/managed=true"])
        self.assertEqual(c["stages"]["rootfs"][0]["environment"]["PERSISTENT_STATE_BIND"], "true")
        hc = L.parse_yaml(golden("create-harvester.config"))
        self.assertEqual(hc["token"], 'tok"en\\with:specials#1')
        self.assertEqual(hc["install"]["mode"], "create")
        self.assertEqual(hc["os"]["hostname"], "node1")
        self.assertEqual(hc["serverurl"], "")
        self.assertEqual(hc["install"]["webhooks"], [])

    def test_golden_join(self):
        c = L.parse_yaml(golden("join-90_custom.yaml"))
        rd = L.parse_yaml(rancherd(c)["content"])
        self.assertEqual(rd, {
            "server": "https://10.0.2.100:443", "role": "agent", "token": "token",
            "kubernetesVersion": "v1.24.11+rke2r1", "rancherVersion": "v2.6.11",
            "rancherInstallerImage": "rancher/system-agent-installer-rancher:v2.6.11",
            "labels": ["harvesterhci.io/managed=true"]})
        self.assertEqual(c["stages"]["network"][0]["authorized_keys"]["rancher"],
                         ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host"])
        self.assertEqual(c["stages"]["initramfs"][0]["sysctl"], {})
        hc = L.parse_yaml(golden("join-harvester.config"))
        self.assertEqual(hc["serverurl"], "https://10.0.2.100:443")
        self.assertEqual(hc["install"]["managementinterface"]["interfaces"], [{"name": "ens5", "hwaddr": ""}])

    def test_same_as_pyyaml(self):
        try:
            import yaml
        except ImportError:
            SKIPPED.append("PyYAML comparison: python3-yaml is not installed")
            self.skipTest("python3-yaml is not installed")

        def norm(v):
            if isinstance(v, dict):
                return {k: norm(x) for k, x in v.items()}
            if isinstance(v, list):
                return [norm(x) for x in v]
            return "" if v is None else v

        for name in ("create-90_custom.yaml", "join-90_custom.yaml", "create-harvester.config",
                     "join-harvester.config"):
            text = golden(name)
            self.assertEqual(norm(L.parse_yaml(text)), norm(yaml.load(text, Loader=yaml.BaseLoader)), name)

    def test_block_scalars(self):
        doc = ("a: |\n  one\n   two\n\n  three\n"
               "b: |-\n  x\n  y\n\n"
               "c: |+\n  keep\n\n"
               "d: |2\n    indented\n  back\n"
               "e:\n- |\n  in a sequence\n- plain\n"
               "f: >\n  folded\n  line\n")
        v = L.parse_yaml(doc)
        self.assertEqual(v["a"], "one\n two\n\nthree\n")
        self.assertEqual(v["b"], "x\ny")
        self.assertEqual(v["c"], "keep\n\n")
        self.assertEqual(v["d"], "  indented\nback\n")
        self.assertEqual(v["e"], ["in a sequence\n", "plain"])
        self.assertEqual(v["f"], "folded line\n")

    def test_scalars(self):
        v = L.parse_yaml('"quoted: key": "\\x41\\u00e9\\t\\"q\\\\"\n'
                         "sq: 'it''s # not a comment'\n"
                         "plain: value # a comment\n"
                         "empty:\n"
                         "flow: [a, \"b, c\", {k: v}]\n"
                         "nested:\n  - - x\n    - y\n  - k: v\n    k2: w\n")
        self.assertEqual(v["quoted: key"], 'A\u00e9\t"q\\')
        self.assertEqual(v["sq"], "it's # not a comment")
        self.assertEqual(v["plain"], "value")
        self.assertIsNone(v["empty"])
        self.assertEqual(v["flow"], ["a", "b, c", {"k": "v"}])
        self.assertEqual(v["nested"], [["x", "y"], {"k": "v", "k2": "w"}])

    def test_refusals(self):
        for bad in ("a: 1\na: 2\n", "a:\n\tb: 1\n", 'a: "open\n', "a: 1\n  b: 2\n", "a: &x 1\n",
                    "a: 'x' trailing\n", "- a\nb: 1\n"):
            with self.assertRaises(L.YamlError, msg=repr(bad)):
                L.parse_yaml(bad)


class Layout(unittest.TestCase):
    def test_persistent_formula(self):
        # REFERENCE.md section 3's examples.
        for d, g in ((60, 25), (100, 37), (139, 49), (140, 50), (200, 60), (300, 70), (500, 90), (600, 100),
                     (2000, 100)):
            self.assertEqual(L.persistent_gib(d), g, d)

    def test_300g(self):
        size = 300 * GiB
        p = L.expected_layout(size)
        self.assertEqual([x[1] for x in p], ["efi", "oem", "recovery", "state", "persistent", "data"])
        self.assertEqual([x[2] for x in p], ["COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT",
                                             "HARV_LH_DEFAULT"])
        self.assertEqual(p[0][4], L.GPT_TYPE_EFI_SYSTEM)
        self.assertEqual([(x[5], x[6]) for x in p[:5]],
                         [(MiB, 64 * MiB), (65 * MiB, 50 * MiB), (115 * MiB, 8 * GiB), (115 * MiB + 8 * GiB, 15 * GiB),
                          (115 * MiB + 23 * GiB, 70 * GiB)])
        end = p[5][5] + p[5][6]
        self.assertEqual(end % MiB, 0)
        backup = size - 512 - 128 * 128
        self.assertTrue(backup - MiB < end <= backup)

    def test_data_disk(self):
        p = L.expected_layout(300 * GiB, data_disk=True)
        self.assertEqual(len(p), 5)
        self.assertEqual(p[1][6], 64 * MiB)
        self.assertEqual(p[4][5] + p[4][6], (300 * GiB - 512 - 128 * 128) // MiB * MiB)

    def test_persistent_size_and_4k(self):
        p = L.expected_layout(300 * GiB, persistent_bytes=150 * GiB + 1)
        self.assertEqual(p[4][6], 150 * GiB + MiB)
        p = L.expected_layout(300 * GiB, sector_size=4096)
        self.assertEqual(p[5][5] + p[5][6], (300 * GiB - 4096 - 128 * 128) // MiB * MiB)

    def test_bios_gpt(self):
        # the agent's layout (tests/disk/test-layout.c test_bios_gpt): bios_grub 1 MiB first, no fs
        p = L.expected_layout(300 * GiB, firmware="bios")
        self.assertEqual([x[1] for x in p], ["bios", "oem", "recovery", "state", "persistent", "data"])
        self.assertEqual(p[0][2:7], (None, None, L.GPT_TYPE_BIOS_BOOT, MiB, MiB))
        self.assertEqual([x[6] // MiB for x in p], [1, 50, 8192, 15360, 70 * 1024, 211852 + 63])

    def test_msdos(self):
        # force_mbr (test_msdos): four primaries of type 83, no partition 6, no backup table
        for data_disk in (False, True):
            p = L.expected_layout(300 * GiB, data_disk=data_disk, firmware="bios", msdos=True)
            self.assertEqual([x[0] for x in p], [1, 2, 3, 4])
            self.assertEqual([x[1] for x in p], ["oem", "recovery", "state", "persistent"])
            self.assertEqual({x[4] for x in p}, {L.MBR_TYPE_LINUX})
            self.assertEqual([x[6] // MiB for x in p], [64, 8192, 15360, 307200 - 1 - 64 - 8192 - 15360])
            self.assertEqual(p[0][5], MiB)

    def test_sizes(self):
        self.assertEqual(L.parse_size("150Gi"), 150 * GiB)
        self.assertEqual(L.parse_size("1024"), 1024)
        self.assertEqual(L.fmt_bytes(37 * GiB), "37 GiB")
        self.assertEqual(L.fmt_bytes(50 * MiB), "50 MiB")


class Misc(unittest.TestCase):
    def test_server_url(self):
        for given, want in (("https://10.0.2.100", "https://10.0.2.100:443"),
                            ("https://10.0.2.100:443/", "https://10.0.2.100:443"),
                            ("10.0.2.100", "https://10.0.2.100:443"),
                            ("https://[fd00::1]", "https://[fd00::1]:443"),
                            ("https://vip.example:443", "https://vip.example:443")):
            self.assertEqual(L.normalize_server_url(given), want, given)

    def test_secret_forms(self):
        forms = L.secret_forms('tok"en\\x y')
        for f in (b'tok"en\\x y', b'tok\\"en\\\\x y', b"tok%22en%5Cx%20y"):
            self.assertIn(f, forms)

    def test_crypt(self):
        h = subprocess.run(["openssl", "passwd", "-6", "-salt", "abcdefgh12345678", "-stdin"], input="p@ss word\n",
                           capture_output=True, text=True)
        if h.returncode != 0:
            SKIPPED.append("crypt: openssl passwd -6 failed")
            self.skipTest("openssl passwd -6 failed: " + h.stderr.strip())
        h = h.stdout.strip()
        self.assertTrue(L.crypt_matches("p@ss word", h))
        self.assertFalse(L.crypt_matches("p@ss word2", h))


if __name__ == "__main__":
    # A skipped case makes the whole program a skip (exit 77) for meson to count, never a pass.
    res = unittest.main(verbosity=1, exit=False).result
    if not res.wasSuccessful():
        sys.exit(1)
    if SKIPPED:
        print("SKIP: " + "; ".join(SKIPPED))
        sys.exit(77)
    sys.exit(0)
