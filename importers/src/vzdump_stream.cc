// vzdump file names and decompressing input streams (PXAR-VZDUMP.md §3.7, §4.1).
#include <archive.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <regex>

#include "pbskit/datastore/fs.h"
#include "pbskit/importers/vzdump_import.h"

namespace pbskit {

const char* VzdumpCompressionName(VzdumpCompression c) {
  switch (c) {
    case VzdumpCompression::kZstd: return "zstd";
    case VzdumpCompression::kGzip: return "gzip";
    case VzdumpCompression::kLzo: return "lzo";
    default: return "none";
  }
}

Result<VzdumpFileName> ParseVzdumpFileName(const std::string& base_name) {
  static const std::regex re(
      R"(^vzdump-(qemu|lxc|openvz)-([1-9][0-9]{2,8})-([0-9]{4}_[0-9]{2}_[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2})\.(vma|tar|tgz)(\.(zst|gz|lzo))?$)");
  std::smatch m;
  if (!std::regex_match(base_name, m, re))
    return Status::InvalidArgument("'" + base_name +
                                   "' is not a vzdump archive name "
                                   "(vzdump-<qemu|lxc>-<vmid>-YYYY_MM_DD-hh_mm_ss.<vma|tar>[.zst|.gz|.lzo])");
  VzdumpFileName n;
  n.type = m[1];
  n.vmid = m[2];
  n.stamp = m[3];
  n.format = m[4];
  if (m[6] == "zst") n.compression = VzdumpCompression::kZstd;
  else if (m[6] == "gz" || n.format == "tgz") n.compression = VzdumpCompression::kGzip;
  else if (m[6] == "lzo") n.compression = VzdumpCompression::kLzo;
  else n.compression = VzdumpCompression::kNone;
  n.log_name = "vzdump-" + n.type + "-" + n.vmid + "-" + n.stamp + ".log";
  return n;
}

Result<int64_t> VzdumpStampToEpoch(const std::string& stamp, const std::string& time_zone) {
  struct tm tm {};
  if (stamp.size() != 19 ||
      sscanf(stamp.c_str(), "%4d_%2d_%2d-%2d_%2d_%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6 ||
      tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return Status::InvalidArgument("bad vzdump time stamp '" + stamp + "'");
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  if (time_zone == "UTC" || time_zone == "Etc/UTC") return static_cast<int64_t>(timegm(&tm));
  if (time_zone.empty()) return static_cast<int64_t>(mktime(&tm));
  // TZ is process-wide: switch it for the conversion only.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const char* old = getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", time_zone.c_str(), 1);
  tzset();
  time_t t = mktime(&tm);
  if (old) setenv("TZ", saved.c_str(), 1);
  else unsetenv("TZ");
  tzset();
  return static_cast<int64_t>(t);
}

namespace {

// Reads the file descriptor and counts the bytes.
class CountingFile {
 public:
  CountingFile(int fd, std::string path, uint64_t* counter)
      : fd_(fd), path_(std::move(path)), counter_(counter) {}
  ~CountingFile() {
    if (fd_ >= 0) close(fd_);
  }
  Result<size_t> Read(uint8_t* buf, size_t n) {
    for (;;) {
      ssize_t r = read(fd_, buf, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno(errno, "read " + path_);
      if (counter_) *counter_ += static_cast<uint64_t>(r);
      return static_cast<size_t>(r);
    }
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
  uint64_t* counter_;
};

class PlainSource : public ByteSource {
 public:
  explicit PlainSource(std::unique_ptr<CountingFile> f) : f_(std::move(f)) {}
  Result<size_t> Read(std::span<uint8_t> buf) override {
    size_t got = 0;
    while (got < buf.size()) {
      PBSKIT_ASSIGN_OR_RETURN(size_t n, f_->Read(buf.data() + got, buf.size() - got));
      if (n == 0) break;
      got += n;
    }
    return got;
  }

 private:
  std::unique_ptr<CountingFile> f_;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(std::unique_ptr<CountingFile> f)
      : f_(std::move(f)), dctx_(ZSTD_createDCtx()), in_(ZSTD_DStreamInSize()) {}
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }
  Result<size_t> Read(std::span<uint8_t> buf) override {
    ZSTD_outBuffer out{buf.data(), buf.size(), 0};
    while (out.pos < out.size) {
      if (pos_ == len_) {
        if (eof_) break;
        PBSKIT_ASSIGN_OR_RETURN(len_, f_->Read(in_.data(), in_.size()));
        pos_ = 0;
        if (len_ == 0) {
          eof_ = true;
          if (last_ != 0)
            return Status::Corruption("zstd stream of '" + f_->path() + "' is truncated");
          break;
        }
      }
      ZSTD_inBuffer in{in_.data(), len_, pos_};
      last_ = ZSTD_decompressStream(dctx_, &out, &in);
      pos_ = in.pos;
      if (ZSTD_isError(last_))
        return Status::Corruption("zstd stream of '" + f_->path() +
                                  "' is damaged: " + ZSTD_getErrorName(last_));
    }
    return out.pos;
  }

 private:
  std::unique_ptr<CountingFile> f_;
  ZSTD_DCtx* dctx_;
  std::vector<uint8_t> in_;
  size_t pos_ = 0, len_ = 0;
  size_t last_ = 0;
  bool eof_ = false;
};

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(std::unique_ptr<CountingFile> f) : f_(std::move(f)), in_(1 << 16) {
    zs_ = {};
    inflateInit2(&zs_, 15 + 32);
  }
  ~GzipSource() override { inflateEnd(&zs_); }
  Result<size_t> Read(std::span<uint8_t> buf) override {
    zs_.next_out = buf.data();
    zs_.avail_out = static_cast<uInt>(buf.size());
    while (zs_.avail_out > 0) {
      if (zs_.avail_in == 0) {
        if (eof_) break;
        PBSKIT_ASSIGN_OR_RETURN(size_t n, f_->Read(in_.data(), in_.size()));
        if (n == 0) {
          eof_ = true;
          if (!member_done_)
            return Status::Corruption("gzip stream of '" + f_->path() + "' is truncated");
          break;
        }
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(n);
      }
      if (member_done_) {  // another gzip member follows (concatenated streams)
        inflateReset(&zs_);
        member_done_ = false;
      }
      int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Status::Corruption("gzip stream of '" + f_->path() + "' is damaged: " +
                                  (zs_.msg ? zs_.msg : "inflate error"));
      }
    }
    return buf.size() - zs_.avail_out;
  }

 private:
  std::unique_ptr<CountingFile> f_;
  z_stream zs_;
  std::vector<uint8_t> in_;
  bool eof_ = false;
  bool member_done_ = false;
};

// lzop via libarchive's filter (built-in with liblzo2, else the external lzop program).
class LzoSource : public ByteSource {
 public:
  LzoSource(std::unique_ptr<CountingFile> f, archive* a) : f_(std::move(f)), a_(a) {}
  ~LzoSource() override { archive_read_free(a_); }
  Result<size_t> Read(std::span<uint8_t> buf) override {
    size_t got = 0;
    while (got < buf.size()) {
      la_ssize_t n = archive_read_data(a_, buf.data() + got, buf.size() - got);
      if (n < 0)
        return Status::Corruption("lzo stream of '" + f_->path() +
                                  "' is damaged: " + archive_error_string(a_));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  }
  static la_ssize_t Callback(archive*, void* self, const void** buf) {
    auto* s = static_cast<LzoSource*>(self);
    auto r = s->f_->Read(s->in_, sizeof s->in_);
    if (!r.ok()) return -1;
    *buf = s->in_;
    return static_cast<la_ssize_t>(*r);
  }

 private:
  std::unique_ptr<CountingFile> f_;
  archive* a_;
  uint8_t in_[65536];
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenVzdumpStream(const std::string& path,
                                                     VzdumpCompression* detected,
                                                     uint64_t* compressed_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  uint8_t magic[9] = {};
  ssize_t n = pread(fd, magic, sizeof magic, 0);
  if (n < 0) {
    int e = errno;
    close(fd);
    return Status::FromErrno(e, "read " + path);
  }
  auto file = std::make_unique<CountingFile>(fd, path, compressed_bytes);
  static const uint8_t kZstd[] = {0x28, 0xb5, 0x2f, 0xfd};
  static const uint8_t kGzip[] = {0x1f, 0x8b};
  static const uint8_t kLzop[] = {0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 4 && std::memcmp(magic, kZstd, 4) == 0) {
    *detected = VzdumpCompression::kZstd;
    return std::unique_ptr<ByteSource>(new ZstdSource(std::move(file)));
  }
  if (n >= 2 && std::memcmp(magic, kGzip, 2) == 0) {
    *detected = VzdumpCompression::kGzip;
    return std::unique_ptr<ByteSource>(new GzipSource(std::move(file)));
  }
  if (n >= 9 && std::memcmp(magic, kLzop, 9) == 0) {
    *detected = VzdumpCompression::kLzo;
    archive* a = archive_read_new();
    int rc = archive_read_support_filter_lzop(a);
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      std::string why = archive_error_string(a) ? archive_error_string(a) : "not supported";
      archive_read_free(a);
      return Status::Unsupported("cannot decompress lzo archive '" + path +
                                 "': libarchive has no lzop filter (" + why + ")");
    }
    archive_read_support_format_raw(a);
    auto src = std::make_unique<LzoSource>(std::move(file), a);
    if (archive_read_open(a, src.get(), nullptr, &LzoSource::Callback, nullptr) != ARCHIVE_OK) {
      std::string why = archive_error_string(a) ? archive_error_string(a) : "open failed";
      return Status::Unsupported("cannot decompress lzo archive '" + path + "': " + why +
                                 " (lzop decompression needs libarchive with liblzo2 or the "
                                 "lzop program)");
    }
    archive_entry* entry = nullptr;
    if (archive_read_next_header(a, &entry) != ARCHIVE_OK)
      return Status::Corruption("lzo archive '" + path + "': " +
                                (archive_error_string(a) ? archive_error_string(a) : "no data"));
    return std::unique_ptr<ByteSource>(std::move(src));
  }
  *detected = VzdumpCompression::kNone;
  return std::unique_ptr<ByteSource>(new PlainSource(std::move(file)));
}

}  // namespace pbskit
