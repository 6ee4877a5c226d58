// `pbskit backup image|blob FILE --store S --type T --id ID ...`: writes a new snapshot holding one
// archive, printing what proxmox-backup-client prints for an upload.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/data_blob.h"
#include "registry.h"
#include "store_args.h"

namespace pbskit::cli {
namespace {

struct BackupArgs {
  std::string file;
  std::string store;
  std::string ns;
  std::string type;
  std::string id;
  std::string archive_name;
  std::string keyfile;
  std::string crypt_mode;
  std::optional<int64_t> backup_time;
  std::string owner = "root@pam";
};

enum class Kind { kImage, kBlob };

std::string LocalTimeC(int64_t epoch) {  // strftime_local("%c")
  time_t t = static_cast<time_t>(epoch);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[128];
  std::strftime(buf, sizeof buf, "%c", &tm);
  return buf;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string s = buf;
  return s.substr(0, s.find('.'));
}

// Default archive name from the file name: characters outside PBS's SAFE_ID set become '_'.
std::string DefaultArchiveBase(const std::string& file, Kind kind) {
  std::string base = file == "-" ? "stdin" : BaseName(file);
  for (char& c : base)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) c = '_';
  if (base.empty() || !(isalnum(static_cast<unsigned char>(base[0])) || base[0] == '_'))
    base = "_" + base;
  if (kind == Kind::kImage && !(base.size() > 4 && base.substr(base.size() - 4) == ".img"))
    base += ".img";
  return base;
}

// proxmox-backup-client strips the server extension when printing archive names.
std::string StripServerExtension(const std::string& name) {
  for (const char* ext : {".fidx", ".didx", ".blob"}) {
    size_t n = std::char_traits<char>::length(ext);
    if (name.size() > n && name.compare(name.size() - n, n, ext) == 0)
      return name.substr(0, name.size() - n);
  }
  return name;
}

void PrintArchiveStats(const std::string& archive, const ArchiveUploadStats& s) {
  const std::string name = StripServerExtension(archive);
  const uint64_t dirty = s.size - s.reused_size;
  const double secs = s.seconds > 0 ? s.seconds : 1e-6;
  char line[64];
  std::snprintf(line, sizeof line, "%.2fs", s.seconds);
  std::cout << name << ": had to backup " << HumanBytes(dirty) << " of " << HumanBytes(s.size)
            << " (compressed " << HumanBytes(s.compressed_size) << ") in " << line << "\n";
  std::cout << name << ": average backup speed: "
            << HumanBytes(static_cast<uint64_t>(static_cast<double>(dirty) / secs)) << "/s\n";
  if (s.reused_size > 0 && s.size > 1024 * 1024) {
    std::snprintf(line, sizeof line, "%.1f%%",
                  static_cast<double>(s.reused_size) * 100.0 / static_cast<double>(s.size));
    std::cout << name << ": backup was done incrementally, reused " << HumanBytes(s.reused_size)
              << " (" << line << ")\n";
  }
  if (s.chunk_count > 0) {
    std::cout << name << ": Reused " << (s.chunk_count - s.new_chunks) << " from "
              << s.chunk_count << " chunks.\n";
    std::cout << name << ": " << s.new_chunks << " new chunk" << (s.new_chunks == 1 ? "" : "s")
              << " written (" << s.reused_chunks << " already in the datastore).\n";
  }
}

int RunBackup(GlobalOptions& g, const BackupArgs& a, Kind kind) {
  auto t0 = std::chrono::steady_clock::now();
  auto type = ParseBackupType(a.type);
  if (!type.ok()) return ReportError(type.status(), 2);
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  Status id_ok = CheckBackupId(a.id);
  if (!id_ok.ok()) return ReportError(id_ok, 2);

  // Key and crypt mode the way proxmox-backup-client combines them.
  std::optional<CryptMode> mode;
  if (!a.crypt_mode.empty()) {
    auto m = ParseCryptMode(a.crypt_mode);
    if (!m.ok()) return ReportError(m.status(), 2);
    mode = *m;
  }
  std::optional<CryptConfig> crypt;
  if (!a.keyfile.empty()) {
    if (mode == CryptMode::kNone)
      return ReportError(Status::InvalidArgument("--keyfile and --crypt-mode=none are incompatible"),
                         2);
    auto c = LoadCryptConfig(a.keyfile);
    if (!c.ok()) return ReportError(c.status(), ExitCodeFor(c.status()));
    crypt.emplace(*c);
    if (!mode) mode = CryptMode::kEncrypt;
  } else if (mode && *mode != CryptMode::kNone) {
    return ReportError(Status::InvalidArgument(std::string("--crypt-mode ") + a.crypt_mode +
                                               " needs --keyfile"),
                       2);
  }
  if (!mode) mode = CryptMode::kNone;

  std::string archive = a.archive_name.empty() ? DefaultArchiveBase(a.file, kind) : a.archive_name;
  archive = ServerArchiveName(archive);
  const char* want = kind == Kind::kImage ? ".fidx" : ".blob";
  if (archive.size() < 5 || archive.compare(archive.size() - 5, 5, want) != 0)
    return ReportError(Status::InvalidArgument("archive name '" + archive + "' must end in " +
                                               want + " for backup " +
                                               (kind == Kind::kImage ? "image" : "blob")),
                       2);
  Status name_ok = CheckArchiveName(archive);
  if (!name_ok.ok()) return ReportError(name_ok, 2);

  // Open the input before touching the datastore.
  int fd = 0;
  if (a.file != "-") {
    fd = ::open(a.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return ReportError(Status::FromErrno(errno, "unable to open '" + a.file + "'"), 2);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() {
      if (fd > 0) ::close(fd);
    }
  } closer{fd};

  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto store = opened->store;

  int64_t now = static_cast<int64_t>(std::time(nullptr));
  SnapshotWriterOptions opts;
  opts.ns = *ns;
  opts.dir = BackupDir{BackupGroup{*type, a.id}, a.backup_time.value_or(now)};
  opts.auth_id = a.owner;
  opts.crypt_mode = *mode;
  opts.crypt = crypt ? &*crypt : nullptr;

  if (ns->IsRoot())
    std::cout << "Starting backup: " << opts.dir.ToString() << "\n";
  else
    std::cout << "Starting backup: [" << ns->ToString() << "]:" << opts.dir.ToString() << "\n";
  std::cout << "Client name: " << HostName() << "\n";
  std::cout << "Starting backup protocol: " << LocalTimeC(now) << "\n";
  if (crypt) std::cout << "Encryption key fingerprint: " << crypt->FingerprintString() << "\n";

  auto writer = SnapshotWriter::Begin(store, opts);
  if (!writer.ok()) return ReportError(writer.status(), ExitCodeFor(writer.status()));
  if ((*writer)->previous())
    std::cout << "Previous snapshot: " << (*writer)->previous()->ToString() << " ("
              << LocalTimeC((*writer)->previous()->time) << ")\n";
  else
    std::cout << "No previous manifest available.\n";

  std::cout << "Upload " << (kind == Kind::kImage ? "image" : "config file") << " '" << a.file
            << "' to '" << store->name() << "' as " << archive << "\n";
  Result<ArchiveResult> result = Status::Aborted("not run");
  if (kind == Kind::kImage) {
    FdByteSource source(fd, a.file == "-" ? "standard input" : a.file);
    result = (*writer)->AddFixedIndex(archive, source);
  } else {
    std::vector<uint8_t> data;
    std::vector<uint8_t> buf(1 << 20);
    FdByteSource source(fd, a.file);
    for (;;) {
      auto n = source.Read(buf);
      if (!n.ok()) return ReportError(n.status(), 1);
      if (*n == 0) break;
      if (data.size() + *n > kMaxBlobSize)
        return ReportError(Status::InvalidArgument("'" + a.file + "' is larger than the blob "
                                                   "limit of 128 MiB"),
                           2);
      data.insert(data.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
    }
    result = (*writer)->AddBlob(archive, data);
  }
  if (!result.ok()) return ReportError(result.status(), ExitCodeFor(result.status()));
  if (kind == Kind::kImage) PrintArchiveStats(archive, result->stats);

  auto manifest = (*writer)->Finish();
  if (!manifest.ok()) return ReportError(manifest.status(), 1);
  char dur[32];
  std::snprintf(dur, sizeof dur, "%.2fs",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  std::cout << "Duration: " << dur << "\n";
  std::cout << "End Time: " << LocalTimeC(static_cast<int64_t>(std::time(nullptr))) << "\n";
  return 0;
}

void AddCommon(CLI::App* sub, BackupArgs* a) {
  sub->add_option("FILE", a->file, "file or block device to back up ('-' = standard input)")
      ->required();
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("--type", a->type, "backup type")
      ->required()
      ->check(CLI::IsMember({"vm", "ct", "host"}));
  sub->add_option("--id", a->id, "backup id")->required();
  sub->add_option("--archive-name", a->archive_name,
                  "archive name (default: from FILE; .img/.fidx or .blob added as needed)");
  sub->add_option("--keyfile", a->keyfile, "encryption key file (PBS key file format)");
  sub->add_option("--crypt-mode", a->crypt_mode,
                  "none, encrypt or sign-only (default: encrypt with --keyfile, else none)")
      ->check(CLI::IsMember({"none", "encrypt", "sign-only"}));
  sub->add_option("--backup-time", a->backup_time, "backup time (epoch seconds; default now)");
  sub->add_option("--owner", a->owner, "owner of a new group (default root@pam)");
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* backup = app.add_subcommand("backup", "create a snapshot from an image or a file");
  backup->require_subcommand(1);
  auto image_args = std::make_shared<BackupArgs>();
  auto* image = backup->add_subcommand(
      "image", "back up an image as a fixed index (.img.fidx, 4 MiB chunks, deduplicated)");
  AddCommon(image, image_args.get());
  image->callback([&g, image_args] { g.exit_code = RunBackup(g, *image_args, Kind::kImage); });

  auto blob_args = std::make_shared<BackupArgs>();
  auto* blob = backup->add_subcommand("blob", "back up a file (<= 128 MiB) as a .blob");
  AddCommon(blob, blob_args.get());
  blob->callback([&g, blob_args] { g.exit_code = RunBackup(g, *blob_args, Kind::kBlob); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(50, Setup);

}  // namespace pbskit::cli
