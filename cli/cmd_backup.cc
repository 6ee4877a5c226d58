// `pbskit backup image|blob FILE --store S --type T --id ID ...`: writes a new snapshot holding one
// archive; `pbskit backup dir DIR ...`: a directory as pxar (+ catalog) the way
// proxmox-backup-client does. Both print what proxmox-backup-client prints for an upload.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>

#include "keyfile.h"
#include "output.h"
#include "pbskit/datastore/archive_reader.h"
#include "pbskit/datastore/fs.h"
#include "pbskit/datastore/snapshot_writer.h"
#include "pbskit/formats/data_blob.h"
#include "pbskit/importers/pxar_backup.h"
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
  // backup dir
  std::string change_detection_mode = "legacy";
  std::optional<uint64_t> chunk_size_kib;
  uint64_t entries_max = 1024 * 1024;
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

std::string Fixed(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// The lines BackupWriter::upload_stream prints (PBS 4.2.3 wording), plus the chunk counts.
void PrintArchiveStats(const std::string& archive, const ArchiveUploadStats& s,
                       uint64_t injected_size = 0, uint64_t injected_chunks = 0) {
  const std::string name = StripServerExtension(archive);
  if (injected_chunks > 0)
    std::cout << name << ": reused " << HumanBytes(injected_size)
              << " from previous snapshot for unchanged files (" << injected_chunks
              << " chunks)\n";
  const uint64_t dirty = s.size - std::min(s.size, s.reused_size);
  if (archive == "catalog.pcat1.didx") {
    std::cout << "Uploaded backup catalog (" << HumanBytes(s.size) << ")\n";
  } else {
    const double secs = s.seconds > 1e-6 ? s.seconds : 1e-6;
    std::cout << name << ": had to backup " << HumanBytes(dirty) << " of " << HumanBytes(s.size)
              << " (compressed " << HumanBytes(s.compressed_size) << ") in "
              << Fixed("%.2f", s.seconds) << " s (average "
              << HumanBytes(static_cast<uint64_t>(static_cast<double>(dirty) / secs)) << "/s)\n";
  }
  if (s.reused_size > 0 && s.size > 1024 * 1024)
    std::cout << name << ": backup was done incrementally, reused " << HumanBytes(s.reused_size)
              << " (" << Fixed("%.1f", static_cast<double>(s.reused_size) * 100.0 /
                                          static_cast<double>(s.size))
              << "%)\n";
  if (s.chunk_count > 0) {
    std::cout << name << ": Reused " << (s.chunk_count - s.new_chunks) << " from "
              << s.chunk_count << " chunks.\n";
    std::cout << name << ": " << s.new_chunks << " new chunk" << (s.new_chunks == 1 ? "" : "s")
              << " written (" << s.reused_chunks << " already in the datastore).\n";
  }
}

// Key and crypt mode the way proxmox-backup-client combines --keyfile and --crypt-mode.
// Returns the exit code on failure (message printed).
int ResolveCrypt(const BackupArgs& a, std::optional<CryptConfig>* crypt, CryptMode* out) {
  std::optional<CryptMode> mode;
  if (!a.crypt_mode.empty()) {
    auto m = ParseCryptMode(a.crypt_mode);
    if (!m.ok()) return ReportError(m.status(), 2);
    mode = *m;
  }
  if (!a.keyfile.empty()) {
    if (mode == CryptMode::kNone)
      return ReportError(Status::InvalidArgument("--keyfile and --crypt-mode=none are incompatible"),
                         2);
    auto c = LoadCryptConfig(a.keyfile);
    if (!c.ok()) return ReportError(c.status(), ExitCodeFor(c.status()));
    crypt->emplace(*c);
    if (!mode) mode = CryptMode::kEncrypt;
  } else if (mode && *mode != CryptMode::kNone) {
    return ReportError(Status::InvalidArgument(std::string("--crypt-mode ") + a.crypt_mode +
                                               " needs --keyfile"),
                       2);
  }
  *out = mode.value_or(CryptMode::kNone);
  return 0;
}

void PrintStart(const BackupNamespace& ns, const SnapshotWriterOptions& opts, int64_t now,
                const std::optional<CryptConfig>& crypt) {
  if (ns.IsRoot())
    std::cout << "Starting backup: " << opts.dir.ToString() << "\n";
  else
    std::cout << "Starting backup: [" << ns.ToString() << "]:" << opts.dir.ToString() << "\n";
  std::cout << "Client name: " << HostName() << "\n";
  std::cout << "Starting backup protocol: " << LocalTimeC(now) << "\n";
  if (crypt) std::cout << "Encryption key fingerprint: " << crypt->FingerprintString() << "\n";
}

void PrintPrevious(const SnapshotWriter& w) {
  if (w.previous())
    std::cout << "Downloading previous manifest (" << LocalTimeC(w.previous()->time) << ")\n";
  else
    std::cout << "No previous manifest available.\n";
}

void PrintEnd(std::chrono::steady_clock::time_point t0) {
  std::cout << "Duration: "
            << Fixed("%.2f", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                                 .count())
            << "s\n";
  std::cout << "End Time: " << LocalTimeC(static_cast<int64_t>(std::time(nullptr))) << "\n";
}

int RunBackup(GlobalOptions& g, const BackupArgs& a, Kind kind) {
  auto t0 = std::chrono::steady_clock::now();
  auto type = ParseBackupType(a.type);
  if (!type.ok()) return ReportError(type.status(), 2);
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  Status id_ok = CheckBackupId(a.id);
  if (!id_ok.ok()) return ReportError(id_ok, 2);

  std::optional<CryptConfig> crypt;
  CryptMode crypt_mode = CryptMode::kNone;
  if (int rc = ResolveCrypt(a, &crypt, &crypt_mode); rc != 0) return rc;

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
  opts.crypt_mode = crypt_mode;
  opts.crypt = crypt ? &*crypt : nullptr;

  PrintStart(*ns, opts, now, crypt);
  auto writer = SnapshotWriter::Begin(store, opts);
  if (!writer.ok()) return ReportError(writer.status(), ExitCodeFor(writer.status()));
  PrintPrevious(**writer);

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
  PrintEnd(t0);
  return 0;
}

int RunBackupDir(GlobalOptions& g, const BackupArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  auto type = ParseBackupType(a.type);
  if (!type.ok()) return ReportError(type.status(), 2);
  auto ns = ParseNamespaceArg(a.ns);
  if (!ns.ok()) return ReportError(ns.status(), 2);
  Status id_ok = CheckBackupId(a.id);
  if (!id_ok.ok()) return ReportError(id_ok, 2);
  auto mode = importers::ParseChangeDetectionMode(a.change_detection_mode);
  if (!mode.ok()) return ReportError(mode.status(), 2);
  importers::PxarBackupOptions popts;
  popts.mode = *mode;
  popts.create.entries_max = a.entries_max;
  popts.create.warn = [](const std::string& msg) { std::cerr << msg << "\n"; };
  popts.info = [](const std::string& msg) { std::cout << msg << "\n"; };
  if (a.chunk_size_kib) {
    uint64_t kib = *a.chunk_size_kib;
    if (kib < 64 || kib > 4096 || (kib & (kib - 1)))
      return ReportError(Status::InvalidArgument("--chunk-size must be a power of two between "
                                                 "64 and 4096 (KiB), got " + std::to_string(kib)),
                         2);
    popts.chunk_size = static_cast<size_t>(kib) * 1024;
  }
  std::string base = a.archive_name.empty() ? "root" : a.archive_name;
  for (const char* ext : {".didx", ".pxar", ".mpxar", ".ppxar"})
    if (base.size() > std::strlen(ext) && base.ends_with(ext))
      base.resize(base.size() - std::strlen(ext));
  Status name_ok = CheckArchiveName(base + ".pxar.didx");
  if (!name_ok.ok()) return ReportError(name_ok, 2);
  popts.archive_name = base;

  std::optional<CryptConfig> crypt;
  CryptMode crypt_mode = CryptMode::kNone;
  if (int rc = ResolveCrypt(a, &crypt, &crypt_mode); rc != 0) return rc;

  struct stat st;
  if (::stat(a.file.c_str(), &st) != 0)
    return ReportError(Status::FromErrno(errno, "unable to open directory '" + a.file + "'"), 2);
  if (!S_ISDIR(st.st_mode))
    return ReportError(Status::InvalidArgument("'" + a.file + "' is not a directory"), 2);

  auto opened = OpenStoreArg(g, a.store);
  if (!opened.ok()) return ReportStoreError(opened.status());
  auto store = opened->store;

  int64_t now = static_cast<int64_t>(std::time(nullptr));
  SnapshotWriterOptions opts;
  opts.ns = *ns;
  opts.dir = BackupDir{BackupGroup{*type, a.id}, a.backup_time.value_or(now)};
  opts.auth_id = a.owner;
  opts.crypt_mode = crypt_mode;
  opts.crypt = crypt ? &*crypt : nullptr;

  PrintStart(*ns, opts, now, crypt);
  auto writer = SnapshotWriter::Begin(store, opts);
  if (!writer.ok()) return ReportError(writer.status(), ExitCodeFor(writer.status()));
  PrintPrevious(**writer);
  const bool split = *mode != importers::ChangeDetectionMode::kLegacy;
  std::cout << "Upload directory '" << a.file << "' to '" << store->name() << "' as " << base
            << (split ? ".mpxar.didx" : ".pxar.didx") << "\n";
  std::cout.flush();

  auto result = importers::BackupDirectory(writer->get(), a.file, popts);
  if (!result.ok()) return ReportError(result.status(), ExitCodeFor(result.status()));
  for (const auto& ar : result->archives) {
    uint64_t injected_size = 0, injected_chunks = 0;
    if (ar.info.filename.ends_with(".ppxar.didx")) {
      injected_size = result->injected_size;
      injected_chunks = result->injected_chunks;
    }
    PrintArchiveStats(ar.info.filename, ar.stats, injected_size, injected_chunks);
  }
  auto manifest = (*writer)->Finish();
  if (!manifest.ok()) return ReportError(manifest.status(), 1);
  PrintEnd(t0);
  return 0;
}

void AddCommon(CLI::App* sub, BackupArgs* a, bool dir = false) {
  if (dir)
    sub->add_option("DIR", a->file, "directory to back up")->required();
  else
    sub->add_option("FILE", a->file, "file or block device to back up ('-' = standard input)")
        ->required();
  AddStoreOption(sub, &a->store);
  AddNamespaceOption(sub, &a->ns);
  sub->add_option("--type", a->type, "backup type")
      ->required()
      ->check(CLI::IsMember(dir ? std::vector<std::string>{"ct", "host"}
                                : std::vector<std::string>{"vm", "ct", "host"}));
  sub->add_option("--id", a->id, "backup id")->required();
  if (dir)
    sub->add_option("--archive-name", a->archive_name,
                    "archive base name (default: root; gives root.pxar.didx or "
                    "root.mpxar.didx + root.ppxar.didx)");
  else
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
  auto* backup =
      app.add_subcommand("backup", "create a snapshot from an image, a file or a directory");
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

  auto dir_args = std::make_shared<BackupArgs>();
  auto* dir = backup->add_subcommand(
      "dir", "back up a directory as pxar (dynamic index, chunked like proxmox-backup-client)");
  AddCommon(dir, dir_args.get(), true);
  dir->add_option("--change-detection-mode", dir_args->change_detection_mode,
                  "legacy: root.pxar.didx + catalog; data: split root.mpxar/root.ppxar; "
                  "metadata: split, reusing unchanged files' payload of the previous snapshot")
      ->check(CLI::IsMember({"legacy", "data", "metadata"}));
  dir->add_option("--chunk-size", dir_args->chunk_size_kib,
                  "average chunk size in KiB (64..4096, power of two; default 4096)");
  dir->add_option("--entries-max", dir_args->entries_max,
                  "max number of entries held in memory along the current path");
  dir->callback([&g, dir_args] { g.exit_code = RunBackupDir(g, *dir_args); });
}

}  // namespace

PBSKIT_REGISTER_COMMAND(50, Setup);

}  // namespace pbskit::cli
