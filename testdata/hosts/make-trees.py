#!/usr/bin/env python3
"""Writes the host trees below testdata/hosts/<case>/root (run from any directory).

Each tree mirrors the paths `pbskit check --root` reads. Empty directories carry a `.keep`
file because git does not store empty directories. Expected output (`expected.txt`) is
produced by the golden test with PBSKIT_UPDATE_GOLDEN=1 and then reviewed by hand.
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

DEBIAN = "http://deb.debian.org/debian"
PBS = "http://download.proxmox.com/debian/pbs"


def write(root, rel, text=""):
    path = os.path.join(root, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def keep(root, rel):
    write(root, rel.rstrip("/") + "/.keep")


def dpkg_status(pkgs):
    out = []
    for name, version in pkgs:
        out.append(f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
                   f"Architecture: amd64\nVersion: {version}\nDescription: {name}\n")
    return "\n".join(out)


def packages_list(pkgs):
    out = []
    for name, version, *deps in pkgs:
        stanza = f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
        if deps:
            stanza += f"Depends: {deps[0]}\n"
        out.append(stanza)
    return "\n".join(out)


def datastore_dir(root, path, lock=True):
    for prefix in ("0000", "7fff", "ffff"):
        keep(root, f"{path}/.chunks/{prefix}")
    if lock:
        write(root, f"{path}/.lock")


def base_host(name, *, pbs="3.4.1", kernel="6.8.12-9-pve", kernel_pkg="proxmox-kernel-6.8",
              candidates=None, units=("proxmox-backup.service", "proxmox-backup-proxy.service",
                                      "chrony.service"),
              sources_list=None, datastores=None, mounts=None, efi=False):
    root = os.path.join(HERE, name, "root")
    shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)
    installed = [("proxmox-backup", pbs), ("proxmox-backup-server", pbs),
                 (kernel_pkg, "6.8.12-9" if kernel_pkg.endswith("6.8") else "6.14.8-2"),
                 ("chrony", "4.3-2+deb12u1")]
    write(root, "var/lib/dpkg/status", dpkg_status(installed))
    cands = candidates if candidates is not None else [(n, v) for n, v in installed]
    write(root, "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
          packages_list(cands))
    write(root, "proc/sys/kernel/osrelease", kernel + "\n")
    for u in units:
        write(root, f"run/systemd/units/invocation:{u}", "")
    keep(root, "run/proxmox-backup")
    write(root, "var/log/proxmox-backup/tasks/active", "")
    write(root, "var/lib/dkms/dkms_dbversion", "3.0.10\n")
    if sources_list is None:
        sources_list = (f"deb {DEBIAN} bookworm main contrib\n"
                        f"deb {DEBIAN} bookworm-updates main contrib\n"
                        "# security updates\n"
                        "deb http://security.debian.org bookworm-security main contrib\n")
    write(root, "etc/apt/sources.list", sources_list)
    write(root, "etc/apt/sources.list.d/pbs-no-subscription.list",
          f"deb {PBS} bookworm pbs-no-subscription\n")
    if efi:
        keep(root, "sys/firmware/efi/efivars")
        write(root, "usr/share/doc/grub-efi-amd64/changelog.Debian.gz", "")
    if datastores is None:
        datastores = ("datastore: store1\n\tcomment main store\n\tgc-schedule daily\n"
                      "\tnotification-mode notification-system\n\tpath /mnt/datastore/store1\n")
        datastore_dir(root, "/mnt/datastore/store1")
    write(root, "etc/proxmox-backup/datastore.cfg", datastores)
    write(root, "etc/proxmox-backup/user.cfg",
          "user: root@pam\n\tcomment Superuser\n\temail admin@example.com\n\n"
          "user: backup@pbs\n\tenable true\n\texpire 0\n")
    write(root, "etc/proxmox-backup/acl.cfg", "acl:1:/datastore/store1:backup@pbs:DatastoreBackup\n")
    write(root, "etc/proxmox-backup/node.cfg", "#Primary PBS instance\nemail-from: pbs@example.com\n")
    if mounts is None:
        mounts = ("/dev/mapper/pbs-root / ext4 rw,relatime,errors=remount-ro 0 0\n"
                  "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
                  "/dev/sdb1 /mnt/datastore/store1 ext4 rw,relatime 0 0\n")
    write(root, "proc/mounts", mounts)
    return root


def main():
    # 1. A clean PBS 3.4 host on bookworm: nothing to complain about.
    base_host("clean-34-bookworm")

    # 2. PBS 3.2 with pending updates and an old-enough kernel that still qualifies.
    base_host("old-32", pbs="3.2.7", kernel="6.5.13-5-pve",
              candidates=[("proxmox-backup", "3.4.1"), ("proxmox-backup-server", "3.4.1",
                                                        "libproxmox-acme-plugins (>= 1.5)"),
                          ("libproxmox-acme-plugins", "1.5.1"), ("chrony", "4.3-2+deb12u1")])

    # 3. Mixed bookworm/trixie sources, plus an unusual suite and a malformed list file.
    root = base_host("mixed-suites")
    write(root, "etc/apt/sources.list.d/pbs-no-subscription.list",
          f"deb {PBS} trixie pbs-no-subscription\n")
    write(root, "etc/apt/sources.list.d/ceph.list",
          "deb http://download.proxmox.com/debian/ceph-squid trixie no-subscription\n")
    write(root, "etc/apt/sources.list.d/vendor.list", "deb http://apt.example.com stable main\n")
    write(root, "etc/apt/sources.list.d/broken.list", "deb [arch=amd64 http://x bookworm main\n")
    write(root, "etc/apt/sources.list.d/old.list.bak", "deb http://x buster main\n")
    write(root, "etc/apt/sources.list.d/extra.list.disabled-by-admin", "deb http://x buster main\n")

    # 4. deb822 sources only: enabled bookworm, a disabled trixie stanza, a deb-src stanza.
    root = base_host("deb822-sources", sources_list="")
    os.remove(os.path.join(root, "etc/apt/sources.list"))
    os.remove(os.path.join(root, "etc/apt/sources.list.d/pbs-no-subscription.list"))
    write(root, "etc/apt/sources.list.d/debian.sources",
          "# Debian base\n"
          f"Types: deb\nURIs: {DEBIAN}\nSuites: bookworm bookworm-updates\n"
          "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
          "Types: deb\nURIs: http://security.debian.org/debian-security\n"
          "Suites: bookworm-security\nComponents: main\n contrib\n\n"
          f"Types: deb-src\nURIs: {DEBIAN}\nSuites: trixie\nComponents: main\n\n"
          "# Enabled: no keeps the stanza but turns it off\n"
          f"Types: deb\nURIs: {DEBIAN}\nSuites: trixie\nComponents: main\nEnabled: no\n")
    write(root, "etc/apt/sources.list.d/proxmox.sources",
          f"Types: deb\nURIs: {PBS}\nSuites: bookworm\nComponents: pbs-no-subscription\n")
    write(root, "etc/apt/sources.list.d/bad.sources",
          f"Types: deb\nURIs: {DEBIAN}\nthis line has no colon\n")

    # 5. Already on 4.x: trixie, EFI with systemd-boot installed, an S3 store used by tape.
    root = base_host("already-4x", pbs="4.0.14", kernel="6.14.8-2-pve",
                     kernel_pkg="proxmox-kernel-6.14", efi=True, sources_list="",
                     datastores="datastore: store1\n\tpath /mnt/datastore/store1\n\n"
                                "datastore: s3store\n\tbackend type=s3,client=minio1,bucket=pbs\n"
                                "\tpath /var/cache/pbs-s3store\n")
    datastore_dir(root, "/mnt/datastore/store1")
    datastore_dir(root, "/var/cache/pbs-s3store")
    os.remove(os.path.join(root, "etc/apt/sources.list"))
    write(root, "etc/apt/sources.list.d/pbs-no-subscription.list", "")
    os.remove(os.path.join(root, "etc/apt/sources.list.d/pbs-no-subscription.list"))
    write(root, "etc/apt/sources.list.d/debian.sources",
          f"Types: deb\nURIs: {DEBIAN}\nSuites: trixie trixie-updates\nComponents: main\n\n"
          f"Types: deb\nURIs: {PBS}\nSuites: trixie\nComponents: pbs-no-subscription\n")
    write(root, "usr/share/doc/systemd-boot/changelog.Debian.gz", "")
    write(root, "etc/proxmox-backup/s3.cfg",
          "s3-endpoint: minio1\n\taccess-key PBSACCESS\n\tendpoint minio.example.com\n"
          "\tsecret-key PBSSECRET\n")
    write(root, "etc/proxmox-backup/tape.cfg", "virtual: vdrive\n\tpath /var/tmp/vtape\n")
    write(root, "etc/proxmox-backup/media-pool.cfg", "pool: weekly\n\tretention 3 weeks\n")
    write(root, "etc/proxmox-backup/tape-job.cfg",
          "backup: nightly\n\tdrive vdrive\n\tpool weekly\n\tschedule daily\n\tstore s3store\n")

    # 6. Broken configuration files.
    root = base_host("broken-config",
                     datastores="# datastores of this host\n"
                                "datastore: store1\n\tpath /mnt/datastore/store1\n"
                                "\tprune-schedule daily\n\tkeep-daily 7\n"
                                "\ttuning gc-atime-cutoff=9999,sync-level=fast\n"
                                "datastore: store2\n\tpath /mnt/datastore/store2\n\n"
                                "datastore: store3\n\tpath /mnt/datastore/store3\n"
                                "\tverify-new maybe\n\tcolour blue\n\tcomment\n")
    datastore_dir(root, "/mnt/datastore/store1")
    datastore_dir(root, "/mnt/datastore/store3")
    write(root, "etc/proxmox-backup/sync.cfg",
          "sync: job1\n\tremote-store store1\n\tgroup-filter type:vm\n\tgroup-filter type:ct\n"
          "\tschedule hourly\n\tschedule daily\n")
    write(root, "etc/proxmox-backup/acl.cfg",
          "acl:1:/datastore/store1:backup@pbs:DatastoreBackup\n"
          "acl:1:/:admin@pbs:SuperUser\nacl:2:/remote:sync@pbs\n")
    write(root, "etc/proxmox-backup/node.cfg", "#Primary\nemail-from: pbs@example.com\ncolor: red\n")
    write(root, "etc/proxmox-backup/remote.cfg", "remote: offsite\n\thost pbs2.example.com\n")

    # 7. A datastore nested inside another one (and a second pair sharing one path).
    root = base_host("nested-datastore",
                     datastores="datastore: outer\n\tnotification-mode notification-system\n"
                                "\tpath /mnt/datastore/outer\n\n"
                                "datastore: inner\n\tnotification-mode notification-system\n"
                                "\tpath /mnt/datastore/outer/inner/\n\n"
                                "datastore: twin\n\tnotification-mode notification-system\n"
                                "\tpath /mnt/datastore/outer\n",
                     mounts="/dev/sda1 / ext4 rw,relatime 0 0\n"
                            "/dev/sdb1 /mnt/datastore/outer xfs rw,relatime 0 0\n")
    datastore_dir(root, "/mnt/datastore/outer")
    datastore_dir(root, "/mnt/datastore/outer/inner")

    # 8. A datastore on FAT, a removable one that is not mounted, one being deleted.
    root = base_host("fat-datastore",
                     datastores="datastore: usbfat\n\tnotification-mode notification-system\n"
                                "\tpath /media/usb/pbs\n\n"
                                "datastore: usb1\n\tbacking-device 5d0b4e2a-8c1f-4f3e-9b7a-2c6d1e0f9a11\n"
                                "\tnotification-mode notification-system\n\tpath usb1\n\n"
                                "datastore: gone\n\tmaintenance-mode type=delete,message=old%20store\n"
                                "\tnotification-mode notification-system\n"
                                "\tpath /mnt/datastore/gone\n",
                     mounts="/dev/sda1 / ext4 rw,relatime 0 0\n"
                            "/dev/sdc1 /media/usb vfat rw,relatime,fmask=0022,dmask=0022 0 0\n")
    datastore_dir(root, "/media/usb/pbs", lock=False)

    # 9. noatime mounts, one store with the GC atime safety check disabled.
    root = base_host("noatime",
                     datastores="datastore: fast\n\tnotification-mode notification-system\n"
                                "\tpath /srv/fast/pbs\n\n"
                                "datastore: bulk\n\tnotification-mode notification-system\n"
                                "\tpath /srv/bulk/pbs\n"
                                "\ttuning gc-atime-safety-check=false,sync-level=filesystem\n\n"
                                "datastore: plain\n\tnotification-mode notification-system\n"
                                "\tpath /srv/plain/pbs\n\tmaintenance-mode read-only\n",
                     mounts="/dev/sda1 / ext4 rw,relatime 0 0\n"
                            "tank/fast /srv/fast zfs rw,noatime,xattr,noacl 0 0\n"
                            "/dev/sdd1 /srv/bulk xfs rw,noatime,attr2 0 0\n"
                            "/dev/sde1 /srv/plain ext4 rw,relatime 0 0\n"
                            "/dev/sde1 /srv/plain ext4 rw,noatime 0 0\n")
    for p in ("/srv/fast/pbs", "/srv/bulk/pbs"):
        datastore_dir(root, p)
    datastore_dir(root, "/srv/plain/pbs")

    # 10. Legacy notifications, timesyncd, GRUB removable ESP, old locking, running tasks.
    root = base_host("legacy-notification", efi=True,
                     units=("proxmox-backup.service", "systemd-timesyncd.service"),
                     datastores="datastore: store1\n\tnotification-mode legacy-sendmail\n"
                                "\tnotify gc=error,verify=always\n\tnotify-user admin@pbs\n"
                                "\tpath /mnt/datastore/store1\n\n"
                                "datastore: store2\n\tpath /mnt/datastore/store2\n")
    datastore_dir(root, "/mnt/datastore/store1")
    datastore_dir(root, "/mnt/datastore/store2")
    write(root, "proc/mounts", "/dev/sda1 / ext4 rw,relatime 0 0\n")
    write(root, "boot/efi/EFI/BOOT/BOOTX64.efi", "")
    write(root, "var/cache/debconf/config.dat",
          "Name: grub2/force_efi_extra_removable\nTemplate: grub2/force_efi_extra_removable\n"
          "Value: false\nOwners: grub-efi-amd64\n\n")
    write(root, "etc/proxmox-backup/tape.cfg", "virtual: vdrive\n\tpath /var/tmp/vtape\n")
    write(root, "etc/proxmox-backup/media-pool.cfg", "pool: weekly\n")
    write(root, "etc/proxmox-backup/tape-job.cfg",
          "backup: nightly\n\tdrive vdrive\n\tpool weekly\n\tstore store1\n\n"
          "backup: weekly\n\tdrive vdrive\n\tnotification-mode legacy-sendmail\n"
          "\tpool weekly\n\tstore store2\n")
    write(root, "run/proxmox-backup/old-locking", "")
    write(root, "var/log/proxmox-backup/tasks/active",
          "UPID:pbs1:000012AB:0001E240:00000003:6630F1A0:garbage_collection:store1:root@pam:\n"
          "UPID:pbs1:000012AC:0001E241:00000004:6630F1A5:verificationjob:v-store1:root@pam:\n")
    keep(root, "var/lib/dkms/zfs/2.2.7/6.8.12-9-pve")
    write(root, "var/lib/dkms/zfs/2.2.7/source", "")

    # 11. Sync jobs against remotes of different ages (versions given in options.txt).
    root = base_host("old-remote-sync")
    write(root, "etc/proxmox-backup/remote.cfg",
          "remote: ancient\n\tauth-id sync@pbs\n\tfingerprint 64:d3:ff:3a:a1\n"
          "\thost pbs-old.example.com\n\tpassword c2VjcmV0\n\n"
          "remote: oldish\n\tauth-id sync@pbs\n\thost pbs-32.example.com\n\tpassword c2VjcmV0\n\n"
          "remote: current\n\tauth-id sync@pbs!token\n\thost pbs-4.example.com\n"
          "\tpassword c2VjcmV0\n\n"
          "remote: unknown\n\tauth-id sync@pbs\n\thost pbs-x.example.com\n")
    write(root, "etc/proxmox-backup/sync.cfg",
          "sync: push-ancient\n\tremote ancient\n\tremote-store store1\n\tstore store1\n"
          "\tsync-direction push\n\n"
          "sync: pull-ancient-ns\n\tremote ancient\n\tremote-ns prod\n\tremote-store store1\n"
          "\tstore store1\n\n"
          "sync: push-oldish\n\tremote oldish\n\tremote-store store1\n\tremove-vanished true\n"
          "\tstore store1\n\tsync-direction push\n\n"
          "sync: pull-current\n\tremote current\n\tremote-store store1\n\tstore store1\n\n"
          "sync: pull-unknown\n\tremote unknown\n\tremote-store store1\n\tstore store1\n\n"
          "sync: pull-missing\n\tremote nowhere\n\tremote-store store1\n\tstore store1\n\n"
          "sync: local\n\tremote-store store1\n\tstore store1\n")
    write(os.path.join(HERE, "old-remote-sync"), "options.txt",
          "remote-version ancient=2.1.5\nremote-version oldish=3.2-4\nremote-version current=4.2.3\n")


if __name__ == "__main__":
    main()
