// `pbskit pxar create|list|extract`: PBS's `pxar` tool on plain (.pxar / .mpxar+.ppxar) files.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <memory>
#include <vector>

#include "output.h"
#include "pbskit/formats/pxar/decoder.h"
#include "pbskit/formats/pxar/encoder.h"
#include "pbskit/formats/pxar/listing.h"
#include "pbskit/importers/pxar_fs.h"
#include "registry.h"

namespace pbskit::cli {
namespace {

// Buffered sink over a file descriptor it owns.
class FileSink : public pxar::PxarSink {
 public:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) { buf_.reserve(kBuf); }
  ~FileSink() override {
    if (fd_ >= 0) close(fd_);
  }
  Status Write(std::span<const uint8_t> data) override {
    if (buf_.size() + data.size() > kBuf) PBSKIT_RETURN_IF_ERROR(Flush());
    if (data.size() >= kBuf) return WriteAll(data.data(), data.size());
    buf_.insert(buf_.end(), data.begin(), data.end());
    return Status::OK();
  }
  Status Close() {
    PBSKIT_RETURN_IF_ERROR(Flush());
    int fd = fd_;
    fd_ = -1;
    if (fsync(fd) != 0 || close(fd) != 0) return Status::FromErrno(errno, "closing " + path_);
    return Status::OK();
  }

 private:
  static constexpr size_t kBuf = 1 << 20;
  Status Flush() {
    Status st = WriteAll(buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }
  Status WriteAll(const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "writing " + path_);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  }
  int fd_;
  std::string path_;
  std::vector<uint8_t> buf_;
};

// Buffered sequential source over a file; Skip seeks.
class FileSource : public pxar::PxarSource {
 public:
  FileSource(int fd, std::string path) : fd_(fd), path_(std::move(path)), buf_(1 << 20) {}
  ~FileSource() override { close(fd_); }
  Result<size_t> Read(std::span<uint8_t> out) override {
    if (pos_ == len_) {
      if (out.size() >= buf_.size()) return Raw(out.data(), out.size());
      PBSKIT_ASSIGN_OR_RETURN(len_, Raw(buf_.data(), buf_.size()));
      pos_ = 0;
      if (len_ == 0) return size_t{0};
    }
    size_t n = std::min(out.size(), len_ - pos_);
    std::memcpy(out.data(), buf_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  Status Skip(uint64_t n) override {
    uint64_t buffered = len_ - pos_;
    if (n <= buffered) {
      pos_ += static_cast<size_t>(n);
      return Status::OK();
    }
    n -= buffered;
    pos_ = len_ = 0;
    off_t cur = lseek(fd_, 0, SEEK_CUR);
    off_t end = lseek(fd_, 0, SEEK_END);
    if (cur < 0 || end < 0) return Status::FromErrno(errno, "seeking in " + path_);
    if (static_cast<uint64_t>(end - cur) < n)
      return Status::Corruption(path_ + ": unexpected end of file while skipping");
    if (lseek(fd_, cur + static_cast<off_t>(n), SEEK_SET) < 0)
      return Status::FromErrno(errno, "seeking in " + path_);
    return Status::OK();
  }

 private:
  Result<size_t> Raw(uint8_t* p, size_t n) {
    for (;;) {
      ssize_t r = read(fd_, p, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return Status::FromErrno(errno, "reading " + path_);
    }
  }
  int fd_;
  std::string path_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, len_ = 0;
};

Result<std::unique_ptr<FileSource>> OpenSource(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Status st = Status::FromErrno(errno, "unable to open '" + path + "'");
    if (errno == ENOENT) return Status::NotFound(st.message());
    return st;
  }
  return std::make_unique<FileSource>(fd, path);
}

Result<std::unique_ptr<FileSink>> CreateSink(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    Status st = Status::FromErrno(errno, "unable to create '" + path + "'");
    if (errno == EEXIST) return Status::AlreadyExists(st.message());
    return st;
  }
  return std::make_unique<FileSink>(fd, path);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct FeatureArgs {
  bool no_xattrs = false, no_fcaps = false, no_acls = false, no_device_nodes = false,
       no_fifos = false, no_sockets = false;
  void Add(CLI::App* sub) {
    sub->add_flag("--no-xattrs", no_xattrs, "Ignore extended file attributes.");
    sub->add_flag("--no-fcaps", no_fcaps, "Ignore file capabilities.");
    sub->add_flag("--no-acls", no_acls, "Ignore access control list entries.");
    sub->add_flag("--no-device-nodes", no_device_nodes, "Ignore device nodes.");
    sub->add_flag("--no-fifos", no_fifos, "Ignore fifos.");
    sub->add_flag("--no-sockets", no_sockets, "Ignore sockets.");
  }
  importers::PxarFeatures Features() const {
    importers::PxarFeatures f;
    f.xattrs = !no_xattrs;
    f.fcaps = !no_fcaps && !no_xattrs;
    f.acls = !no_acls && !no_xattrs;
    f.device_nodes = !no_device_nodes;
    f.fifos = !no_fifos;
    f.sockets = !no_sockets;
    return f;
  }
};

struct CreateArgs {
  std::string archive, source, payload_output;
  uint64_t entries_max = 1024 * 1024;
  FeatureArgs features;
};

int RunCreate(const CreateArgs& a) {
  if (!a.payload_output.empty() && !EndsWith(a.archive, ".mpxar"))
    return ReportError(Status::InvalidArgument(
                           "archive name must end in .mpxar when using a payload output"),
                       2);
  auto sink = CreateSink(a.archive);
  if (!sink.ok()) return ReportError(sink.status());
  std::unique_ptr<FileSink> payload;
  if (!a.payload_output.empty()) {
    auto p = CreateSink(a.payload_output);
    if (!p.ok()) return ReportError(p.status());
    payload = std::move(*p);
  }
  importers::PxarCreateOptions opts;
  opts.features = a.features.Features();
  opts.entries_max = a.entries_max;
  opts.warn = [](const std::string& w) { std::cerr << w << "\n"; };
  auto stats = importers::CreatePxarArchive(a.source, sink->get(), payload.get(), opts);
  if (!stats.ok()) return ReportError(stats.status());
  Status st = (*sink)->Close();
  if (st.ok() && payload) st = payload->Close();
  if (!st.ok()) return ReportError(st);
  return 0;
}

struct ListArgs {
  std::string archive, payload_input;
};

int RunList(const ListArgs& a) {
  auto src = OpenSource(a.archive);
  if (!src.ok()) return ReportError(src.status());
  std::unique_ptr<FileSource> payload;
  if (!a.payload_input.empty()) {
    auto p = OpenSource(a.payload_input);
    if (!p.ok()) return ReportError(p.status());
    payload = std::move(*p);
  }
  pxar::DecoderOptions o;
  o.name = a.archive;
  pxar::Decoder dec(src->get(), payload.get(), o);
  pxar::Entry e;
  std::string out;
  for (;;) {
    auto r = dec.Next(&e);
    if (!r.ok()) {
      std::cout << out << std::flush;
      return ReportError(r.status());
    }
    if (!*r) break;
    std::string line = pxar::ListLine(e);
    if (!line.empty()) {
      out += line;
      out += '\n';
    }
    if (out.size() > (1 << 16)) {
      std::cout << out;
      out.clear();
    }
  }
  std::cout << out << std::flush;
  return 0;
}

struct ExtractArgs {
  std::string archive, target = ".", payload_input;
  std::vector<std::string> patterns;
  bool overwrite = false, verbose = false;
  FeatureArgs features;
};

int RunExtract(const ExtractArgs& a) {
  auto src = OpenSource(a.archive);
  if (!src.ok()) return ReportError(src.status());
  std::unique_ptr<FileSource> payload;
  if (!a.payload_input.empty()) {
    auto p = OpenSource(a.payload_input);
    if (!p.ok()) return ReportError(p.status());
    payload = std::move(*p);
  } else if (EndsWith(a.archive, ".mpxar")) {
    return ReportError(
        Status::InvalidArgument("Payload input required for split pxar archives"), 2);
  }
  pxar::DecoderOptions o;
  o.name = a.archive;
  o.report_directory_end = true;
  pxar::Decoder dec(src->get(), payload.get(), o);
  importers::PxarExtractOptions opts;
  opts.features = a.features.Features();
  opts.patterns = a.patterns;
  opts.overwrite = a.overwrite;
  opts.warn = [](const std::string& w) { std::cerr << w << "\n"; };
  if (a.verbose) opts.on_entry = [](const std::string& p) { std::cout << pxar::RustDebugQuote(p) << "\n"; };
  auto stats = importers::ExtractPxarArchive(&dec, a.target, opts);
  if (!stats.ok()) return ReportError(stats.status());
  return 0;
}

void Setup(CLI::App& app, GlobalOptions& g) {
  auto* pxar = app.add_subcommand("pxar", "Create, list and extract pxar archives (like PBS's pxar tool)");
  pxar->require_subcommand(1);

  auto create = std::make_shared<CreateArgs>();
  auto* c = pxar->add_subcommand("create", "Create a new .pxar archive from a directory.");
  c->add_option("archive", create->archive, "Archive name.")->required();
  c->add_option("source", create->source, "Source directory.")->required();
  c->add_option("--payload-output", create->payload_output,
                "Write a split archive: file payloads go to this .ppxar file (archive must end "
                "in .mpxar).");
  c->add_option("--entries-max", create->entries_max,
                "Max number of entries loaded at once into memory")
      ->capture_default_str();
  create->features.Add(c);
  c->callback([create, &g] { g.exit_code = RunCreate(*create); });

  auto list = std::make_shared<ListArgs>();
  auto* l = pxar->add_subcommand("list", "List the contents of an archive.");
  l->add_option("archive", list->archive, "Archive name.")->required();
  l->add_option("--payload-input", list->payload_input,
                "'ppxar' payload input data file for split archive.");
  l->callback([list, &g] { g.exit_code = RunList(*list); });

  auto extract = std::make_shared<ExtractArgs>();
  auto* x = pxar->add_subcommand("extract", "Extract an archive.");
  x->add_option("archive", extract->archive, "Archive name.")->required();
  x->add_option("target", extract->target, "Target directory (default: current directory).");
  x->add_option("--pattern", extract->patterns,
                "Path or match pattern to limit files that get restored.");
  x->add_option("--payload-input", extract->payload_input,
                "'ppxar' payload input data file for split archive.");
  x->add_flag("--overwrite", extract->overwrite, "Overwrite existing files.");
  x->add_flag("--verbose", extract->verbose, "Print each extracted path.");
  extract->features.Add(x);
  x->callback([extract, &g] { g.exit_code = RunExtract(*extract); });
}

}  // namespace
}  // namespace pbskit::cli

PBSKIT_REGISTER_COMMAND(80, pbskit::cli::Setup);
