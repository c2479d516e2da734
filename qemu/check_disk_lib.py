# SPDX-License-Identifier: Apache-2.0
"""Host-side checks of a disk the agent installed inside a QEMU VM (see qemu/check-disk).

Python 3 standard library plus Debian tools: qemu-utils (qemu-img), util-linux (losetup, partx,
blkid, mount), fdisk (sfdisk), mtools (mcopy), e2fsprogs (debugfs, dumpe2fs), openssl (only when
Python has no crypt module); grub-script-check (grub-common) is used when present.

The host kernel may have no GPT parser and no vfat (TEST-MACHINE.md): partitions are added with
BLKPG (partx -a), COS_GRUB is read with mtools, the ext4 file systems are mounted read-only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings

MiB = 1 << 20
GiB = 1 << 30
GPT_ENTRIES_BYTES = 128 * 128
GPT_TYPE_EFI_SYSTEM = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_TYPE_LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
IMAGE_MIB = 3072  # install.h INSTALL_IMAGE_MIB
SCAN_LIMIT = 16 * MiB  # files scanned for secrets are smaller than this
DATA_DISK_SLACK = 128 * MiB  # mke2fs may leave a short last block group out

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_SKIP = 0, 1, 2, 77


class Skip(Exception):
    """The checks cannot run here (not root, tools or loop devices missing): exit 77."""


class YamlError(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# A YAML subset reader: what libyaml's emitter writes in block style with unlimited width (the
# agent's 90_custom.yaml and harvester.config) and the agent's hand-written rancherd and rke2
# files: block mappings and sequences, compact "- key: value" items, literal (and folded) block
# scalars with chomping and indentation indicators, plain, single- and double-quoted one-line
# scalars, small flow collections. Scalars stay strings (an empty value is None). One document.

_DQ_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
    "L": "\u2028", "P": "\u2029",
}


def _parse_dq(s, pos):
    """s[pos] == '"'. Returns (value, index after the closing quote)."""
    out = []
    i = pos + 1
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(s):
                break
            e = s[i + 1]
            if e in _DQ_ESCAPES:
                out.append(_DQ_ESCAPES[e])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            if width is None or i + 2 + width > len(s):
                raise YamlError("unknown escape \\%s in a double-quoted scalar" % e)
            try:
                out.append(chr(int(s[i + 2:i + 2 + width], 16)))
            except ValueError:
                raise YamlError("bad escape \\%s%s" % (e, s[i + 2:i + 2 + width])) from None
            i += 2 + width
            continue
        out.append(c)
        i += 1
    raise YamlError("unterminated double-quoted scalar (multi-line scalars are not supported)")


def _parse_sq(s, pos):
    out = []
    i = pos + 1
    while i < len(s):
        c = s[i]
        if c == "'":
            if s.startswith("''", i):
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise YamlError("unterminated single-quoted scalar (multi-line scalars are not supported)")


def _rest_is_empty(s, i):
    rest = s[i:].strip()
    if rest and not rest.startswith("#"):
        raise YamlError("unexpected text after a quoted scalar: %r" % rest[:40])


def _plain(s):
    # A comment starts at " #".
    m = re.search(r"\s#", s)
    if m:
        s = s[:m.start()]
    s = s.strip()
    return None if s in ("", "~", "null", "Null", "NULL") else s


def _parse_flow(s, i):
    """A flow collection or scalar starting at s[i]; returns (value, next index)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise YamlError("unterminated flow collection")
    c = s[i]
    if c in "[{":
        close = "]" if c == "[" else "}"
        items = [] if c == "[" else {}
        i += 1
        while True:
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == close:
                return items, i + 1
            if c == "[":
                v, i = _parse_flow(s, i)
                items.append(v)
            else:
                k, i = _parse_flow(s, i)
                while i < len(s) and s[i] == " ":
                    i += 1
                if i >= len(s) or s[i] != ":":
                    raise YamlError("flow mapping entry without ':'")
                v, i = _parse_flow(s, i + 1)
                items[k] = v
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == ",":
                i += 1
            elif i < len(s) and s[i] == close:
                return items, i + 1
            else:
                raise YamlError("unterminated flow collection")
    if c == '"':
        return _parse_dq(s, i)
    if c == "'":
        return _parse_sq(s, i)
    m = re.compile(r"[^,\[\]{}]*").match(s, i)
    text = m.group(0)
    # "a: b" inside a flow mapping: the key ends at ": " or ":" before a separator.
    k = re.search(r":(\s|$)", text)
    if k:
        text = text[:k.start()]
    return _plain(text), i + len(text)


def _scalar_inline(s):
    s = s.strip()
    if s.startswith('"'):
        v, i = _parse_dq(s, 0)
        _rest_is_empty(s, i)
        return v
    if s.startswith("'"):
        v, i = _parse_sq(s, 0)
        _rest_is_empty(s, i)
        return v
    if s.startswith("[") or s.startswith("{"):
        v, i = _parse_flow(s, 0)
        _rest_is_empty(s, i)
        return v
    if s.startswith(("&", "*", "!", "%", "@", "`")):
        raise YamlError("anchors, aliases, tags and directives are not supported: %r" % s[:40])
    return _plain(s)


def _split_key(content):
    """(key, rest) when content is "key: value" / "key:", else None."""
    if content.startswith('"') or content.startswith("'"):
        try:
            k, i = (_parse_dq if content[0] == '"' else _parse_sq)(content, 0)
        except YamlError:
            return None
        if content[i:i + 1] == ":" and (i + 1 == len(content) or content[i + 1] in " \t"):
            return k, content[i + 1:]
        return None
    if content.startswith(("[", "{", "#", "|", ">")):
        return None
    m = re.search(r":(\s|$)", content)
    if not m:
        return None
    key = content[:m.start()].strip()
    if not key or re.search(r"\s#", content[:m.start()]):
        return None
    return key, content[m.start() + 1:]


class _Parser:
    def __init__(self, text):
        self.lines = text.split("\n")
        for n, line in enumerate(self.lines):
            lead = line[:len(line) - len(line.lstrip(" \t"))]
            if "\t" in lead and line.strip():
                raise YamlError("line %d: tab in the indentation" % (n + 1))

    @staticmethod
    def indent(line):
        return len(line) - len(line.lstrip(" "))

    def skip(self, i):
        while i < len(self.lines):
            s = self.lines[i].strip()
            if s and not s.startswith("#") and s not in ("---", "..."):
                break
            i += 1
        return i

    def error(self, i, msg):
        return YamlError("line %d: %s" % (i + 1, msg))

    def node(self, i, ind):
        content = self.lines[i][ind:]
        if content == "-" or content.startswith("- "):
            return self.seq(i, ind)
        if _split_key(content) is not None:
            return self.map(i, ind)
        if content.startswith(("|", ">")):
            return self.block_scalar(content, i, ind - 1)
        try:
            return _scalar_inline(content), i + 1
        except YamlError as e:
            raise self.error(i, str(e)) from None

    def seq(self, i, ind):
        items = []
        while True:
            i = self.skip(i)
            if i >= len(self.lines):
                break
            line = self.lines[i]
            li = self.indent(line)
            content = line[li:]
            if li < ind or not (content == "-" or content.startswith("- ")):
                if li > ind:
                    raise self.error(i, "unexpected indentation in a sequence")
                break
            if li > ind:
                raise self.error(i, "unexpected indentation in a sequence")
            rest = content[1:]
            if rest.strip() == "" or rest.strip().startswith("#"):
                j = self.skip(i + 1)
                if j < len(self.lines) and self.indent(self.lines[j]) > ind:
                    v, i = self.node(j, self.indent(self.lines[j]))
                else:
                    v, i = None, i + 1
            else:
                col = ind + 1 + (len(rest) - len(rest.lstrip(" ")))
                self.lines[i] = " " * col + rest.lstrip(" ")
                v, i = self.node(i, col)
            items.append(v)
        return items, i

    def map(self, i, ind):
        d = {}
        while True:
            i = self.skip(i)
            if i >= len(self.lines):
                break
            line = self.lines[i]
            li = self.indent(line)
            if li < ind:
                break
            if li > ind:
                raise self.error(i, "unexpected indentation in a mapping")
            content = line[li:]
            if content == "-" or content.startswith("- "):
                break  # a sequence at the parent's indentation ends this mapping
            kv = _split_key(content)
            if kv is None:
                raise self.error(i, "expected \"key: value\": %r" % content[:60])
            key, rest = kv
            if key in d:
                raise self.error(i, "duplicate key %r" % key)
            d[key], i = self.value_after(rest, i, ind)
        return d, i

    def value_after(self, rest, i, ind):
        r = rest.strip()
        if r == "" or r.startswith("#"):
            j = self.skip(i + 1)
            if j < len(self.lines):
                lj = self.indent(self.lines[j])
                cj = self.lines[j][lj:]
                if lj > ind or (lj == ind and (cj == "-" or cj.startswith("- "))):
                    return self.node(j, lj)
            return None, i + 1
        if r.startswith(("|", ">")):
            return self.block_scalar(r, i, ind)
        try:
            return _scalar_inline(r), i + 1
        except YamlError as e:
            raise self.error(i, str(e)) from None

    def block_scalar(self, header, i, ind):
        m = re.match(r"^([|>])([-+]?)([1-9]?)([-+]?)\s*(#.*)?$", header)
        if not m or (m.group(2) and m.group(4)):
            raise self.error(i, "bad block scalar header %r" % header)
        folded = m.group(1) == ">"
        chomp = m.group(2) or m.group(4)
        explicit = int(m.group(3)) if m.group(3) else 0
        j = i + 1
        bi = None
        if explicit:
            bi = max(ind, 0) + explicit
        body = []
        while j < len(self.lines):
            line = self.lines[j]
            if line.strip() == "":
                body.append(line[bi:] if bi is not None and len(line) > bi else "")
                j += 1
                continue
            li = self.indent(line)
            if bi is None:
                if li <= ind:
                    break
                bi = li
            if li < bi:
                break
            body.append(line[bi:])
            j += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if folded:
            text, prev_blank = "", True
            for k, b in enumerate(body):
                if b == "":
                    text += "\n"
                    prev_blank = True
                elif b.startswith(" "):
                    text += ("" if k == 0 or prev_blank else "\n") + b
                    prev_blank = False
                else:
                    text += ("" if k == 0 or prev_blank else " ") + b
                    prev_blank = False
        else:
            text = "\n".join(body)
        if chomp == "-":
            value = text
        elif chomp == "+":
            value = text + "\n" * (trailing + (1 if body else 0))
        else:
            value = text + ("\n" if body else "")
        return value, j


def parse_yaml(text):
    """Parses the YAML subset described above; raises YamlError."""
    if text.startswith("\ufeff"):
        text = text[1:]
    p = _Parser(text)
    i = p.skip(0)
    if i >= len(p.lines):
        return None
    ind = p.indent(p.lines[i])
    if ind != 0:
        raise p.error(i, "the document does not start at column 0")
    value, i = p.node(i, 0)
    i = p.skip(i)
    if i < len(p.lines):
        raise p.error(i, "text after the document's top-level node: %r" % p.lines[i].strip()[:60])
    return value


# ------------------------------------------------------------------------------------------------
# The expected layout: a port of agent/layout.c (REFERENCE.md section 3)


def persistent_gib(d):
    if d < 60:
        return 25
    if d < 140:
        return 25 + (d - 60) * 5 // 16
    return min(50 + (d - 100) // 100 * 10, 100)


def expected_layout(disk_bytes, sector_size=512, data_disk=False, persistent_bytes=0):
    """[(partno, name, label, fstype, type_guid, start, size)] as the agent lays out the disk."""
    ss = sector_size
    end_usable = disk_bytes // ss * ss - (GPT_ENTRIES_BYTES + ss)
    end = end_usable // MiB * MiB
    data_part = not data_disk
    oem = (50 if data_part else 64) * MiB
    fixed = MiB + 64 * MiB + oem + 8 * GiB + 15 * GiB
    if data_part:
        if persistent_bytes:
            want = (persistent_bytes + MiB - 1) // MiB * MiB
        else:
            want = persistent_gib(disk_bytes >> 30) * GiB
        most = end - fixed - GiB
        persistent = min(want, most)  # more than "most" only installs with skipchecks, shrunk
    else:
        persistent = end - fixed
    parts = []
    pos = MiB

    def add(name, label, fstype, guid, size):
        nonlocal pos
        parts.append((len(parts) + 1, name, label, fstype, guid, pos, size))
        pos += size

    add("efi", "COS_GRUB", "vfat", GPT_TYPE_EFI_SYSTEM, 64 * MiB)
    add("oem", "COS_OEM", "ext4", GPT_TYPE_LINUX_FS, oem)
    add("recovery", "COS_RECOVERY", "ext4", GPT_TYPE_LINUX_FS, 8 * GiB)
    add("state", "COS_STATE", "ext4", GPT_TYPE_LINUX_FS, 15 * GiB)
    add("persistent", "COS_PERSISTENT", "ext4", GPT_TYPE_LINUX_FS, persistent)
    if data_part:
        add("data", "HARV_LH_DEFAULT", "ext4", GPT_TYPE_LINUX_FS, end - pos)
    return parts


def fmt_bytes(n):
    if n % GiB == 0:
        return "%d GiB" % (n // GiB)
    if n % MiB == 0:
        return "%d MiB" % (n // MiB)
    return "%d bytes" % n


def parse_size(s):
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B?)?\s*", s, re.I)
    if not m:
        raise argparse.ArgumentTypeError("%r is not a size such as 150Gi or 161061273600" % s)
    mult = {"": 1, "K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * mult


def normalize_server_url(url):
    """As the agent's normalize_server_url: https://<host>:443."""
    u = url.strip()
    if "://" not in u:
        u = "https://" + u
    p = urllib.parse.urlsplit(u)
    netloc = p.netloc
    host = netloc.rsplit("@", 1)[-1]
    if not re.search(r":\d+$", host):
        netloc += ":443"
    return "%s://%s" % (p.scheme.lower(), netloc)


# ------------------------------------------------------------------------------------------------
# Secrets


def secret_forms(secret):
    """The byte strings a secret may appear as in a file: as is, escaped in a YAML/JSON
    double-quoted or a single-quoted scalar, percent-encoded in a URL."""
    forms = {secret, json.dumps(secret, ensure_ascii=False)[1:-1], secret.replace("'", "''"),
             urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}
    return sorted({f.encode("utf-8") for f in forms if f})


def crypt_matches(clear, hashed):
    """True/False, or None when it cannot be computed here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # noqa: deprecated in 3.11, still present in Debian 12's Python
        h = crypt.crypt(clear, hashed)
        if h is not None:
            return h == hashed
    except ImportError:
        pass
    m = re.match(r"^\$6\$([^$]{0,16})\$", hashed)
    if not m or "\n" in clear or not shutil.which("openssl"):
        return None
    r = subprocess.run(["openssl", "passwd", "-6", "-salt", m.group(1), "-stdin"], input=clear + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip() == hashed


# ------------------------------------------------------------------------------------------------
# Running tools and holding what must be released


class Interrupted(BaseException):
    """A signal asked to stop: raised only where nothing is half set up (see on_signal)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


# A signal only records itself (and stops a long-running child such as qemu-img convert), so that
# a mount or loop device never comes into being without its cleanup registered; the checks stop
# at the next safe point: before a command starts, after a cleanup is registered, between checks.
_signal = {"signum": None, "child": None, "releasing": False}


def on_signal(signum, frame):
    _signal["signum"] = signum
    child = _signal["child"]
    if child is not None and child.poll() is None:
        child.terminate()


def check_interrupt():
    if _signal["signum"] is not None and not _signal["releasing"]:
        raise Interrupted(_signal["signum"])


def run(argv, check=True, interruptible=False, **kw):
    check_interrupt()
    if interruptible:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw) as p:
            _signal["child"] = p
            try:
                out, err = p.communicate()
            finally:
                _signal["child"] = None
        r = subprocess.CompletedProcess(argv, p.returncode, out, err)
        check_interrupt()
    else:
        r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        raise RuntimeError("%s failed (exit %d)%s" % (" ".join(argv[:3]), r.returncode,
                                                      ": " + msg[-1] if msg else ""))
    return r


class Resources:
    """Everything set up on the host, released newest first whatever happened."""

    def __init__(self):
        self.stack = []

    def push(self, what, fn):
        self.stack.append((what, fn))
        check_interrupt()

    def release(self):
        _signal["releasing"] = True
        ok = True
        while self.stack:
            what, fn = self.stack.pop()
            try:
                fn()
            except Exception as e:  # go on releasing the rest
                ok = False
                print("check-disk: cleanup: %s: %s" % (what, e), file=sys.stderr)
        return ok


def umount(path):
    for attempt in range(10):
        r = run(["umount", path], check=False)
        if r.returncode == 0:
            return
        time.sleep(0.3)
    run(["umount", "-l", path])


def blkid_probe(path):
    """blkid -p -o export as a dict ({} when nothing is found)."""
    r = run(["blkid", "-p", "-o", "export", path], check=False)
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        if k:
            out[k] = v
    return out


def debugfs_stat(image, path, hops=8):
    """(type, size) of path inside an ext2/3/4 image, following fast symlinks; None if missing."""
    for _ in range(hops):
        r = run(["debugfs", "-R", "stat %s" % path, image], check=False)
        out = r.stdout
        m = re.search(r"Type:\s*(\w+)", out)
        if not m:
            return None
        t = m.group(1)
        size = int(re.search(r"Size:\s*(\d+)", out).group(1)) if re.search(r"Size:\s*(\d+)", out) else 0
        if t != "symlink":
            return t, size
        link = re.search(r'Fast link dest:\s*"(.*)"', out)
        if not link:
            return ("symlink", size)
        dest = link.group(1)
        path = dest if dest.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(path), dest))
    return ("symlink", 0)


def path_nocase(root, rel):
    """root/rel, matching each component without regard to case (FAT); the plain path if none."""
    cur = root
    for comp in rel.split("/"):
        try:
            names = os.listdir(cur)
        except OSError:
            return os.path.join(root, rel)
        match = [n for n in names if n == comp] or [n for n in names if n.lower() == comp.lower()]
        if not match:
            return os.path.join(root, rel)
        cur = os.path.join(cur, match[0])
    return cur


def yip_mode(v):
    """A yip "permissions" value (decimal as yip reads it; "0600"/"0o600" read as octal) or None."""
    s = str(v) if v is not None else ""
    try:
        if s.startswith("0o"):
            return int(s[2:], 8)
        if s.startswith("0") and len(s) > 1:
            return int(s, 8)
        return int(s)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------
# The report


class Report:
    def __init__(self, as_json):
        self.as_json = as_json
        self.checks = []

    def add(self, ok, name, fail_detail="", ok_detail=""):
        """One check; fail_detail says what is wrong (shown only when it failed)."""
        check_interrupt()
        detail = ok_detail if ok else fail_detail
        self.checks.append({"ok": bool(ok), "check": name, "detail": detail})
        if not self.as_json:
            line = ("ok: " if ok else "FAIL: ") + name
            if detail:
                line += (" (" + detail + ")") if ok else (": " + detail)
            print(line, flush=True)
        return bool(ok)

    def ok(self, name, detail=""):
        return self.add(True, name, ok_detail=detail)

    def fail(self, name, detail=""):
        return self.add(False, name, detail)

    def failed(self):
        return any(not c["ok"] for c in self.checks)

    def finish(self, extra):
        if self.as_json:
            doc = {"result": "fail" if self.failed() else "pass", "checks": self.checks}
            doc.update(extra)
            print(json.dumps(doc, indent=1))
        else:
            n_fail = sum(1 for c in self.checks if not c["ok"])
            print("%d checks, %d failed" % (len(self.checks), n_fail))


# ------------------------------------------------------------------------------------------------
# The checker


REQUIRED_TOOLS = ["qemu-img", "losetup", "partx", "sfdisk", "blkid", "mount", "umount", "mdir", "mcopy",
                  "debugfs", "dumpe2fs"]


class Checker:
    def __init__(self, args, report):
        self.a = args
        self.r = report
        self.res = Resources()
        self.tmp = None
        # (name, value): never print a value
        self.secrets = [("--secret #%d" % (i + 1), v) for i, v in enumerate(args.secret)]
        self.clear = args.password_clear
        self.scan_roots = []  # (description, directory) scanned for secrets
        self.mounts = {}  # label -> mount point
        self.grub_dir = None  # COS_GRUB extracted with mtools
        self.custom_files = None  # the files 90_custom.yaml makes the OS write

    # --- setup -----------------------------------------------------------------------------

    def attach(self, image, name):
        """A read-only loop device over image (converted to sparse raw first unless it is raw).
        Returns (loop device, raw path, size in bytes)."""
        info = json.loads(run(["qemu-img", "info", "--output=json", image]).stdout)
        fmt = info.get("format")
        if fmt == "raw":
            raw = os.path.abspath(image)
        else:
            raw = os.path.join(self.tmp, name + ".raw")
            t = time.monotonic()
            run(["qemu-img", "convert", "-O", "raw", "-S", "4k", image, raw], interruptible=True)
            st = os.stat(raw)
            print("check-disk: %s (%s) converted to sparse raw in %.1f s (%s allocated)" %
                  (image, fmt, time.monotonic() - t, "%.1f MiB" % (st.st_blocks * 512 / MiB)), file=sys.stderr)
        size = os.stat(raw).st_size
        # -P: a kernel that parses GPT creates the partitions itself; elsewhere partx adds them.
        loop = run(["losetup", "-r", "-P", "-f", "--show", raw]).stdout.strip()
        self.res.push("losetup -d " + loop, lambda: run(["losetup", "-d", loop]))
        return loop, raw, size

    def add_partitions(self, loop, numbers):
        nodes = {n: "%sp%d" % (loop, n) for n in numbers}
        if not all(os.path.exists(p) for p in nodes.values()):
            r = run(["partx", "-a", loop], check=False)
            self.res.push("partx -d " + loop, lambda: run(["partx", "-d", loop], check=False))
            if r.returncode != 0 and not any(os.path.exists(p) for p in nodes.values()):
                raise RuntimeError("partx -a %s failed: %s" % (loop, r.stderr.strip()))
        for _ in range(50):
            if all(os.path.exists(p) for p in nodes.values()):
                break
            time.sleep(0.1)
        return nodes

    def mount(self, node, label):
        mp = os.path.join(self.tmp, "mnt", label)
        os.makedirs(mp, exist_ok=True)
        run(["mount", "-t", "ext4", "-o", "ro,noload", node, mp])
        self.res.push("umount " + mp, lambda: umount(mp))
        return mp

    # --- the install disk ----------------------------------------------------------------------

    def check_table(self, loop, size):
        R = self.r
        r = run(["sfdisk", "--json", loop], check=False)
        if r.returncode != 0 or not r.stdout.strip():
            R.fail("sda: GPT partition table", "sfdisk finds no partition table")
            return None
        pt = json.loads(r.stdout)["partitiontable"]
        if pt.get("label") != "gpt":
            R.fail("sda: GPT partition table", "the table is %s" % pt.get("label"))
            return None
        R.ok("sda: GPT partition table")
        ss = int(pt.get("sectorsize", 512))
        parts = {}
        for p in pt.get("partitions", []):
            m = re.search(r"(\d+)$", p["node"])
            parts[int(m.group(1))] = p
        data_disk = self.a.data_disk is not None
        exp = expected_layout(size, ss, data_disk, self.a.persistent_size or 0)
        want = [e[0] for e in exp]
        R.add(sorted(parts) == want, "sda: partitions %s" % ",".join(map(str, want)),
              "found %s" % (",".join(map(str, sorted(parts))) or "none"))
        if data_disk:
            R.add(6 not in parts, "sda: no partition 6 with a data disk")
        first = parts.get(1)
        if first:
            R.add(int(first["start"]) * ss == MiB, "sda: partition 1 starts at 1 MiB",
                  "starts at %d bytes" % (int(first["start"]) * ss))
        misaligned = [n for n, p in sorted(parts.items())
                      if (int(p["start"]) * ss) % MiB or (int(p["size"]) * ss) % MiB]
        R.add(not misaligned, "sda: partitions start and end on 1 MiB boundaries",
              "not aligned: %s" % ",".join(map(str, misaligned)))
        what = ("the v1.1 formula for %d GiB" % (size >> 30)) if not self.a.persistent_size else \
            "--persistent-size"
        for n, name, label, fstype, guid, start, psize in exp:
            p = parts.get(n)
            if not p:
                continue
            R.add(p.get("name") == name, "sda%d: GPT name %s" % (n, name), "it is %r" % p.get("name"))
            R.add(p.get("type", "").upper() == guid,
                  "sda%d: type %s" % (n, "EFI System" if guid == GPT_TYPE_EFI_SYSTEM else "Linux filesystem"),
                  "it is %s" % p.get("type"))
            gs, gz = int(p["start"]) * ss, int(p["size"]) * ss
            note = ""
            if n == 5:
                note = " (rest of the disk)" if data_disk else " (%s)" % what
            elif n == 6:
                note = " (rest of the disk)"
            R.add(gs == start and gz == psize,
                  "sda%d: %s at %s%s" % (n, fmt_bytes(psize), fmt_bytes(start), note),
                  "it is %s at %s" % (fmt_bytes(gz), fmt_bytes(gs)))
        return exp, parts

    def check_filesystems(self, nodes, exp):
        """Labels and types; mounts the ext4 ones. Returns {label: node} of what was found."""
        R = self.r
        found = {}
        for n, name, label, fstype, guid, start, psize in exp:
            node = nodes.get(n)
            if not node or not os.path.exists(node):
                R.fail("sda%d: %s %s" % (n, fstype, label), "no partition node %s" % node)
                continue
            b = blkid_probe(node)
            if b.get("TYPE") == fstype and b.get("LABEL") == label:
                R.ok("sda%d: %s %s" % (n, fstype, label))
                found[label] = node
            else:
                R.fail("sda%d: %s %s" % (n, fstype, label),
                       "blkid finds %s %s" % (b.get("TYPE", "no file system"), b.get("LABEL", "without a label")))
        return found

    def read_cos_grub(self, raw, exp):
        """Extracts COS_GRUB with mtools (the host may have no vfat)."""
        start = exp[0][5]
        dest = os.path.join(self.tmp, "cos_grub")
        os.makedirs(dest)
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        img = "%s@@%d" % (raw, start)
        listing = run(["mdir", "-/", "-b", "-i", img, "::/"], check=False, env=env)
        if listing.returncode != 0:
            raise RuntimeError("mdir cannot read COS_GRUB: %s" % listing.stderr.strip())
        if listing.stdout.strip():
            run(["mcopy", "-s", "-p", "-n", "-i", img, "::/*", dest + "/"], env=env)
        return dest

    def check_cos_grub(self, d):
        """The image's loader (elemental's layout): EFI/elemental/{shim.efi,grub.efi,MokManager.efi,
        grub.cfg} and the same in EFI/BOOT/ with BOOTX64.EFI = shim.efi; no file left under a
        temporary name by the commit (install_write_loader)."""
        R = self.r
        efi = path_nocase(d, "EFI/BOOT/BOOTX64.EFI")
        try:
            with open(efi, "rb") as f:
                head = f.read(2)
            R.add(head == b"MZ", "COS_GRUB: EFI/BOOT/BOOTX64.EFI (a PE image)", "it does not start with MZ")
        except OSError as e:
            R.fail("COS_GRUB: EFI/BOOT/BOOTX64.EFI (a PE image)", e.strerror)
        for sub in ("EFI/BOOT", "EFI/elemental"):
            cfg = path_nocase(d, sub + "/grub.cfg")
            name = "COS_GRUB: %s/grub.cfg finds COS_STATE and loads grub2/grub.cfg" % sub
            try:
                lines = [ln.strip() for ln in open(cfg, encoding="utf-8", errors="replace")]
            except OSError as e:
                R.fail(name, e.strerror)
                continue
            search = any(re.match(r"search\b.*(--label|-l)\b.*\bCOS_STATE\b", ln) for ln in lines)
            load = any(re.match(r"(configfile|source|normal)\b.*/grub2/grub\.cfg", ln) for ln in lines)
            R.add(search and load, name,
                  ("no search for COS_STATE" if not search else "") +
                  (" " if not search and not load else "") + ("no configfile .../grub2/grub.cfg" if not load else ""))
            self.grub_script_check("COS_GRUB: %s/grub.cfg" % sub, cfg)
        problems = []
        def data(rel):
            try:
                with open(path_nocase(d, rel), "rb") as f:
                    return f.read()
            except OSError:
                problems.append("no " + rel)
                return None
        shim = data("EFI/elemental/shim.efi")
        for rel in ("EFI/elemental/grub.efi", "EFI/elemental/MokManager.efi"):
            other = data(rel)
            same = data(rel.replace("EFI/elemental", "EFI/BOOT"))
            if other is not None and same is not None and other != same:
                problems.append("%s differs from EFI/BOOT's" % rel)
        for rel in ("EFI/BOOT/shim.efi", "EFI/BOOT/BOOTX64.EFI"):
            b = data(rel)
            if shim is not None and b is not None and b != shim:
                problems.append("%s is not EFI/elemental/shim.efi" % rel)
        left = [os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs
                if f.lower().endswith(".new")]
        if left:
            problems.append("left under a temporary name: " + ", ".join(left))
        R.add(not problems, "COS_GRUB: shim.efi, grub.efi, MokManager.efi in EFI/elemental/ and EFI/BOOT/, "
              "BOOTX64.EFI = shim.efi", "; ".join(problems))
        self.cos_grub_files = {"shim.efi": shim}

    def grub_script_check(self, name, path):
        if not shutil.which("grub-script-check"):
            return
        r = run(["grub-script-check", path], check=False)
        self.r.add(r.returncode == 0, name + " passes grub-script-check",
                   (r.stderr.strip() or r.stdout.strip())[-200:])

    def check_image(self, path, where, label):
        R = self.r
        name = "%s: %s (ext2 %s, %d MiB, /boot/vmlinuz and /boot/initrd)" % (where, os.path.relpath(path, self.mounts[where]), label, IMAGE_MIB)
        if not os.path.isfile(path):
            return R.fail(name, "missing")
        problems = []
        b = blkid_probe(path)
        if b.get("TYPE") != "ext2" or b.get("LABEL") != label:
            problems.append("blkid finds %s %s" % (b.get("TYPE", "no file system"), b.get("LABEL", "without a label")))
        sz = os.stat(path).st_size
        if sz != IMAGE_MIB * MiB:
            problems.append("size %s" % fmt_bytes(sz))
        if not problems:
            for f in ("/boot/vmlinuz", "/boot/initrd"):
                s = debugfs_stat(path, f)
                if s is None:
                    problems.append("no %s" % f)
                elif s[0] != "regular" or s[1] == 0:
                    problems.append("%s is a %s of %d bytes" % (f, s[0], s[1]))
        return R.add(not problems, name, "; ".join(problems))

    def debugfs_cat(self, image, path):
        """The bytes of path inside an ext2 image (debugfs), or None."""
        if debugfs_stat(image, path) is None:
            return None
        r = subprocess.run(["debugfs", "-R", "cat %s" % path, image], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, check=False)
        return r.stdout if r.returncode == 0 else None

    def check_state(self, state):
        """COS_STATE as a v1.1.2 install leaves it: the image's /etc/cos/grub.cfg with harv-install's
        search patches (sed as the oracle), the image's loopback/squash4/xzio modules, grub_oem_env,
        grubmenu (debug), state.yaml; active.img's bootargs.cfg with the console, passive.img's
        untouched."""
        R = self.r
        active = os.path.join(state, "cOS", "active.img")
        passive = os.path.join(state, "cOS", "passive.img")
        self.check_image(active, "COS_STATE", "COS_ACTIVE")
        self.check_image(passive, "COS_STATE", "COS_PASSIVE")
        cfg = os.path.join(state, "grub2", "grub.cfg")
        name = "COS_STATE: grub2/grub.cfg is the image's /etc/cos/grub.cfg with harv-install's patches"
        image_cfg = self.debugfs_cat(passive, "/etc/cos/grub.cfg") if os.path.isfile(passive) else None
        try:
            text = open(cfg, "rb").read()
        except OSError as e:
            text = None
            R.fail(name, e.strerror)
        if text is not None:
            if image_cfg is None:
                R.fail(name, "passive.img has no /etc/cos/grub.cfg")
            else:
                want_path = os.path.join(self.tmp, "grub.cfg.want")
                with open(want_path, "wb") as f:
                    f.write(image_cfg)
                for expr in ("s/search /search --no-floppy /", "s/search.fs_label /search --no-floppy --label /",
                             "s/search.file /search --no-floppy --file /",
                             "s/search.fs_uuid /search --no-floppy --fs-uuid /"):
                    run(["sed", "-i", expr, want_path])
                run(["sed", "-i", "-E", r"s/^(\s*search\b)(.*)root$/\1 --set=root\2/", want_path])
                want = open(want_path, "rb").read()
                R.add(text == want, name, "it differs from the patched image file")
            entries = set(re.findall(r"^\s*menuentry\s.*--id\s+(\w+)", text.decode("utf-8", "replace"), re.M))
            R.add({"cos", "fallback", "recovery"} <= entries, "COS_STATE: grub2/grub.cfg entries cos, fallback, recovery",
                  "entries: %s" % ", ".join(sorted(entries)))
            self.grub_script_check("COS_STATE: grub2/grub.cfg", cfg)
        problems = []
        for m in ("loopback", "squash4", "xzio"):
            p = os.path.join(state, "grub2", "x86_64-efi", m + ".mod")
            src = self.debugfs_cat(passive, "/usr/share/grub2/x86_64-efi/%s.mod" % m) if os.path.isfile(passive) else None
            try:
                got = open(p, "rb").read()
            except OSError:
                problems.append("no %s.mod" % m)
                continue
            if src is None or got != src:
                problems.append("%s.mod is not the image's" % m)
        R.add(not problems, "COS_STATE: grub2/x86_64-efi/{loopback,squash4,xzio}.mod from the image", "; ".join(problems))
        try:
            env = open(os.path.join(state, "grub_oem_env"), "rb").read()
            R.add(len(env) == 1024 and re.search(rb"^default_menu_entry=\S", env, re.M) is not None,
                  "COS_STATE: grub_oem_env (1 KiB, default_menu_entry)", "%d bytes" % len(env))
        except OSError as e:
            R.fail("COS_STATE: grub_oem_env (1 KiB, default_menu_entry)", e.strerror)
        menu = os.path.join(state, "grubmenu")
        try:
            mt = open(menu, encoding="utf-8", errors="replace").read()
            R.add(re.search(r"--id debug \{", mt) is not None and "${crash_kernel_params}" in mt,
                  "COS_STATE: grubmenu (the debug entry with crash_kernel_params)", "no debug entry")
            self.grub_script_check("COS_STATE: grubmenu", menu)
        except OSError as e:
            R.fail("COS_STATE: grubmenu (the debug entry with crash_kernel_params)", e.strerror)
        self.check_state_yaml(os.path.join(state, "state.yaml"), "COS_STATE")
        if os.path.isfile(active) and os.path.isfile(passive):
            a = self.debugfs_cat(active, "/etc/cos/bootargs.cfg") or b""
            p = self.debugfs_cat(passive, "/etc/cos/bootargs.cfg") or b""
            tty = self.a.tty
            want = p.replace(b'console_params="console=tty1"', ('console_params="console=%s console=tty1"' % tty).encode())
            R.add(bool(p) and a == want and a != p,
                  "active.img: etc/cos/bootargs.cfg sets console=%s console=tty1 (passive.img keeps the image's)" % tty,
                  "active's bootargs.cfg: %r" % re.findall(rb"console_params=.*", a))

    def check_state_yaml(self, path, where):
        name = "%s: state.yaml (elemental's install state: labels and images)" % where
        try:
            doc = parse_yaml(open(path, encoding="utf-8").read())
        except (OSError, ValueError) as e:
            return self.r.fail(name, str(e))
        problems = []
        want = {("state", "label"): "COS_STATE", ("state", "active", "label"): "COS_ACTIVE",
                ("state", "passive", "label"): "COS_PASSIVE", ("recovery", "label"): "COS_RECOVERY",
                ("recovery", "recovery", "label"): "COS_SYSTEM", ("oem", "label"): "COS_OEM",
                ("persistent", "label"): "COS_PERSISTENT", ("state", "active", "fs"): "ext2"}
        for keys, v in want.items():
            cur = doc
            for k in keys:
                cur = cur.get(k) if isinstance(cur, dict) else None
            if cur != v:
                problems.append("%s is %r" % (".".join(keys), cur))
        if not isinstance(doc, dict) or not re.match(r"\d{4}-\d\d-\d\dT", str(doc.get("date", ""))):
            problems.append("no date")
        self.r.add(not problems, name, "; ".join(problems))

    def check_recovery(self, rec):
        self.check_image(os.path.join(rec, "cOS", "recovery.img"), "COS_RECOVERY", "COS_SYSTEM")
        self.check_state_yaml(os.path.join(rec, "state.yaml"), "COS_RECOVERY")

    def check_mode(self, path, name, mode=0o600):
        st = os.lstat(path)
        ok = stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode and st.st_uid == 0 and st.st_gid == 0
        return self.r.add(ok, "%s: mode %04o, owner root:root" % (name, mode),
                          "mode %04o, owner %d:%d%s" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                                         "" if stat.S_ISREG(st.st_mode) else ", not a regular file"))

    def check_oem(self, oem):
        R = self.r
        a = self.a
        custom_path = os.path.join(oem, "90_custom.yaml")
        custom = None
        if not os.path.isfile(custom_path):
            R.fail("COS_OEM: 90_custom.yaml", "missing")
        else:
            self.check_mode(custom_path, "COS_OEM: 90_custom.yaml")
            raw = open(custom_path, "rb").read()
            try:
                custom = parse_yaml(raw.decode("utf-8"))
                R.add(isinstance(custom, dict), "COS_OEM: 90_custom.yaml is a YAML mapping")
            except (YamlError, UnicodeDecodeError) as e:
                R.fail("COS_OEM: 90_custom.yaml is a YAML mapping", str(e))
                custom = None
            if self.clear:
                R.add(not any(f in raw for f in secret_forms(self.clear)),
                      "COS_OEM: 90_custom.yaml does not hold the clear password", "it does")
        if isinstance(custom, dict):
            self.check_custom(custom)

        hc_path = os.path.join(oem, "harvester.config")
        if not os.path.isfile(hc_path):
            R.fail("COS_OEM: harvester.config", "missing")
        else:
            self.check_mode(hc_path, "COS_OEM: harvester.config")
            raw = open(hc_path, "rb").read()
            try:
                hc = parse_yaml(raw.decode("utf-8"))
                if not isinstance(hc, dict):
                    raise YamlError("not a mapping")
                inst = hc.get("install") or {}
                os_ = hc.get("os") or {}
                problems = []
                if inst.get("mode") != a.mode:
                    problems.append("install.mode is %r" % inst.get("mode"))
                if os_.get("hostname") != a.hostname:
                    problems.append("os.hostname is %r" % os_.get("hostname"))
                if a.mode == "join" and a.server_url and hc.get("serverurl") != normalize_server_url(a.server_url):
                    problems.append("serverurl is %r" % hc.get("serverurl"))
                if a.mode == "create" and hc.get("serverurl"):
                    problems.append("a create node with serverurl %r" % hc.get("serverurl"))
                if a.token is not None and hc.get("token") != a.token:  # never print a token
                    problems.append("token is not the --token value" if hc.get("token") else "no token")
                if a.device is not None and inst.get("device") != a.device:
                    problems.append("install.device is %r" % inst.get("device"))
                pw = os_.get("password")
                if pw and not str(pw).startswith("$"):
                    problems.append("os.password is not a crypt hash")
                R.add(not problems, "COS_OEM: harvester.config says mode %s, hostname %s%s%s%s" %
                      (a.mode, a.hostname, ", serverurl" if a.mode == "join" and a.server_url else "",
                       ", the --token token" if a.token is not None else "",
                       ", device %s" % a.device if a.device is not None else ""),
                      "; ".join(problems))
            except (YamlError, UnicodeDecodeError) as e:
                R.fail("COS_OEM: harvester.config is a YAML mapping", str(e))
            if self.clear:
                R.add(not any(f in raw for f in secret_forms(self.clear)),
                      "COS_OEM: harvester.config does not hold the clear password", "it does")

        log_path = os.path.join(oem, "install", "console.log")
        if not os.path.isfile(log_path):
            R.fail("COS_OEM: install/console.log", "missing")
        else:
            self.check_mode(log_path, "COS_OEM: install/console.log")
            raw = open(log_path, "rb").read()
            R.add(len(raw) > 0, "COS_OEM: install/console.log is not empty", "it is empty")
            leaked = self.leaks(raw)
            R.add(not leaked, "COS_OEM: install/console.log holds no secret (%d given)" % self.n_secrets(),
                  "it holds %s" % ", ".join(leaked))
        self.check_report(os.path.join(oem, "install", "report.json"))

    STAGES_BEFORE_COMMIT = ["configuration", "memory", "iso", "disk-check", "disk-write"]

    def check_report(self, path):
        """The install report the agent writes just before the commit point (README, "Webhook
        events and the install report"): 0600, one JSON object, result succeeded, the stages in
        order (all but the running install stage complete), the ISO's sha512, the install disk."""
        R = self.r
        name = "COS_OEM: install/report.json"
        if not os.path.isfile(path):
            R.fail(name, "missing")
            return
        self.check_mode(path, name)
        raw = open(path, "rb").read()
        leaked = self.leaks(raw)
        R.add(not leaked, "%s holds no secret (%d given)" % (name, self.n_secrets()), "it holds %s" % ", ".join(leaked))
        try:
            d = json.loads(raw.decode("utf-8"), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            if not isinstance(d, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as e:
            R.fail("%s is one JSON object" % name, str(e))
            return
        problems = []
        if d.get("result") != "succeeded" or d.get("failure") is not None:
            problems.append("result %r, failure %r" % (d.get("result"), d.get("failure")))
        if d.get("mode") != self.a.mode:
            problems.append("mode %r" % d.get("mode"))
        stages = d.get("stages") if isinstance(d.get("stages"), list) else []
        names = [s.get("name") for s in stages if isinstance(s, dict)]
        if names != self.STAGES_BEFORE_COMMIT + ["install"]:
            problems.append("stages %s" % names)
        else:
            for s in stages[:-1]:
                if not isinstance(s.get("seconds"), (int, float)) or s["seconds"] < 0 or not s.get("start") or \
                        not s.get("end") or s["end"] < s["start"]:
                    problems.append("stage %s: start %r end %r seconds %r" % (s["name"], s.get("start"), s.get("end"),
                                                                            s.get("seconds")))
        iso = d.get("iso") if isinstance(d.get("iso"), dict) else {}
        if not re.fullmatch(r"sha512:[0-9a-f]{128}", str(iso.get("checksum"))) or not iso.get("size"):
            problems.append("iso %r" % iso)
        if not d.get("agent_version") or not d.get("harvester_version"):
            problems.append("agent_version %r, harvester_version %r" % (d.get("agent_version"), d.get("harvester_version")))
        disks = [x for x in d.get("disks") or [] if isinstance(x, dict)]
        inst = [x for x in disks if x.get("role") == "install"]
        if len(inst) != 1 or not inst[0].get("size") or not inst[0].get("by_id") or not inst[0].get("serial"):
            problems.append("install disk %r" % inst)
        if self.a.device is not None and inst and inst[0].get("name") != self.a.device:
            problems.append("install disk name %r (want %s)" % (inst[0].get("name"), self.a.device))
        R.add(not problems, "%s: result succeeded, mode %s, stages %s complete, the ISO's sha512, the install disk "
              "(by-id, serial, size)" % (name, self.a.mode, ", ".join(self.STAGES_BEFORE_COMMIT)), "; ".join(problems))

    def n_secrets(self):
        return len(self.secrets) + (1 if self.clear else 0)

    def leaks(self, data, include_secrets=True):
        """Names (never values) of the secrets found in data."""
        out = []
        if include_secrets:
            for name, value in self.secrets:
                if any(f in data for f in secret_forms(value)):
                    out.append(name)
        if self.clear and any(f in data for f in secret_forms(self.clear)):
            out.append("the clear password")
        return out

    def check_custom(self, c):
        R = self.r
        a = self.a
        stages = c.get("stages") if isinstance(c.get("stages"), dict) else {}
        init = stages.get("initramfs")
        init = init if isinstance(init, list) else []
        steps = [s for s in init if isinstance(s, dict)]

        hostnames = [s.get("hostname") for s in steps if "hostname" in s]
        R.add(hostnames == [a.hostname], "COS_OEM: 90_custom.yaml hostname %s" % a.hostname,
              "initramfs hostname: %s" % (", ".join(map(repr, hostnames)) or "none"))

        # The rancher user's password.
        hashes = []
        for s in steps:
            users = s.get("users")
            if isinstance(users, dict) and isinstance(users.get("rancher"), dict) and "passwd" in users["rancher"]:
                hashes.append(users["rancher"]["passwd"])
        name = "COS_OEM: 90_custom.yaml rancher password stored as a SHA-512 crypt hash"
        if not hashes:
            if self.clear:
                R.fail(name, "no users.rancher.passwd")
            else:
                R.ok("COS_OEM: 90_custom.yaml: no rancher password (none given)")
        elif len(hashes) > 1:
            R.fail(name, "%d users.rancher.passwd entries" % len(hashes))
        else:
            h = hashes[0] or ""
            good = re.fullmatch(r"\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}", h) is not None
            R.add(good, name, "it is not $6$<salt>$<86 characters>")
            if self.clear and good:
                m = crypt_matches(self.clear, h)
                if m is None:
                    R.fail("COS_OEM: 90_custom.yaml password hash matches --password-clear",
                           "no crypt module and no openssl to compute it")
                else:
                    R.add(m, "COS_OEM: 90_custom.yaml password hash matches --password-clear",
                          "crypt(password, salt) differs")

        # The rancherd configuration, a file the OS writes at boot.
        files = []
        for s in steps:
            if isinstance(s.get("files"), list):
                files += [f for f in s["files"] if isinstance(f, dict)]
        self.custom_files = files
        self.check_bootstrap(files)
        rcfg = [f for f in files if f.get("path") == "/etc/rancher/rancherd/config.yaml"]
        name = "COS_OEM: 90_custom.yaml rancherd config: %s" % (
            "role: cluster-init" if a.mode == "create" else
            "server: %s, role: agent" % (normalize_server_url(a.server_url) if a.server_url else "<url>"))
        if len(rcfg) != 1:
            R.fail(name, "%d files /etc/rancher/rancherd/config.yaml" % len(rcfg))
            return
        f = rcfg[0]
        perm = yip_mode(f.get("permissions"))
        R.add(perm == 0o600 and str(f.get("owner")) == "0",
              "COS_OEM: 90_custom.yaml rancherd config written 0600 owned by root",
              "permissions %s, owner %s" % (f.get("permissions"), f.get("owner")))
        try:
            rd = parse_yaml(f.get("content") or "")
            if not isinstance(rd, dict):
                raise YamlError("not a mapping")
        except YamlError as e:
            R.fail(name, "its content is not YAML: %s" % e)
            return
        problems = []
        if a.mode == "create":
            if rd.get("role") != "cluster-init":
                problems.append("role is %r" % rd.get("role"))
            if "server" in rd:
                problems.append("it has server: %r" % rd.get("server"))
        else:
            if rd.get("role") != "agent":
                problems.append("role is %r" % rd.get("role"))
            if not rd.get("server"):
                problems.append("no server")
            elif a.server_url and rd.get("server") != normalize_server_url(a.server_url):
                problems.append("server is %r" % rd.get("server"))
        if not rd.get("token"):
            problems.append("no token")
        elif a.token is not None and rd.get("token") != a.token:  # never print a token
            problems.append("the token is not the --token value")
        R.add(not problems, name + (", the --token token" if a.token is not None else ""), "; ".join(problems))
        # The token is a secret whether or not it was given with --secret.
        token = rd.get("token")
        if isinstance(token, str) and token and token not in (v for _, v in self.secrets):
            self.secrets.append(("the rancherd token", token))

    BOOTSTRAP_DIR = "/etc/rancher/rancherd/config.yaml.d/"
    BOOTSTRAP_FILES = ("10-harvester.yaml", "11-monitoring-crd.yaml", "12-monitoring-dashboard.yaml",
                       "13-monitoring.yaml", "14-logging-crd.yaml", "15-logging.yaml",
                       "20-harvester-settings.yaml", "22-addons.yaml")

    def check_bootstrap(self, files):
        """The rancherd bootstrap resources of v1.1.2 (genBootstrapResources): all eight on a create
        node, 0600 root, each a list of resources; the monitoring and logging charts with one version
        each; 13's external URLs through 10's VIP. None on a join node."""
        R = self.r
        found = {f.get("path")[len(self.BOOTSTRAP_DIR):]: f for f in files
                 if isinstance(f.get("path"), str) and f["path"].startswith(self.BOOTSTRAP_DIR)}
        if self.a.mode != "create":
            R.add(not found, "COS_OEM: 90_custom.yaml has no rancherd bootstrap files (join)",
                  "it has %s" % ", ".join(sorted(found)))
            return
        name = "COS_OEM: 90_custom.yaml has the eight rancherd bootstrap files of v1.1.2, 0600 root"
        problems = []
        if sorted(found) != sorted(self.BOOTSTRAP_FILES):
            problems.append("files: %s" % " ".join(sorted(found)))
        docs = {}
        for n, f in sorted(found.items()):
            if yip_mode(f.get("permissions")) != 0o600 or str(f.get("owner")) != "0":
                problems.append("%s: permissions %s owner %s" % (n, f.get("permissions"), f.get("owner")))
            try:
                d = parse_yaml(f.get("content") or "")
            except YamlError as e:
                problems.append("%s: not YAML (%s)" % (n, e))
                continue
            if not isinstance(d, dict) or not isinstance(d.get("resources"), list):
                problems.append("%s: no resources list" % n)
                continue
            docs[n] = d["resources"]
        R.add(not problems, name, "; ".join(problems))
        if problems:
            return

        def chart(n, chart_name):
            for res in docs.get(n, ()):
                if isinstance(res, dict) and res.get("kind") == "ManagedChart" and \
                        isinstance(res.get("spec"), dict) and res["spec"].get("chart") == chart_name:
                    return res["spec"]
            return None
        versions, problems = {}, []
        for n, c, key in (("11-monitoring-crd.yaml", "rancher-monitoring-crd", "monitoring"),
                          ("13-monitoring.yaml", "rancher-monitoring", "monitoring"),
                          ("14-logging-crd.yaml", "rancher-logging-crd", "logging"),
                          ("15-logging.yaml", "rancher-logging", "logging")):
            spec = chart(n, c)
            v = spec.get("version") if spec else None
            if not v:
                problems.append("%s: no ManagedChart %s with a version" % (n, c))
            versions.setdefault(key, set()).add(v)
        for key, vs in versions.items():
            if len(vs) != 1:
                problems.append("%s chart versions differ: %s" % (key, sorted(map(str, vs))))
        R.add(not problems, "COS_OEM: rancherd bootstrap: monitoring %s, logging %s (CRD and chart alike)" % (
            "/".join(map(str, versions.get("monitoring", ()))), "/".join(map(str, versions.get("logging", ())))),
            "; ".join(problems))

        harvester = chart("10-harvester.yaml", "harvester") or {}
        vip = (((harvester.get("values") or {}).get("service") or {}).get("vip") or {}).get("ip")
        mon = chart("13-monitoring.yaml", "rancher-monitoring") or {}
        values = mon.get("values") or {}
        urls = [((values.get("alertmanager") or {}).get("alertmanagerSpec") or {}).get("externalUrl"),
                ((values.get("prometheus") or {}).get("prometheusSpec") or {}).get("externalUrl")]
        R.add(bool(vip) and all(isinstance(u, str) and u.startswith("https://%s/" % vip) for u in urls),
              "COS_OEM: rancherd bootstrap: 13-monitoring.yaml's external URLs go through the VIP %s" % vip,
              "externalUrl %s" % urls)

    # --- secrets everywhere ---------------------------------------------------------------------

    def check_custom_files(self):
        """The files 90_custom.yaml makes the OS write at every boot: those holding a secret 0600 root."""
        if self.custom_files is None or not self.n_secrets():
            return
        bad, n = [], 0
        for f in self.custom_files:
            content = f.get("content")
            if not isinstance(content, str):
                continue
            leaked = self.leaks(content.encode("utf-8"))
            if not leaked:
                continue
            n += 1
            mode = yip_mode(f.get("permissions"))
            if mode is None or mode & 0o077 or str(f.get("owner")) != "0":
                bad.append("%s (permissions %s, owner %s) holds %s" % (f.get("path"), f.get("permissions"),
                                                                         f.get("owner"), ", ".join(leaked)))
        self.r.add(not bad, "COS_OEM: 90_custom.yaml writes files holding a secret 0600, owned by root (%d such files)" % n,
                   "; ".join(bad))

    def scan(self):
        """No secret in a file others may read; the clear password in no file at all."""
        R = self.r
        if not self.n_secrets():
            return
        bad, n_files, skipped = [], 0, 0
        for desc, root, vfat in self.scan_roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for fn in sorted(filenames):
                    p = os.path.join(dirpath, fn)
                    rel = desc + ":" + os.path.relpath(p, root)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    if re.fullmatch(r"cOS/[^/]+\.img", os.path.relpath(p, root)) or st.st_size >= SCAN_LIMIT:
                        skipped += 1
                        continue
                    n_files += 1
                    check_interrupt()
                    with open(p, "rb") as f:
                        data = f.read()
                    private = (not vfat and st.st_uid == 0 and not (st.st_mode & 0o044))
                    leaked = self.leaks(data, include_secrets=not private)
                    if leaked:
                        bad.append("%s (mode %s) holds %s" % (rel, "vfat" if vfat else "%04o" % stat.S_IMODE(st.st_mode),
                                                               ", ".join(leaked)))
        R.add(not bad, "no secret in a file others can read (%d files scanned on %s; %d images or files >= 16 MiB skipped)"
              % (n_files, ", ".join(d for d, _, _ in self.scan_roots), skipped), "; ".join(bad))

    # --- the data disk --------------------------------------------------------------------------

    def check_data_disk(self):
        R = self.r
        loop, raw, size = self.attach(self.a.data_disk, "sdb")
        b = blkid_probe(loop)
        pt = run(["sfdisk", "--json", loop], check=False)
        has_table = "PTTYPE" in b or (pt.returncode == 0 and pt.stdout.strip())
        R.add(not has_table, "sdb: no partition table", "it has a %s table" % b.get("PTTYPE", "partition"))
        ok = R.add(b.get("TYPE") == "ext4" and b.get("LABEL") == "HARV_LH_DEFAULT",
                   "sdb: whole-disk ext4 HARV_LH_DEFAULT",
                   "blkid finds %s %s" % (b.get("TYPE", "no file system"), b.get("LABEL", "without a label")))
        if not ok:
            return
        d = run(["dumpe2fs", "-h", loop], check=False).stdout
        bc = re.search(r"^Block count:\s*(\d+)", d, re.M)
        bs = re.search(r"^Block size:\s*(\d+)", d, re.M)
        fs = int(bc.group(1)) * int(bs.group(1)) if bc and bs else 0
        R.add(size - DATA_DISK_SLACK < fs <= size, "sdb: the file system spans the disk (%s)" % fmt_bytes(size),
              "it has %d of %d bytes" % (fs, size))
        mp = self.mount(loop, "HARV_LH_DEFAULT-sdb")
        self.scan_roots.append(("sdb", mp, False))

    # --- all of it ------------------------------------------------------------------------------

    def run(self):
        R = self.r
        base = os.environ.get("TMPDIR") or "/var/tmp"
        self.tmp = tempfile.mkdtemp(prefix="check-disk.", dir=base)
        self.res.push("rm -r " + self.tmp, lambda: shutil.rmtree(self.tmp))
        os.chmod(self.tmp, 0o700)
        try:
            loop, raw, size = self.attach(self.a.disk, "sda")
        except (RuntimeError, ValueError) as e:
            R.fail("sda: readable disk image", str(e))
            return
        R.ok("sda: readable disk image", "%s, %s" % (self.a.disk, fmt_bytes(size)))
        t = self.check_table(loop, size)
        if t is None:
            return
        exp, parts = t
        nodes = self.add_partitions(loop, sorted(parts))
        found = self.check_filesystems(nodes, exp)
        for n, name, label, fstype, guid, start, psize in exp:
            if fstype != "ext4" or label not in found:
                continue
            try:
                self.mounts[label] = self.mount(found[label], label)
                self.scan_roots.append((label, self.mounts[label], False))
            except RuntimeError as e:
                R.fail("sda%d: %s mounts read-only" % (n, label), str(e))
        if "COS_GRUB" in found:
            try:
                self.grub_dir = self.read_cos_grub(raw, exp)
                self.scan_roots.append(("COS_GRUB", self.grub_dir, True))
                self.check_cos_grub(self.grub_dir)
            except RuntimeError as e:
                R.fail("COS_GRUB: readable with mtools", str(e))
        if "COS_STATE" in self.mounts:
            self.check_state(self.mounts["COS_STATE"])
        if "COS_RECOVERY" in self.mounts:
            self.check_recovery(self.mounts["COS_RECOVERY"])
        if "COS_OEM" in self.mounts:
            self.check_oem(self.mounts["COS_OEM"])
        self.check_custom_files()
        if self.a.data_disk:
            try:
                self.check_data_disk()
            except (RuntimeError, ValueError) as e:
                R.fail("sdb: readable disk image", str(e))
        self.scan()


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="check-disk",
        description="Checks from the host a disk the agent installed in a QEMU VM (GPT, labels, images, "
                    "boot loader, node configuration, permissions, secrets). Exit 0: all checks pass, "
                    "1: a check failed, 2: usage, 77: not root or tools missing.")
    p.add_argument("--disk", required=True, help="the install disk image (qcow2 or raw)")
    p.add_argument("--data-disk", help="the data disk image, when the install used one")
    p.add_argument("--mode", required=True, choices=["create", "join"])
    p.add_argument("--hostname", required=True)
    p.add_argument("--server-url", help="join: the server_url given to the install (normalised to https://<vip>:443)")
    p.add_argument("--secret", action="append", default=[],
                   help="a secret (token, webhook password, ...): in no file others can read nor in console.log; repeatable")
    p.add_argument("--token", help="the token given to the install: rancherd's config and harvester.config must "
                                    "hold exactly this one (also scanned for as a secret)")
    p.add_argument("--device", help="install.device given to the install: harvester.config must name it")
    p.add_argument("--password-clear", help="os.password as given: its hash must match, the clear text be nowhere")
    p.add_argument("--persistent-size", type=parse_size,
                   help="install.persistent_partition_size when the install had one (bytes, or 150Gi)")
    p.add_argument("--tty", default="ttyS0,115200n8",
                   help="the console the install gave the system (active.img's bootargs.cfg); default the lab's ttyS0,115200n8")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    a = p.parse_args(argv)
    if a.token is not None and a.token not in a.secret:
        a.secret.append(a.token)
    if any(s == "" for s in a.secret) or a.password_clear == "":
        p.error("a secret or password cannot be empty")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise Skip("needs root (loop devices, mount)")
        missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
        if missing:
            raise Skip("missing tools: %s (Debian: qemu-utils util-linux fdisk mtools e2fsprogs)" % " ".join(missing))
        if not os.path.exists("/dev/loop-control") and not os.path.exists("/dev/loop0"):
            raise Skip("no loop devices")
        for path in [a.disk] + ([a.data_disk] if a.data_disk else []):
            if not os.path.isfile(path):
                print("check-disk: %s: no such file" % path, file=sys.stderr)
                return EXIT_USAGE
    except Skip as e:
        print("check-disk: skipped: %s" % e, file=sys.stderr)
        return EXIT_SKIP
    for i, s in enumerate(a.secret):
        if len(s) < 6:
            print("check-disk: note: --secret #%d is short (%d characters): ordinary words may match it" % (i + 1, len(s)),
                  file=sys.stderr)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    report = Report(a.json)
    checker = Checker(a, report)
    t = time.monotonic()
    error = None
    try:
        checker.run()
    except Interrupted:
        pass
    except Exception as e:  # a checker bug or an unexpected tool failure: a failed check, then cleanup
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        clean = checker.res.release()
    if _signal["signum"] is not None:
        print("check-disk: stopped by signal %d%s" % (_signal["signum"], "" if clean else "; cleanup incomplete"),
              file=sys.stderr)
        return 128 + _signal["signum"]
    if error:
        report.fail("check-disk ran to the end", error)
    if not clean:
        report.fail("check-disk released its loop devices, mounts and temporary files")
    report.finish({"seconds": round(time.monotonic() - t, 1)})
    return EXIT_FAIL if report.failed() else EXIT_OK
