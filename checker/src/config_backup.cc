// Config dump archive (libarchive, tar + zstd) with a SHA-256 manifest.
#include "pbskit/checker/config_backup.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "pbskit/formats/crypto.h"
#include "pbskit/formats/hex.h"

namespace pbskit::checker {
namespace {

constexpr char kManifest[] = "MANIFEST.sha256";

std::string Sha256Hex(const std::string& data) {
  return ToHex(Sha256(std::string_view(data)));
}

Status Collect(const Host& host, const std::string& abs, std::vector<ConfigBackupFile>* out) {
  struct stat st;
  std::string local = host.Local(abs);
  if (::lstat(local.c_str(), &st) != 0) return Status::OK();  // absent: nothing to save
  if (S_ISDIR(st.st_mode)) {
    auto names = host.ListDir(abs);
    if (!names.ok()) return names.status();
    for (const auto& n : *names) PBSKIT_RETURN_IF_ERROR(Collect(host, abs + "/" + n, out));
    return Status::OK();
  }
  if (!S_ISREG(st.st_mode)) return Status::OK();
  PBSKIT_ASSIGN_OR_RETURN(std::string data, host.ReadFile(abs));
  ConfigBackupFile f;
  f.path = abs;
  f.sha256 = Sha256Hex(data);
  f.data = std::move(data);
  f.mode = st.st_mode & 07777;
  f.uid = st.st_uid;
  f.gid = st.st_gid;
  f.mtime = st.st_mtim.tv_sec;
  out->push_back(std::move(f));
  return Status::OK();
}

Status ArchiveError(struct archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return Status::IoError(what + ": " + (msg ? msg : "unknown libarchive error"));
}

}  // namespace

const std::vector<std::string>& ConfigBackupPaths() {
  static const std::vector<std::string> paths = {
      "/etc/proxmox-backup",        "/etc/apt/sources.list",  "/etc/apt/sources.list.d",
      "/etc/apt/preferences.d",     "/etc/kernel/proxmox-boot-uuids",
      "/etc/default/grub",          "/etc/fstab",             "/etc/hostname",
      "/etc/hosts",                 "/etc/network/interfaces", "/etc/systemd/timesyncd.conf",
      "/etc/chrony/chrony.conf"};
  return paths;
}

Result<std::vector<ConfigBackupFile>> CollectConfigFiles(const Host& host) {
  std::vector<ConfigBackupFile> out;
  for (const auto& p : ConfigBackupPaths()) PBSKIT_RETURN_IF_ERROR(Collect(host, p, &out));
  return out;
}

Status WriteConfigBackup(const std::vector<ConfigBackupFile>& files, const std::string& archive) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(),
                                                              archive_write_free);
  if (archive_write_add_filter_zstd(a.get()) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), archive);
  }
  if (archive_write_open_filename(a.get(), archive.c_str()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), archive);
  }
  std::string manifest;
  for (const auto& f : files) manifest += f.sha256 + "  " + f.path + "\n";
  auto add = [&](const std::string& name, const std::string& data, uint32_t mode, uint32_t uid,
                 uint32_t gid, int64_t mtime) -> Status {
    std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> e(archive_entry_new(),
                                                                             archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), mode);
    archive_entry_set_uid(e.get(), uid);
    archive_entry_set_gid(e.get(), gid);
    archive_entry_set_mtime(e.get(), mtime, 0);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
      return ArchiveError(a.get(), archive + ": " + name);
    }
    if (!data.empty() &&
        archive_write_data(a.get(), data.data(), data.size()) != static_cast<la_ssize_t>(data.size())) {
      return ArchiveError(a.get(), archive + ": " + name);
    }
    return Status::OK();
  };
  PBSKIT_RETURN_IF_ERROR(add(kManifest, manifest, 0644, 0, 0, ::time(nullptr)));
  for (const auto& f : files) {
    PBSKIT_RETURN_IF_ERROR(add(f.path.substr(1), f.data, f.mode, f.uid, f.gid, f.mtime));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return ArchiveError(a.get(), archive);
  return Status::OK();
}

Result<std::vector<ConfigBackupFile>> ReadConfigBackup(const std::string& archive) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_read_new(),
                                                              archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  if (archive_read_open_filename(a.get(), archive.c_str(), 65536) != ARCHIVE_OK) {
    return ArchiveError(a.get(), archive);
  }
  std::optional<std::map<std::string, std::string>> manifest;  // path -> sha256
  std::vector<ConfigBackupFile> files;
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    std::string data;
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) {
      data.append(buf, static_cast<size_t>(n));
    }
    if (n < 0) return ArchiveError(a.get(), archive + ": " + name);
    if (name == kManifest) {
      manifest.emplace();
      size_t pos = 0;
      while (pos < data.size()) {
        size_t nl = data.find('\n', pos);
        std::string line = data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? data.size() : nl + 1;
        if (line.size() < 67 || line.compare(64, 2, "  ") != 0 || !IsDigestHex(line.substr(0, 64))) {
          return Status::Corruption(archive + ": malformed manifest line '" + line + "'");
        }
        (*manifest)[line.substr(66)] = line.substr(0, 64);
      }
      continue;
    }
    if (!manifest) {
      return Status::Corruption(archive + ": " + name + " comes before " + kManifest +
                                " (not a pbskit config backup?)");
    }
    ConfigBackupFile f;
    f.path = "/" + name;
    f.sha256 = Sha256Hex(data);
    f.data = std::move(data);
    f.mode = archive_entry_perm(e);
    f.uid = static_cast<uint32_t>(archive_entry_uid(e));
    f.gid = static_cast<uint32_t>(archive_entry_gid(e));
    f.mtime = archive_entry_mtime(e);
    auto it = manifest->find(f.path);
    if (it == manifest->end()) {
      return Status::Corruption(archive + ": " + f.path + " is not listed in the manifest");
    }
    if (it->second != f.sha256) {
      return Status::Corruption(archive + ": " + f.path + ": SHA-256 mismatch (manifest " +
                                it->second + ", content " + f.sha256 + ")");
    }
    manifest->erase(it);
    files.push_back(std::move(f));
  }
  if (r != ARCHIVE_EOF) return ArchiveError(a.get(), archive);
  if (!manifest) return Status::Corruption(archive + ": no " + std::string(kManifest));
  if (!manifest->empty()) {
    return Status::Corruption(archive + ": " + manifest->begin()->first +
                              " is listed in the manifest but missing");
  }
  return files;
}

Status RestoreConfigFiles(const std::vector<ConfigBackupFile>& files, const std::string& root) {
  std::string base = root == "/" ? "" : root;
  while (!base.empty() && base.back() == '/') base.pop_back();
  for (const auto& f : files) {
    if (f.path.find("/../") != std::string::npos || f.path.find("/./") != std::string::npos ||
        f.path.size() < 2 || f.path[0] != '/') {
      return Status::InvalidArgument("refusing to restore unsafe path '" + f.path + "'");
    }
    std::string target = base + f.path;
    for (size_t p = base.size() + 1; p < target.size(); ++p) {
      if (target[p] == '/') ::mkdir(target.substr(0, p).c_str(), 0755);
    }
    std::string tmp = target + ".pbskit-restore.tmp";
    int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno(errno, "create " + tmp);
    size_t off = 0;
    while (off < f.data.size()) {
      ssize_t w = ::write(fd, f.data.data() + off, f.data.size() - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return Status::FromErrno(err, "write " + tmp);
      }
      off += static_cast<size_t>(w);
    }
    if (::geteuid() == 0 && ::fchown(fd, f.uid, f.gid) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::FromErrno(err, "chown " + tmp);
    }
    struct timespec times[2] = {{f.mtime, 0}, {f.mtime, 0}};
    if (::fchmod(fd, f.mode) != 0 || ::futimens(fd, times) != 0 || ::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::FromErrno(err, "finish " + tmp);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return Status::FromErrno(err, "rename " + tmp + " to " + target);
    }
  }
  return Status::OK();
}

}  // namespace pbskit::checker
