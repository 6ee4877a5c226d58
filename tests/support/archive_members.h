// Reading back a tar / tar.zst / zip held in memory (libarchive), for tests of archive
// exports and downloads. Header-only: only tests that link libarchive include it.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace pbskit::test {

struct ArchiveMember {
  mode_t type = 0;  // AE_IFREG, AE_IFDIR, ...
  mode_t perm = 0;
  int64_t mtime = 0;
  std::string content, symlink, hardlink;
};

// Every member of the archive in `bytes` by name (without a trailing '/'). A read error is a
// test failure; the members read until then are returned.
inline std::map<std::string, ArchiveMember> ArchiveMembers(const std::string& bytes) {
  std::map<std::string, ArchiveMember> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK)
      << archive_error_string(a);
  struct archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    while (!name.empty() && name.back() == '/') name.pop_back();
    ArchiveMember m;
    m.type = archive_entry_filetype(e);
    m.perm = archive_entry_perm(e);
    m.mtime = archive_entry_mtime(e);
    if (archive_entry_symlink(e)) m.symlink = archive_entry_symlink(e);
    if (archive_entry_hardlink(e)) m.hardlink = archive_entry_hardlink(e);
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
      m.content.append(buf, static_cast<size_t>(n));
    }
    EXPECT_GE(n, 0) << name << ": " << archive_error_string(a);
    out[name] = m;
  }
  EXPECT_EQ(rc, ARCHIVE_EOF) << archive_error_string(a);
  archive_read_free(a);
  return out;
}

}  // namespace pbskit::test
