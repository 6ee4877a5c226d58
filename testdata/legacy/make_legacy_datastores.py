#!/usr/bin/env python3
"""Generates datastores in the on-disk layout of each PBS major version (see README.md).

usage: make_legacy_datastores.py PBSKIT OUTDIR

PBSKIT is the built pbskit binary. OUTDIR must not exist or be empty. Writes
  OUTDIR/pbs-1.x  OUTDIR/pbs-2.x  OUTDIR/pbs-3.x  OUTDIR/pbs-4.x  OUTDIR/pbs-4.x-s3-cache
  OUTDIR/expected.json   what each store holds (snapshots, owners, notes, protection, hashes)
  OUTDIR/key.json        the encryption key of the encrypted snapshot (kdf none)
The stores are made by pbskit itself (datastore create, backup, notes, protect, verify) and then
rewritten into the older layouts as FORMATS.md section 11 describes.
"""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib

T0 = 1600000000  # 2020-09-13T12:26:40Z
UNCOMPRESSED_MAGIC = bytes([66, 171, 56, 7, 190, 131, 112, 161])
COMPRESSED_MAGIC = bytes([49, 185, 88, 66, 111, 182, 163, 127])


def rfc3339(epoch):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Gen:
    def __init__(self, pbskit, out):
        self.pbskit = os.path.abspath(pbskit)
        self.out = os.path.abspath(out)
        self.work = os.path.join(self.out, ".work")
        os.makedirs(self.work, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({
            "PBSKIT_CONFIG_DIR": os.path.join(self.work, "etc"),
            "PBSKIT_STATE_DIR": os.path.join(self.work, "state"),
            "PBSKIT_LOCK_ROOT": os.path.join(self.work, "locks"),
            "TZ": "UTC",
        })
        self.base = os.path.join(self.work, "base")
        self.expected = {"snapshots": []}

    def run(self, *args, stdin=None):
        r = subprocess.run([self.pbskit, *args], env=self.env, input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit("pbskit %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                    r.stdout.decode(), r.stderr.decode()))
        return r.stdout.decode()

    def data_file(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def backup_image(self, ns, group, t, data, extra=()):
        btype, bid = group.split("/")
        path = self.data_file("img-%s-%d.raw" % (bid, t), data)
        args = ["backup", "image", path, "--store", self.base, "--type", btype, "--id", bid,
                "--archive-name", "drive-scsi0.img", "--backup-time", str(t), *extra]
        if ns:
            args += ["--ns", ns]
        self.run(*args)
        return hashlib.sha256(data).hexdigest()

    def backup_blob(self, ns, group, t, name, data, extra=()):
        btype, bid = group.split("/")
        path = self.data_file(name, data)
        args = ["backup", "blob", path, "--store", self.base, "--type", btype, "--id", bid,
                "--archive-name", name, "--backup-time", str(t), *extra]
        if ns:
            args += ["--ns", ns]
        self.run(*args)
        return hashlib.sha256(data).hexdigest()

    def record(self, ns, group, t, owner, archive, sha, protected=False, notes="",
               min_version=1):
        self.expected["snapshots"].append({
            "ns": ns, "group": group, "time": rfc3339(t), "owner": owner,
            "archive": archive, "sha256": sha, "protected": protected, "notes": notes,
            "min-version": min_version})

    def make_base(self):
        self.run("datastore", "create", "gen", self.base)
        rng = random.Random(4711)
        mib = 1024 * 1024
        rand4 = bytes(rng.getrandbits(8) for _ in range(4 * mib))
        text = (b"pbskit legacy datastore generator line\n" * 30000)[:mib]
        image_a = rand4 + bytes(4 * mib) + text
        image_b = rand4 + bytes(4 * mib) + text[::-1]  # shares the first two chunks with A
        conf = b"memory: 2048\ncores: 2\nscsi0: local:100/vm-100-disk-0.raw,size=9M\n"

        # Root namespace: vm/100 (two snapshots sharing chunks), ct/101, vm/200 encrypted.
        t1, t2 = T0, T0 + 86400
        sha_a = self.backup_image("", "vm/100", t1, image_a)
        self.record("", "vm/100", t1, "root@pam", "drive-scsi0.img", sha_a,
                    notes="first backup\nbefore the upgrade")
        sha_b = self.backup_image("", "vm/100", t2, image_b)
        self.record("", "vm/100", t2, "root@pam", "drive-scsi0.img", sha_b, protected=True)
        self.run("snapshot", "notes", "set", "--store", self.base,
                 "vm/100/" + rfc3339(t1), "first backup\nbefore the upgrade")
        self.run("group", "notes", "set", "--store", self.base, "vm/100", "database server")
        self.run("snapshot", "protect", "--store", self.base, "vm/100/" + rfc3339(t2))

        sha_c = self.backup_blob("", "ct/101", T0 + 3600, "pct.conf",
                                 b"arch: amd64\nhostname: ct101\nmemory: 512\n",
                                 extra=["--owner", "backup@pbs"])
        self.record("", "ct/101", T0 + 3600, "backup@pbs", "pct.conf", sha_c)

        key = os.path.join(self.out, "key.json")
        self.run("key", "create", "--kdf", "none", key)
        sha_e = self.backup_image("", "vm/200", T0 + 7200, bytes(reversed(image_a)),
                                  extra=["--keyfile", key])
        self.record("", "vm/200", T0 + 7200, "root@pam", "drive-scsi0.img", sha_e)
        self.backup_blob("", "vm/200", T0 + 7200 + 60, "qemu-server.conf", conf,
                         extra=["--keyfile", key])
        self.record("", "vm/200", T0 + 7200 + 60, "root@pam", "qemu-server.conf",
                    hashlib.sha256(conf).hexdigest())

        # Namespaces (PBS >= 2.2): a and a/b.
        self.run("namespace", "create", "--store", self.base, "a")
        self.run("namespace", "create", "--store", self.base, "a/b")
        sha_w = self.backup_blob("a", "host/web", T0 + 600, "etc.conf", b"web config\n" * 100,
                                 extra=["--owner", "web@pbs"])
        self.record("a", "host/web", T0 + 600, "web@pbs", "etc.conf", sha_w, min_version=2)
        sha_x = self.backup_image("a/b", "host/db", T0 + 1200, image_b,
                                  extra=["--owner", "web@pbs!backup"])
        self.record("a/b", "host/db", T0 + 1200, "web@pbs!backup", "drive-scsi0.img", sha_x,
                    min_version=2)

        # verify writes unprotected.verify_state into every manifest.
        self.run("verify", "--store", self.base)

    # ---- rewriting into older layouts ----

    def copy_store(self, name):
        """Copies the base store; .chunks keeps only non-empty prefix dirs (like a small copy)."""
        dst = os.path.join(self.out, name)
        os.makedirs(dst)
        for entry in os.listdir(self.base):
            src = os.path.join(self.base, entry)
            if entry == ".chunks":
                os.makedirs(os.path.join(dst, ".chunks"), mode=0o750)
                for prefix in sorted(os.listdir(src)):
                    if os.listdir(os.path.join(src, prefix)):
                        shutil.copytree(os.path.join(src, prefix),
                                        os.path.join(dst, ".chunks", prefix))
            elif os.path.isdir(src):
                shutil.copytree(src, os.path.join(dst, entry))
            else:
                shutil.copy2(src, os.path.join(dst, entry))
        return dst

    @staticmethod
    def snapshot_dirs(store):
        for root, dirs, files in os.walk(store):
            dirs[:] = [d for d in dirs if d != ".chunks"]
            if "index.json.blob" in files:
                yield root

    @staticmethod
    def read_manifest(path):
        raw = open(path, "rb").read()
        if raw[:8] == UNCOMPRESSED_MAGIC:
            return json.loads(raw[12:])
        if raw[:8] != COMPRESSED_MAGIC:
            sys.exit("unexpected manifest blob magic in " + path)
        try:
            import zstandard  # optional python module
            return json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(raw[12:]))
        except ImportError:
            r = subprocess.run(["zstd", "-dc"], input=raw[12:], stdout=subprocess.PIPE,
                               check=True)
            return json.loads(r.stdout)

    @staticmethod
    def write_manifest(path, manifest):
        """Writes an uncompressed DataBlob (valid for every PBS version; readers accept both)."""
        payload = json.dumps(manifest, indent=2, sort_keys=True).encode()
        crc = zlib.crc32(payload) & 0xffffffff
        with open(path + ".tmp", "wb") as f:
            f.write(UNCOMPRESSED_MAGIC + struct.pack("<I", crc) + payload)
        os.rename(path + ".tmp", path)

    @staticmethod
    def gc_status(with_cache_stats):
        s = ('{"upid":"UPID:pbs:000004D2:0001E240:00000000:5F5E1000:garbage_collection:store1:'
             'root@pam:","index-file-count":6,"index-data-bytes":37748736,"disk-bytes":9437184,'
             '"disk-chunks":5,"removed-bytes":0,"removed-chunks":0,"pending-bytes":0,'
             '"pending-chunks":0,"removed-bad":0,"still-bad":0')
        if with_cache_stats:
            s += ',"cache-stats":{"hits":3,"misses":5}'
        return s + "}"

    def make_v1(self):
        """PBS 1.x: no namespaces, no .protected, no group notes, manifest lock files in the
        snapshot directories (<= 1.0.5), an owner file without newline, a crashed backup."""
        d = self.copy_store("pbs-1.x")
        shutil.rmtree(os.path.join(d, "ns"))
        for snap in self.snapshot_dirs(d):
            p = os.path.join(snap, ".protected")
            if os.path.exists(p):
                os.unlink(p)
            open(os.path.join(snap, ".index.json.lck"), "w").close()
        for group in ("vm/100",):
            os.unlink(os.path.join(d, group, "notes"))
        with open(os.path.join(d, "ct/101/owner"), "w") as f:
            f.write("backup@pbs")
        crashed = os.path.join(d, "vm/100", rfc3339(T0 + 2 * 86400))
        os.makedirs(crashed)
        with open(os.path.join(crashed, "drive-scsi0.img.tmp_fidx"), "wb") as f:
            f.write(b"\0" * 4096)
        with open(os.path.join(d, ".gc-status"), "w") as f:
            f.write(self.gc_status(False))
        # 1.x wrote every snapshot's chunk_upload_stats but knew no later unprotected keys.
        return d

    def make_v2(self):
        """PBS 2.x: namespaces, .protected, group notes; lock files already below /run."""
        d = self.copy_store("pbs-2.x")
        with open(os.path.join(d, ".gc-status"), "w") as f:
            f.write(self.gc_status(False))
        return d

    def make_v3(self):
        """PBS 3.x: like 2.x plus the leftovers 3.x can leave: a group without snapshots, a chunk
        temp file of a crashed insert, a chunk renamed .0.bad by verify."""
        d = self.copy_store("pbs-3.x")
        os.makedirs(os.path.join(d, "vm/999"))
        with open(os.path.join(d, "vm/999/owner"), "w") as f:
            f.write("root@pam\n")
        prefixes = sorted(p for p in os.listdir(os.path.join(d, ".chunks")))
        first = sorted(os.listdir(os.path.join(d, ".chunks", prefixes[0])))[0]
        with open(os.path.join(d, ".chunks", prefixes[0], first + ".tmp_a1b2c3"), "wb") as f:
            f.write(b"partial")
        bad = "%s%s" % (prefixes[-1], "0" * 60)
        with open(os.path.join(d, ".chunks", prefixes[-1], bad + ".0.bad"), "wb") as f:
            f.write(b"old corrupt chunk")
        with open(os.path.join(d, ".gc-status"), "w") as f:
            f.write(self.gc_status(False))
        return d

    def make_v4(self):
        """PBS 4.x: the generated store itself (all 65536 prefix directories, the zero chunk of
        the atime safety check), .gc-status with cache-stats, a manifest with the 4.1.13
        unprotected key sync-source-signature (outside the signed part). Must run last: the
        other versions are copied from the same store."""
        d = os.path.join(self.out, "pbs-4.x")
        os.rename(self.base, d)
        with open(os.path.join(d, ".gc-status"), "w") as f:
            f.write(self.gc_status(True))
        m_path = os.path.join(d, "ct/101", rfc3339(T0 + 3600), "index.json.blob")
        m = self.read_manifest(m_path)
        m.setdefault("unprotected", {})["sync-source-signature"] = ":".join(["ab"] * 32)
        self.write_manifest(m_path, m)
        return d

    def make_s3_cache(self):
        """PBS 4.x S3 local cache: one chunk evicted (zero-length file), one .using marker."""
        d = self.copy_store("pbs-4.x-s3-cache")
        prefixes = sorted(os.listdir(os.path.join(d, ".chunks")))
        pdir = os.path.join(d, ".chunks", prefixes[0])
        chunk = sorted(os.listdir(pdir))[0]
        open(os.path.join(pdir, chunk), "w").close()
        pdir = os.path.join(d, ".chunks", prefixes[-1])
        chunk = sorted(os.listdir(pdir))[0]
        open(os.path.join(pdir, chunk[:64] + ".using"), "w").close()
        return d


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    g = Gen(sys.argv[1], sys.argv[2])
    g.make_base()
    g.make_v1()
    g.make_v2()
    g.make_v3()
    g.make_s3_cache()
    g.make_v4()
    with open(os.path.join(g.out, "expected.json"), "w") as f:
        json.dump(g.expected, f, indent=2, sort_keys=True)
    shutil.rmtree(g.work)


if __name__ == "__main__":
    main()
