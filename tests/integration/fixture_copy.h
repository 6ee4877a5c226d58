// A writable copy of the fixture datastore shared by the tests of one suite.
//
// The fixture keeps only its 19 non-empty .chunks prefix directories; a copy that is written to
// must get all 65536 back (fixtures/README.md). Creating and removing 65536 directories is slow on
// busy disks, so a suite makes the copy once (SetUpTestSuite) and each test calls Reset(), which
// puts every file of the fixture back and removes what tests added (renamed .bad chunks, new
// files) in the directories the fixture has.
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "test_support.h"

namespace pbskit::test {

class FixtureStoreCopy {
 public:
  // Copies fixtures/<rel> to <tmp>/store and recreates the missing prefix directories.
  explicit FixtureStoreCopy(const std::string& rel = "pbs-3.2.4-datastore")
      : source_(Fixture(rel)), path_(tmp_ / "store") {
    CopyTree(source_, path_);
    char name[8];
    for (int i = 0; i < 65536; ++i) {
      std::snprintf(name, sizeof name, "%04x", i);
      ::mkdir((path_ + "/.chunks/" + name).c_str(), 0750);
    }
  }

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  // A scratch directory beside the copy (lock root, restore targets ...).
  std::string scratch(const std::string& name) const {
    std::string p = tmp_ / name;
    std::filesystem::create_directories(p);
    return p;
  }

  // Restores the pristine fixture content: files the fixture has are rewritten, other files in
  // the fixture's directories are removed. Empty prefix directories are left alone.
  void Reset() {
    namespace fs = std::filesystem;
    ResetDir(fs::path(source_), fs::path(path_));
  }

 private:
  static void ResetDir(const std::filesystem::path& src, const std::filesystem::path& dst) {
    namespace fs = std::filesystem;
    std::set<std::string> names;
    fs::create_directories(dst);
    for (const auto& e : fs::directory_iterator(src)) {
      names.insert(e.path().filename().string());
      fs::path target = dst / e.path().filename();
      if (e.is_directory()) {
        ResetDir(e.path(), target);
      } else if (e.is_regular_file()) {
        fs::remove(target);
        fs::copy_file(e.path(), target);
        fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write,
                        fs::perm_options::add);
      }
    }
    for (const auto& e : fs::directory_iterator(dst)) {
      if (names.count(e.path().filename().string())) continue;
      // Keep the recreated empty prefix directories of .chunks.
      if (e.is_directory() && dst.filename() == ".chunks") continue;
      fs::remove_all(e.path());
    }
  }

  TempDir tmp_;
  std::string source_;
  std::string path_;
};

}  // namespace pbskit::test
